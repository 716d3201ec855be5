import { ObjectKind } from "../crypto/seal.js";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { Tree, TreeNode } from "../repo/tree.js";
import { decodeTree, rawName } from "../repo/tree.js";

export async function loadTree(store: BlobStore, id: string): Promise<Tree> {
  return decodeTree(await store.load(ObjectKind.tree, id), `tree ${id}`);
}

/** Display form of a snapshot path built from raw names: "/" + names joined by "/". */
export function displayPath(parts: readonly Buffer[]): string {
  return `/${parts.map((p) => p.toString()).join("/")}`;
}

/**
 * Finds the node at `path` ("/home/a/file") and the raw names leading to it; the root is a
 * synthetic dir node. Throws UserError when the path is not in the snapshot.
 */
export async function findNode(
  store: BlobStore,
  rootTree: string,
  path: string,
): Promise<{ node: TreeNode; names: Buffer[] }> {
  let node: TreeNode = rootNode(rootTree);
  const names: Buffer[] = [];
  for (const part of path.split("/").filter((p) => p.length > 0)) {
    if (node.type !== "dir" || node.subtree === undefined) {
      throw new UserError(
        `${path} is not in the snapshot: ${displayPath(names)} is not a directory`,
      );
    }
    const want = Buffer.from(part);
    const next = (await loadTree(store, node.subtree)).nodes.find((n) => rawName(n).equals(want));
    if (next === undefined) throw new UserError(`${path} is not in the snapshot: see coffer ls`);
    names.push(want);
    node = next;
  }
  return { node, names };
}

export function rootNode(rootTree: string): TreeNode {
  return { name: "", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: "0", subtree: rootTree };
}
