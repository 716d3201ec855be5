// Markdown rendering of a results object (see bench/README.md for its JSON shape).
import { s3Table } from "./s3.mjs";

export const ROWS = [
  "first backup",
  "unchanged re-run",
  "re-run after --mutate",
  "full restore",
  "verify --read-data",
];

const MiB = 1024 * 1024;

function fmt(x, digits = 1) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–";
}

export const BUSY_LOAD = 0.2; // cores used by other processes during a row: time suspect

function status(r) {
  if (r.skipped) return "skipped";
  if (r.restoreCheck && !r.restoreCheck.ok) return "**RESTORE MISMATCH**";
  if (!r.ok) return `**FAILED** (exit ${r.code})`;
  const notes = [];
  if (r.warning) notes.push(r.warning);
  if (r.otherLoad > BUSY_LOAD) notes.push(`busy machine: ${r.otherLoad.toFixed(1)} other cores`);
  return notes.length > 0 ? `ok (${notes.join("; ")})` : "ok";
}

function toolTable(t) {
  const lines = [`### ${t.name}: ${t.version ?? ""}`, ""];
  if (t.skip) return [...lines, `skipped: ${t.skip}`, ""].join("\n");
  lines.push("| row | time (s) | CPU (s) | peak RSS (MiB) | repo (MiB) | status |");
  lines.push("| --- | ---: | ---: | ---: | ---: | --- |");
  for (const r of t.rows) {
    const repo = r.repoBytes === undefined ? "–" : fmt(r.repoBytes / MiB);
    lines.push(
      `| ${r.row} | ${fmt(r.wallS, 2)} | ${fmt(r.cpuS, 1)} | ${fmt(r.rssKiB / 1024)} | ${repo} | ${status(r)} |`,
    );
  }
  if (t.error) lines.push("", `error: ${t.error}`);
  return [...lines, ""].join("\n");
}

function ratio(a, b) {
  return typeof a === "number" && typeof b === "number" && b > 0 ? `${(a / b).toFixed(2)}×` : "–";
}

/** Per-row ratios coffer / peer for each peer that ran; null when coffer did not run. */
export function ratios(results) {
  const coffer = results.tools.find((t) => t.name === "coffer" && !t.skip);
  if (!coffer) return null;
  const peers = results.tools.filter(
    (t) => t.name !== "coffer" && !t.name.endsWith("-s3") && !t.skip,
  );
  const out = {};
  for (const p of peers) {
    out[p.name] = ROWS.map((row) => {
      const c = coffer.rows.find((r) => r.row === row && r.ok);
      const q = p.rows.find((r) => r.row === row && r.ok);
      if (!c || !q) return { row, time: null, cpu: null, rss: null, repo: null };
      const div = (a, b) => (b > 0 ? Math.round((a / b) * 1000) / 1000 : null);
      return {
        row,
        time: div(c.wallS, q.wallS),
        cpu: div(c.cpuS, q.cpuS),
        rss: div(c.rssKiB, q.rssKiB),
        repo: div(c.repoBytes, q.repoBytes),
      };
    });
  }
  return out;
}

function ratioTable(results) {
  const coffer = results.tools.find((t) => t.name === "coffer" && !t.skip);
  if (!coffer) return "### ratios\n\ncoffer did not run: no ratios.\n";
  const peers = results.tools.filter(
    (t) => t.name !== "coffer" && !t.name.endsWith("-s3") && !t.skip,
  );
  if (peers.length === 0) return "### ratios\n\nno peer ran: no ratios.\n";
  const head = ["row"];
  for (const p of peers) {
    head.push(`time ÷${p.name}`, `CPU ÷${p.name}`, `RSS ÷${p.name}`, `repo ÷${p.name}`);
  }
  const lines = [
    "### ratios (coffer ÷ peer; below 1× is better for coffer)",
    "",
    `| ${head.join(" | ")} |`,
    `| --- |${" ---: |".repeat(head.length - 1)}`,
  ];
  for (const row of ROWS) {
    const c = coffer.rows.find((r) => r.row === row && r.ok);
    const cells = [row];
    for (const p of peers) {
      const q = p.rows.find((r) => r.row === row && r.ok);
      cells.push(
        ratio(c?.wallS, q?.wallS),
        ratio(c?.cpuS, q?.cpuS),
        ratio(c?.rssKiB, q?.rssKiB),
        ratio(c?.repoBytes, q?.repoBytes),
      );
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return [...lines, ""].join("\n");
}

export function markdown(results) {
  const c = results.corpus;
  const head = [
    `## coffer bench ${results.date}`,
    "",
    `corpus: ${c.kind}, ${c.files} files, ${fmt(c.bytes / MiB)} MiB ` +
      `(${fmt(c.uniqueBytes / MiB)} MiB without hard-link copies; ${c.path}); ` +
      `host: ${results.host.cpus} × ${results.host.cpuModel}, ${results.host.memGiB} GiB, ` +
      `node ${results.host.node}` +
      (results.host.scratchFs ? `; scratch: ${results.host.scratchFs}` : ""),
    "",
  ];
  const busy = results.tools.flatMap((t) => t.rows).filter((r) => r.otherLoad > BUSY_LOAD);
  if (busy.length > 0) {
    head.push(
      `**warning: other processes used over ${BUSY_LOAD} cores during ${busy.length} rows ` +
        "(marked below): those times are suspect; rerun on an idle machine.**",
      "",
    );
  }
  return [...head, ...results.tools.map(toolTable), ratioTable(results), s3Table(results)].join(
    "\n",
  );
}
