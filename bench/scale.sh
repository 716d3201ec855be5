#!/usr/bin/env bash
# Peak RSS and time as the data grows: builds 1×, 2×, 4× corpora of distinct data from
# one corpus (bench/lib/scale-corpus.mjs: copy i is the corpus with every byte XORed with
# a constant, so no copy dedups against another and each compresses like the original),
# runs bench/run.mjs on each, and joins the results into one table.
#
#   bash bench/scale.sh [--corpus DIR] [--scales "1 2 4"] [--only coffer,restic]
#                       [--scratch DIR] [--out bench/results/DATE-scale]
#
# Defaults: --corpus $TMPDIR/coffer-bench/corpus-full (read only; build it first with
# `node bench/run.mjs --only coffer` or dataset.sh), the corpora under
# $TMPDIR/coffer-bench/scale (about (max scale - 1) × corpus size; kept and reused), and
# results in OUT-<n>x.{json,md} per scale plus OUT.{json,md}, the joined table.
# Disk: the corpora, plus during each run the working copy, the repository and the
# restored tree of the largest scale (about 3 × 4 × corpus for 4×).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=${TMPDIR:-/tmp}
corpus=$tmp/coffer-bench/corpus-full
scales="1 2 4"
only=coffer,restic
scratch=$tmp/coffer-bench
out=$here/bench/results/$(date -u +%F)-scale
while [ $# -gt 0 ]; do
  case $1 in
    --corpus) corpus=$2; shift 2 ;;
    --scales) scales=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    --out) out=${2%.json}; shift 2 ;;
    *) echo "usage: bash bench/scale.sh [--corpus DIR] [--scales \"1 2 4\"] [--only LIST] [--scratch DIR] [--out BASE]" >&2; exit 2 ;;
  esac
done
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }
[ -f "$here/dist/bundle/main.js" ] || (cd "$here" && npm run build)

commit=$(git -C "$here" rev-parse --short HEAD)
git -C "$here" diff --quiet HEAD -- src cli || commit="$commit+uncommitted"

# shellcheck disable=SC2086
node "$here/bench/lib/scale-corpus.mjs" "$corpus" "$scratch/scale" $scales

runs=()
for n in $scales; do
  echo "[scale] ${n}x: bench/run.mjs --corpus $scratch/scale/${n}x --only $only" >&2
  # run.mjs exits 1 when a row fails; the table shows which, so go on with the next scale.
  node "$here/bench/run.mjs" --corpus "$scratch/scale/${n}x" --only "$only" \
    --scratch "$scratch" --out "$out-${n}x.json" || echo "[scale] ${n}x: some rows failed" >&2
  runs+=("$n:$out-${n}x.json")
done
node "$here/bench/lib/scale-table.mjs" "$out.json" "$commit" "${runs[@]}"
