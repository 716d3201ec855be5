#!/usr/bin/env bash
# A/B of coffer builds on one row: first backups of CORPUS into a fresh repository, the
# builds taking turns run after run, so a machine that drifts (some do by 30% in minutes)
# weighs on both alike. Prints wall time, CPU time, peak RSS and minor page faults (GNU
# time) and the share of both cores idle meanwhile (/proc/stat) for each run. Where CPU
# time swings between runs of one build (by 35% on one machine here), the fault count
# still compares builds: it varied by under 10%, and a fault cost 12 us there.
#
#   bash bench/ab.sh [-n PAIRS] [-c CORPUS] [-r] BUILD...
#
# -r times full restores instead: the first build backs CORPUS up once (untimed), then
# each run restores that snapshot into a new journaled ext4 on a loop device (root only).
# On a file system that holds other data, restores of one build swung 8–29 s here with
# the kernel's inode allocation; on a new one, 7.4–8.7 s.
#
# A BUILD is a copy of dist/ (`cp -r dist .ab/NAME` after `npm run build`; .ab/ is
# ignored by git) or a path to one. The repositories use an age identity, so scrypt's
# fixed cost is not in the numbers; set AB_ENV to pass variables to the runs
# (AB_ENV="COFFER_DEBUG=1").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pairs=3
corpus=/tmp/coffer-bench/corpus-full
restore=false
while getopts "n:c:r" opt; do
  case $opt in
    n) pairs=$OPTARG ;;
    c) corpus=$OPTARG ;;
    r) restore=true ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: bash bench/ab.sh [-n PAIRS] [-c CORPUS] [-r] BUILD..." >&2; exit 2; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time
command -v age-keygen >/dev/null || apt-get install -y -qq age

work=$(mktemp -d /tmp/coffer-ab.XXXXXX)
trap 'umount "$work/fs" 2>/dev/null || true; rm -rf "$work"' EXIT
age-keygen -o "$work/id.txt" 2>/dev/null

main_of() {
  if [ -f "$1/bundle/main.js" ]; then echo "$1/bundle/main.js"; else echo "$here/.ab/$1/bundle/main.js"; fi
}

idle_ticks() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# The restore row's repository, backed up once by the first build.
if $restore; then
  main=$(main_of "$1")
  node "$main" init --repo "$work/repo" -i "$work/id.txt" >/dev/null
  node "$main" backup --repo "$work/repo" -i "$work/id.txt" "$corpus" --json >/dev/null
  mkdir "$work/fs"
fi

# Makes a run's fresh state and sets `args` to its command: a first backup into a new
# repository, or (-r) a restore into a new file system.
prepare() {
  if $restore; then
    umount "$work/fs" 2>/dev/null || true
    rm -f "$work/fs.img" && truncate -s 8G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img" && mount -o loop "$work/fs.img" "$work/fs"
    args=(restore latest --target "$work/fs/r" --quiet)
  else
    rm -rf "$work/repo"
    node "$1" init --repo "$work/repo" -i "$work/id.txt" >/dev/null
    args=(backup "$corpus" --json)
  fi
  sync
}

for _ in $(seq "$pairs"); do
  for build in "$@"; do
    main=$(main_of "$build")
    prepare "$main"
    read -r idle0 total0 < <(idle_ticks)
    # shellcheck disable=SC2086
    env ${AB_ENV:-} /usr/bin/time -f "%e %U %S %M %R" -o "$work/time" \
      node "$main" "${args[@]}" --repo "$work/repo" -i "$work/id.txt" >/dev/null
    read -r idle1 total1 < <(idle_ticks)
    awk -v b="$build" -v idle=$(((idle1 - idle0) * 100 / (total1 - total0))) \
      '{printf "%-12s wall %6.2f s  cpu %6.2f s  rss %4.0f MiB  faults %6d  idle %d%%\n", b, $1, $2 + $3, $4 / 1024, $5, idle}' \
      "$work/time"
  done
done
