import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { BlobStore } from "../../src/repo/blob-store.js";
import { resolveSnapshot } from "../../src/repo/snapshots.js";
import { findNode, loadTree } from "../../src/restore/tree-walk.js";
import type { FileOutcome, WriteBatch } from "../../src/restore/write-ops.js";
import { WritePlanner } from "../../src/restore/write-plan.js";
import type { WriteLane } from "../../src/restore/write-pool.js";
import { coffer, initRepo, openStore, useTempDir } from "../helpers.js";

// The restore planner reads and plans files ahead of the workers that write them, within
// a bound. It was a bound on sealed bytes only (8 MiB): tiny files, ~70 sealed bytes
// each, put 120,000 files in flight, ~1 KB of plans each on the main thread, and a
// restore of 200,000 of them peaked at 460-500 MiB instead of 210.

const files = 6000;
/** What the planner may hold besides the files in flight: one batch being filled. */
const batchFiles = 256;

/** A write lane that holds every batch until released: the workers are busy. */
class HoldingLane implements WriteLane {
  readonly held: { batch: WriteBatch; done: (o: FileOutcome[]) => void }[] = [];
  filesReceived = 0;

  run(batch: WriteBatch): Promise<FileOutcome[]> {
    this.filesReceived += batch.ops.filter((o) => o.t === "begin").length;
    return new Promise((done) => this.held.push({ batch, done }));
  }

  release(): void {
    for (const h of this.held.splice(0)) {
      const outcomes = h.batch.ops.flatMap((o) =>
        o.t === "finish" ? [{ file: o.file, bytes: o.size }] : [],
      );
      h.done(outcomes);
    }
  }

  async close(): Promise<void> {}
}

describe("restore planning", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("holds at most 4,096 files in flight however small they are, and restores them all", async () => {
    const src = path.join(dir, "tiny");
    await fs.mkdir(src);
    for (let i = 0; i < files; i++) await fs.writeFile(path.join(src, `f${i}`), `${i}\n`);
    const repo = path.join(dir, "repo");
    await initRepo(repo);
    const r = await coffer(["backup", "--repo", repo, src, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);

    const store: BlobStore = await openStore(repo);
    const snap = await resolveSnapshot(store.repo, "latest");
    const { node } = await findNode(store, snap.tree, src);
    const nodes = (await loadTree(store, node.subtree as string)).nodes;
    expect(nodes.length).toBe(files);

    const lane = new HoldingLane();
    const planner = new WritePlanner(store, [lane]);
    const outcomes: FileOutcome[] = [];
    let planned = 0;
    const planning = (async () => {
      for (const [i, n] of nodes.entries()) {
        const at = Buffer.from(path.join(dir, "out", n.name));
        await planner.add(
          {
            tmp: Buffer.from(`${at.toString()}.tmp${i}`),
            at,
            shown: n.name,
            content: n.content ?? [],
            size: n.size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            chown: false,
            mtime: 0,
          },
          (o) => outcomes.push(o),
        );
        planned++;
      }
      await planner.drain();
    })();

    let done = false;
    void planning.then(() => {
      done = true;
    });
    let rounds = 0;
    while (!done) {
      // Let the planner run until it waits for the lane.
      for (let settle = 0; settle < 50; settle++) await new Promise((r) => setImmediate(r));
      expect(lane.filesReceived - outcomes.length).toBeLessThanOrEqual(4096 + batchFiles);
      expect(planned - outcomes.length).toBeLessThanOrEqual(4096 + 2 * batchFiles);
      lane.release();
      rounds++;
    }
    await planning;
    expect(rounds).toBeGreaterThan(1); // the bound was reached and held the planner back
    expect(outcomes.length).toBe(files);
    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
    // Planner file k is nodes[k]: each got the size its chunks add up to.
    expect(outcomes.every((o) => o.bytes === nodes[o.file]?.size)).toBe(true);
    expect(new Set(outcomes.map((o) => o.file)).size).toBe(files);
  });
});
