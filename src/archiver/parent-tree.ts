import { ObjectKind } from "../crypto/seal.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { decodeTree, rawName } from "../repo/tree.js";

/**
 * One directory of the parent snapshot, by raw name, for the file cache: a file whose
 * size, mtime, ctime and inode match its node in the parent is not read again.
 */
export class ParentDir {
  readonly #nodes: Map<string, TreeNode>;
  /** The parent tree's id and plaintext: a directory whose new tree has the same bytes
   * is the same blob, so the walk skips hashing it again. */
  readonly id: string | undefined;
  readonly plaintext: Buffer | undefined;

  private constructor(nodes: Map<string, TreeNode>, id?: string, plaintext?: Buffer) {
    this.#nodes = nodes;
    this.id = id;
    this.plaintext = plaintext;
  }

  static readonly empty = new ParentDir(new Map());

  /** Loads a parent tree; a parent that cannot be read just means no cache. */
  static async load(store: BlobStore, treeId: string | undefined): Promise<ParentDir> {
    if (treeId === undefined || !store.index.has(treeId)) return ParentDir.empty;
    try {
      const plaintext = await store.load(ObjectKind.tree, treeId);
      const tree = decodeTree(plaintext, `tree ${treeId}`);
      const nodes = new Map(tree.nodes.map((n) => [rawName(n).toString("latin1"), n]));
      return new ParentDir(nodes, treeId, plaintext);
    } catch {
      return ParentDir.empty;
    }
  }

  get(name: Buffer): TreeNode | undefined {
    return this.#nodes.get(name.toString("latin1"));
  }

  /** The subtree of a child directory, when the parent had one by that name. */
  subtree(name: Buffer): string | undefined {
    const n = this.get(name);
    return n?.type === "dir" ? n.subtree : undefined;
  }
}

/** The content of an unchanged file, or null when it must be read again. */
export function unchangedContent(
  store: BlobStore,
  current: TreeNode,
  parent: TreeNode | undefined,
): string[] | null {
  if (parent === undefined || parent.type !== "file" || parent.content === undefined) return null;
  const same =
    parent.size === current.size &&
    parent.mtime === current.mtime &&
    parent.ctime === current.ctime &&
    parent.inode === current.inode &&
    parent.dev === current.dev;
  if (!same) return null;
  // Only reuse what the index still has (prune may have removed it).
  return parent.content.every((id) => store.has(id)) ? parent.content : null;
}
