import { ObjectKind } from "../crypto/seal.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { decodeTree } from "../repo/tree.js";

/**
 * One directory of the parent snapshot, by raw name, for the file cache: a file whose
 * size, mtime, ctime and inode match its node in the parent is not read again.
 */
export class ParentDir {
  readonly #nodes: Map<string, TreeNode>;
  /** The parent tree's nodes in order, and its id: a directory whose new nodes are the
   * same, field for field, is that tree blob, so the walk neither encodes nor hashes it. */
  readonly #list: readonly TreeNode[];
  readonly id: string | undefined;

  private constructor(list: readonly TreeNode[], id?: string) {
    this.#list = list;
    // Keyed by the name fields as stored: a raw name per node would cost a buffer and a
    // conversion for each of the tens of thousands of nodes an unchanged re-run loads.
    this.#nodes = new Map(list.map((n) => [nameKey(n), n]));
    this.id = id;
  }

  static readonly empty = new ParentDir([]);

  /** Loads a parent tree; a parent that cannot be read just means no cache. */
  static async load(store: BlobStore, treeId: string | undefined): Promise<ParentDir> {
    if (treeId === undefined || !store.index.has(treeId)) return ParentDir.empty;
    try {
      const plaintext = await store.load(ObjectKind.tree, treeId);
      return new ParentDir(decodeTree(plaintext, `tree ${treeId}`).nodes, treeId);
    } catch {
      return ParentDir.empty;
    }
  }

  /**
   * True when nodes are this tree's nodes: as many, in the same order, each with the same
   * fields and values. The tree blob then decodes to exactly these nodes, whatever bytes a
   * fresh encoding would give.
   */
  sameNodes(nodes: readonly TreeNode[]): boolean {
    const old = this.#list;
    if (this.id === undefined || old.length !== nodes.length) return false;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i] as TreeNode;
      if (n !== old[i] && !sameFields(n, old[i] as TreeNode)) return false;
    }
    return true;
  }

  /**
   * The parent's node itself when `node` equals it field for field, else `node`. The
   * parent tree's nodes are held while its directory is walked anyway; a new copy of each
   * unchanged one cost ~400 bytes an entry more (a directory of 200,000 unchanged files:
   * 80 MB), and sameNodes then finds them at once.
   */
  sameOrNew(node: TreeNode, before: TreeNode | undefined): TreeNode {
    return before !== undefined && sameFields(node, before) ? before : node;
  }

  /** The parent's node with the same name as `node` (made by metadataNode). */
  get(node: Pick<TreeNode, "name" | "nameB64">): TreeNode | undefined {
    return this.#nodes.get(nameKey(node));
  }

  /** The subtree of a child directory, when the parent had a directory by that name. */
  subtree(node: Pick<TreeNode, "name" | "nameB64">): string | undefined {
    const n = this.get(node);
    return n?.type === "dir" ? n.subtree : undefined;
  }
}

/**
 * One string per raw name: the name itself when it is UTF-8 (nameB64 unset), else NUL and
 * its base64. No file name holds a NUL, so the two kinds never meet, and each is one-to-one.
 */
function nameKey(n: Pick<TreeNode, "name" | "nameB64">): string {
  return n.nameB64 === undefined ? n.name : `\0${n.nameB64}`;
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

/** Field-for-field equality of two tree nodes (values are strings, numbers or string lists). */
function sameFields(a: TreeNode, b: TreeNode): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  let fields = 0;
  for (const k in x) {
    fields++;
    const u = x[k];
    const v = y[k];
    if (u === v) continue;
    if (!Array.isArray(u) || !Array.isArray(v) || u.length !== v.length) return false;
    for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  }
  for (const _ in y) fields--;
  return fields === 0;
}
