import type { Argv } from "yargs";
import { UserError } from "../../src/errors.js";
import type { RetentionPolicy } from "../../src/repo/retention.js";
import { applyPolicy, isEmptyPolicy } from "../../src/repo/retention.js";
import type { SnapshotWithId } from "../../src/repo/snapshot.js";
import { listSnapshots } from "../../src/repo/snapshots.js";
import { printJson } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

export interface ForgetGroupReport {
  hostname: string;
  paths: string[];
  keep: { id: string; time: string; reasons: string[] }[];
  remove: { id: string; time: string }[];
}

/** How `coffer run` reuses this handler in-process: it gets the report, nothing is printed. */
export interface ForgetObserver {
  /** Only the groups whose paths are exactly one of these (the job's own snapshots). */
  onlyPaths?: string[][];
  onResult(report: { dryRun: boolean; groups: ForgetGroupReport[] }): void;
}

export interface ForgetArgs extends RepoArgs {
  "keep-last"?: number;
  "keep-hourly"?: number;
  "keep-daily"?: number;
  "keep-weekly"?: number;
  "keep-monthly"?: number;
  "keep-yearly"?: number;
  "keep-tag"?: string[];
  host?: string;
  tag?: string[];
  "dry-run"?: boolean;
  json?: boolean;
  quiet?: boolean;
  observer?: ForgetObserver;
}

const counts = ["last", "hourly", "daily", "weekly", "monthly", "yearly"] as const;

export const forgetCommand = {
  command: "forget",
  describe: "remove snapshots according to a retention policy (data stays until prune)",
  builder: (y: Argv) => {
    let b = y;
    for (const c of counts) {
      b = b.option(`keep-${c}`, {
        type: "number",
        describe: `keep the newest snapshot of each of the last N ${c === "last" ? "snapshots" : `${c} periods`}`,
      });
    }
    return b
      .option("keep-tag", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "keep every snapshot with this tag",
      })
      .option("host", { type: "string", describe: "only consider snapshots of this host" })
      .option("tag", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "only consider snapshots with this tag",
      })
      .option("dry-run", {
        type: "boolean",
        describe: "show what would be removed, remove nothing",
      });
  },
  handler: async (args: ForgetArgs) => {
    const policy: RetentionPolicy = { tags: args["keep-tag"] ?? [] };
    for (const c of counts) {
      const n = args[`keep-${c}`];
      if (n === undefined) continue;
      if (!Number.isInteger(n) || n < 0)
        throw new UserError(`--keep-${c} takes a whole number, not ${n}`);
      policy[c] = n;
    }
    if (isEmptyPolicy(policy)) {
      throw new UserError(
        "no policy given: add --keep-last, --keep-daily, ... (nothing was removed)",
      );
    }
    await withRepository(args, { exclusive: true, loadIndex: false }, async (store) => {
      const all = (await listSnapshots(store.repo)).filter(
        (s) =>
          (args.host === undefined || s.hostname === args.host) &&
          (args.tag ?? []).every((t) => s.tags.includes(t)),
      );
      const groups = new Map<string, SnapshotWithId[]>();
      const only = args.observer?.onlyPaths?.map((p) => JSON.stringify([...p].sort()));
      for (const s of all) {
        if (only && !only.includes(JSON.stringify([...s.paths].sort()))) continue;
        const key = JSON.stringify([s.hostname, [...s.paths].sort()]);
        groups.set(key, [...(groups.get(key) ?? []), s]);
      }
      const report: ForgetGroupReport[] = [];
      for (const [key, snaps] of groups) {
        const [hostname, paths] = JSON.parse(key) as [string, string[]];
        const d = applyPolicy(snaps, policy);
        report.push({
          hostname,
          paths,
          keep: d.keep.map((k) => ({
            id: k.snapshot.id,
            time: k.snapshot.time,
            reasons: k.reasons,
          })),
          remove: d.remove.map((s) => ({ id: s.id, time: s.time })),
        });
        if (!args["dry-run"]) {
          for (const s of d.remove)
            await store.repo.backend.remove({ type: "snapshot", name: s.id });
        }
      }
      if (args.observer)
        return args.observer.onResult({ dryRun: args["dry-run"] === true, groups: report });
      if (args.json) {
        printJson({ dryRun: args["dry-run"] === true, groups: report });
        return;
      }
      if (args.quiet) return;
      for (const g of report) {
        process.stdout.write(
          `${g.hostname} ${g.paths.join(" ")}: keep ${g.keep.length}, remove ${g.remove.length}\n`,
        );
        for (const k of g.keep)
          process.stdout.write(
            `  keep   ${k.id.slice(0, 8)} ${k.time} (${k.reasons.join(", ")})\n`,
          );
        for (const r of g.remove)
          process.stdout.write(
            `  ${args["dry-run"] ? "would remove" : "remove"} ${r.id.slice(0, 8)} ${r.time}\n`,
          );
      }
    });
  },
};
