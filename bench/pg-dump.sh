#!/usr/bin/env bash
# Database dump overhead (issue 5): a PostgreSQL database of random text, dumped by
#   1. pg_dump -Fc > /dev/null                       (the floor: the dump alone)
#   2. coffer backup --postgres (custom format)      first run, then an unchanged second run
#   3. pg_dump -Fc | restic backup --stdin            (the peer)
# Prints wall time and peak RSS (GNU time) per row, and coffer's overhead over the bare
# dump. The aim: under 15%. The database is built once and kept (drop it by hand:
# dropdb -h 127.0.0.1 -U postgres coffer_bench).
#
#   bash bench/pg-dump.sh [SIZE_MB] [SCRATCH]   (default 1024 MB, /tmp/coffer-pgbench)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size_mb=${1:-1024}
scratch=${2:-/tmp/coffer-pgbench}
db=coffer_bench
url="postgres://postgres@127.0.0.1:5432/$db"
coffer="node $here/dist/bundle/main.js"
export COFFER_PASSPHRASE=pg-bench RESTIC_PASSWORD=pg-bench
command -v /usr/bin/time >/dev/null || apt-get install -y -qq --no-install-recommends time
command -v restic >/dev/null || apt-get install -y -qq --no-install-recommends restic
psql_() { psql -X -q -A -t -h 127.0.0.1 -U postgres "$@"; }

# Random text (hex of md5 of random numbers): about 960 bytes a row, so it does not
# compress to nothing (hex digits compress ~2:1 under pg_dump's zlib, as real text does).
have=$(psql_ -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")
if [ "$have" = 0 ] || [ "$(psql_ -d $db -c "SELECT pg_database_size('$db') / 1048576 >= $size_mb * 9 / 10")" != t ]; then
  psql_ -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  rows=$((size_mb * 1048576 / 1000))
  echo "building $db: $rows rows of random text (~$size_mb MB)" >&2
  psql_ -d $db -c "CREATE TABLE notes (id bigint PRIMARY KEY, body text)"
  step=100000
  for ((from = 1; from <= rows; from += step)); do
    to=$((from + step - 1)); [ $to -gt $rows ] && to=$rows
    psql_ -d $db -c "INSERT INTO notes SELECT g, (SELECT string_agg(md5(random()::text || g || k), '') FROM generate_series(1, 30) k) FROM generate_series($from, $to) g"
  done
  psql_ -d $db -c "VACUUM ANALYZE notes"
fi
db_bytes=$(psql_ -d $db -c "SELECT pg_database_size('$db')")

rm -rf "$scratch" && mkdir -p "$scratch"
$coffer init --repo "$scratch/coffer" --scrypt-work-factor 10 >/dev/null
restic init --repo "$scratch/restic" -q >/dev/null

measure() { # name, command...: prints "name wall_s rss_kib"
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$scratch/time.txt" "$@" >"$scratch/$name.out" 2>"$scratch/$name.err"
  echo "$name $(cat "$scratch/time.txt")"
}

{
  measure pg_dump sh -c "pg_dump -h 127.0.0.1 -U postgres -Fc $db > /dev/null"
  measure coffer_first $coffer backup --repo "$scratch/coffer" --postgres "$url" --json
  measure coffer_second $coffer backup --repo "$scratch/coffer" --postgres "$url" --json
  measure restic_stdin sh -c "pg_dump -h 127.0.0.1 -U postgres -Fc $db | restic backup --repo '$scratch/restic' --stdin --stdin-filename $db.pgdump -q"
  measure restic_second sh -c "pg_dump -h 127.0.0.1 -U postgres -Fc $db | restic backup --repo '$scratch/restic' --stdin --stdin-filename $db.pgdump -q"
} | tee "$scratch/rows.txt"

dump_bytes=$(pg_dump -h 127.0.0.1 -U postgres -Fc $db | wc -c)
node - "$scratch" "$db_bytes" "$dump_bytes" "$size_mb" <<'JS'
const fs = require("node:fs");
const [scratch, dbBytes, dumpBytes, sizeMb] = process.argv.slice(2);
const rows = fs.readFileSync(`${scratch}/rows.txt`, "utf8").trim().split("\n").map((l) => {
  const [name, wall, rss] = l.split(" ");
  return { name, wallS: Number(wall), rssMiB: Math.round(Number(rss) / 1024) };
});
const by = Object.fromEntries(rows.map((r) => [r.name, r]));
const first = JSON.parse(fs.readFileSync(`${scratch}/coffer_first.out`, "utf8"));
const second = JSON.parse(fs.readFileSync(`${scratch}/coffer_second.out`, "utf8"));
const overhead = (n) => `${(((by[n].wallS / by.pg_dump.wallS) - 1) * 100).toFixed(1)}%`;
const lines = [
  `# pg_dump benchmark (bench/pg-dump.sh ${sizeMb})`,
  "",
  `${new Date().toISOString()}; database ${(dbBytes / 2 ** 20).toFixed(0)} MiB on disk, custom-format dump ${(dumpBytes / 2 ** 20).toFixed(0)} MiB; load average (1 min) at the end: ${require("node:os").loadavg()[0].toFixed(2)} (2 cores, shared)`,
  "",
  "| row | wall s | over pg_dump | peak RSS MiB |",
  "| --- | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.name} | ${r.wallS.toFixed(1)} | ${r.name === "pg_dump" ? "" : overhead(r.name)} | ${r.rssMiB} |`),
  "",
  `coffer first run: ${(first.bytesRead / 2 ** 20).toFixed(0)} MiB read, ${(first.bytesAdded / 2 ** 20).toFixed(0)} MiB added; second run: ${(second.bytesAdded / 2 ** 20).toFixed(1)} MiB added.`,
];
process.stdout.write(`${lines.join("\n")}\n`);
JS
