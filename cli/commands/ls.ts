import type { Argv } from "yargs";
import { BlobStore } from "../../src/repo/blob-store.js";
import { resolveSnapshot } from "../../src/repo/snapshots.js";
import type { TreeNode } from "../../src/repo/tree.js";
import { rawName } from "../../src/repo/tree.js";
import { displayPath, findNode, loadTree } from "../../src/restore/tree-walk.js";
import { shownPath } from "../output.js";
import type { RepoArgs } from "../session.js";
import { openRepository } from "../session.js";

interface LsArgs extends RepoArgs {
  snapshot: string;
  path?: string;
  json?: boolean;
  long?: boolean;
}

export const lsCommand = {
  command: "ls <snapshot> [path]",
  describe: "list the files of a snapshot, recursively, under PATH",
  builder: (y: Argv) =>
    y
      .positional("snapshot", { type: "string", describe: "id, unique id prefix, or latest" })
      .positional("path", { type: "string", describe: "a path inside the snapshot (default /)" })
      .option("long", { alias: "l", type: "boolean", describe: "show mode, size and time" }),
  handler: async (args: LsArgs) => {
    const repo = await openRepository(args);
    const snap = await resolveSnapshot(repo, args.snapshot);
    const store = new BlobStore(repo);
    await store.loadIndex();
    const { node, names } = await findNode(store, snap.tree, args.path ?? "/");
    const print = (n: TreeNode, at: Buffer[]) => {
      const p = displayPath(at);
      if (args.json) {
        process.stdout.write(
          `${JSON.stringify({ path: p, type: n.type, size: n.size ?? 0, mode: n.mode, mtime: mtimeIso(n), uid: n.uid, gid: n.gid, ...(n.type === "symlink" ? { target: n.target } : {}) })}\n`,
        );
      } else if (args.long) {
        const size = String(n.size ?? 0).padStart(12);
        process.stdout.write(
          `${n.type.padEnd(8)} ${n.mode.toString(8).padStart(4, "0")} ${size} ${mtimeIso(n)} ${shownPath(p)}\n`,
        );
      } else process.stdout.write(`${shownPath(p)}\n`);
    };
    const walk = async (n: TreeNode, at: Buffer[]): Promise<void> => {
      if (at.length > 0) print(n, at);
      if (n.type === "dir" && n.subtree !== undefined) {
        for (const c of (await loadTree(store, n.subtree)).nodes)
          await walk(c, [...at, rawName(c)]);
      }
    };
    await walk(node, names);
  },
};

function mtimeIso(n: TreeNode): string {
  return new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString();
}
