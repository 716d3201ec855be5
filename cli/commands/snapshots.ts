import type { Argv } from "yargs";
import type { SnapshotSource } from "../../src/repo/snapshot.js";
import { listSnapshots } from "../../src/repo/snapshots.js";
import { printJson } from "../output.js";
import type { RepoArgs } from "../session.js";
import { openRepository } from "../session.js";

export const snapshotsCommand = {
  command: "snapshots",
  describe: "list snapshots, oldest first",
  builder: (y: Argv) => y,
  handler: async (args: RepoArgs & { json?: boolean }) => {
    const repo = await openRepository(args);
    const all = await listSnapshots(repo);
    if (args.json) {
      printJson(
        all.map((s) => ({
          id: s.id,
          time: s.time,
          paths: s.paths,
          tags: s.tags,
          hostname: s.hostname,
          username: s.username,
          tree: s.tree,
          source: s.source,
          summary: s.summary,
        })),
      );
      return;
    }
    const rows = all.map((s) => [
      s.id.slice(0, 8),
      s.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      s.hostname,
      s.tags.join(","),
      s.paths.join(" ") + sourceNote(s.source),
    ]);
    printTable(["ID", "Time", "Host", "Tags", "Paths"], rows);
    process.stdout.write(`${all.length} snapshots\n`);
  },
};

/** For dumps: " (pg_dump custom, server 15.20)"; nothing for files and stdin. */
function sourceNote(src: SnapshotSource): string {
  const parts = [src.tool, src.format].filter((x) => x !== undefined).join(" ");
  const version = src.serverVersion?.split(" ")[0];
  const all = [parts, version ? `server ${version}` : ""].filter((x) => x !== "").join(", ");
  return all === "" ? "" : ` (${all})`;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    `${r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd()}\n`;
  process.stdout.write(line(head));
  process.stdout.write(`${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const r of rows) process.stdout.write(line(r));
}
