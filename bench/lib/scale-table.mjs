// Joins bench/run.mjs results of the 1×, 2×, 4×… corpora into one table (bench/scale.sh):
//
//   node bench/lib/scale-table.mjs OUT.json COMMIT 1:RUN1.json 2:RUN2.json 4:RUN4.json
//
// writes OUT.json and OUT.md: per tool and row, wall time, CPU and peak RSS at each scale,
// and RSS at the largest scale ÷ RSS at 1× (flat memory: about 1.0×; time should grow ~N×).
import { readFile, writeFile } from "node:fs/promises";

const [out, commit, ...runs] = process.argv.slice(2);
if (!out || !commit || runs.length === 0) {
  console.error("usage: node bench/lib/scale-table.mjs OUT.json COMMIT N:RUN.json...");
  process.exit(2);
}

const scales = [];
for (const spec of runs) {
  const [n, file] = spec.split(/:(.*)/s);
  const r = JSON.parse(await readFile(file, "utf8"));
  scales.push({ n: Number(n), file, run: r });
}
scales.sort((a, b) => a.n - b.n);

const mib = (kib) => kib / 1024;
const tools = [...new Set(scales.flatMap((s) => s.run.tools.map((t) => t.name)))];
const table = [];
for (const tool of tools) {
  const rowNames = [
    ...new Set(
      scales.flatMap((s) => s.run.tools.find((t) => t.name === tool)?.rows.map((r) => r.row) ?? []),
    ),
  ];
  for (const row of rowNames) {
    const cells = scales.map((s) => {
      const r = s.run.tools.find((t) => t.name === tool)?.rows.find((x) => x.row === row);
      return r?.ok
        ? {
            n: s.n,
            wallS: r.wallS,
            cpuS: r.cpuS,
            rssMiB: Math.round(mib(r.rssKiB) * 10) / 10,
            otherLoad: r.otherLoad,
          }
        : r === undefined
          ? { n: s.n, notRun: true }
          : { n: s.n, failed: r.error ?? "failed" };
    });
    const first = cells[0];
    const last = cells.at(-1);
    const rssGrowth =
      first?.rssMiB && last?.rssMiB ? Math.round((last.rssMiB / first.rssMiB) * 100) / 100 : null;
    table.push({ tool, row, cells, rssGrowth });
  }
}

const result = {
  schema: 1,
  date: new Date().toISOString(),
  commit,
  host: scales[0].run.host,
  corpora: scales.map((s) => ({ scale: s.n, run: s.file, ...s.run.corpus })),
  table,
};
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);

const ns = scales.map((s) => `${s.n}×`);
const lines = [
  `## coffer bench: scaling corpus ${result.date}`,
  "",
  `commit ${commit}; host: ${result.host.cpus} × ${result.host.cpuModel}, ${result.host.memGiB} GiB, node ${result.host.node}`,
  "",
  "| scale | files | MiB (hard links counted) | MiB (each inode once) | run |",
  "| ---: | ---: | ---: | ---: | --- |",
  ...result.corpora.map(
    (c) =>
      `| ${c.scale}× | ${c.files} | ${(c.bytes / 2 ** 20).toFixed(0)} | ${(c.uniqueBytes / 2 ** 20).toFixed(0)} | ${c.run} |`,
  ),
  "",
  `| tool | row | ${ns.map((n) => `time ${n} (s)`).join(" | ")} | ${ns.map((n) => `CPU ${n} (s)`).join(" | ")} | ${ns.map((n) => `peak RSS ${n} (MiB)`).join(" | ")} | RSS ${ns.at(-1)} ÷ 1× |`,
  `| --- | --- | ${ns.map(() => "---:").join(" | ")} | ${ns.map(() => "---:").join(" | ")} | ${ns.map(() => "---:").join(" | ")} | ---: |`,
];
const busy = (c) => (c.otherLoad > 0.2 ? "*" : "");
for (const t of table) {
  const f = (pick) =>
    t.cells.map((c) => (c.notRun ? "not run" : c.failed ? "failed" : pick(c))).join(" | ");
  lines.push(
    `| ${t.tool} | ${t.row} | ${f((c) => `${c.wallS.toFixed(2)}${busy(c)}`)} | ${f((c) => c.cpuS.toFixed(1))} | ${f((c) => c.rssMiB.toFixed(1))} | ${t.rssGrowth === null ? "" : `${t.rssGrowth.toFixed(2)}×`} |`,
  );
}
lines.push(
  "",
  "`*`: other processes used more than 0.2 cores during the row (time suspect; CPU and RSS less so).",
  "",
);
await writeFile(out.replace(/(\.json)?$/, ".md"), lines.join("\n"));
console.log(lines.join("\n"));
