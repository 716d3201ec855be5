#!/usr/bin/env bash
# Peak RSS of coffer on the two inputs issue #2 names: one 5 GiB file of random bytes and
# 500,000 small files in 500 directories. Builds both under SCRATCH once (about 6 GB),
# then runs backup, unchanged re-run, restore (checked byte for byte) and verify
# --read-data on each, printing wall time and GNU time's peak RSS.
#
#   bash bench/memory.sh [SCRATCH]      (default /tmp/coffer-memory)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=${1:-/tmp/coffer-memory}
coffer="node $here/dist/bundle/main.js"
export COFFER_PASSPHRASE=memory-bench
mkdir -p "$scratch"
cd "$scratch"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time

if [ ! -f big/big.bin ]; then mkdir -p big; head -c 5G /dev/urandom >big/big.bin; fi
if [ ! -f small.done ]; then
  python3 - <<'PY'
import os
for d in range(500):
    dd = f"small/d{d:03}"
    os.makedirs(dd, exist_ok=True)
    for f in range(1000):
        with open(f"{dd}/f{f:04}.txt", "w") as fh:
            fh.write(f"file {d} {f}\n" * ((f % 7) + 1))
PY
  touch small.done
fi

measure() { /usr/bin/time -f "  %e s, peak RSS %M KiB" "$@"; }
for set in big small; do
  rm -rf "repo-$set" "out-$set"
  $coffer init -r "repo-$set" --scrypt-work-factor 10 >/dev/null
  echo "$set: backup";           measure $coffer backup -q -r "repo-$set" "$set" >/dev/null
  echo "$set: unchanged re-run"; measure $coffer backup -q -r "repo-$set" "$set" >/dev/null
  echo "$set: restore";          measure $coffer restore -q -r "repo-$set" latest --target "out-$set"
  diff -r "$set" "out-$set$scratch/$set" >/dev/null && echo "  restore identical"
  rm -rf "out-$set"
  echo "$set: verify --read-data"; measure $coffer verify -q -r "repo-$set" --read-data
done
