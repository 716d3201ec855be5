import { isUtf8 } from "node:buffer";
import type { BigIntStats } from "node:fs";
import { readdirSync } from "node:fs";
import type { NodeType, TreeNode } from "../repo/tree.js";

/** The part of lstat's BigIntStats the walk reads (the lister provides the same). */
export type EntryStat = Pick<
  BigIntStats,
  | "mode"
  | "uid"
  | "gid"
  | "size"
  | "mtimeNs"
  | "ctimeNs"
  | "dev"
  | "ino"
  | "nlink"
  | "rdev"
  | "isFile"
  | "isDirectory"
  | "isSymbolicLink"
  | "isFIFO"
  | "isSocket"
  | "isCharacterDevice"
  | "isBlockDevice"
>;

export function nodeType(st: EntryStat): NodeType | null {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "chardev";
  if (st.isBlockDevice()) return "blockdev";
  return null;
}

/** The metadata part of a tree node, from lstat with bigint (nanosecond) times. */
export function metadataNode(name: Buffer, type: NodeType, st: EntryStat): TreeNode {
  // Two literals rather than a spread of nameFields(): V8 builds spread objects on a slow
  // path (20 µs a node, most of an unchanged re-run). The key order, hence the tree's
  // bytes and id, is the same either way.
  const text = name.toString("utf8");
  const mode = Number(st.mode & 0o7777n);
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const mtime = st.mtimeNs.toString();
  const ctime = st.ctimeNs.toString();
  const node: TreeNode = isUtf8(name)
    ? { name: text, type, mode, uid, gid, mtime, ctime }
    : { name: text, nameB64: name.toString("base64"), type, mode, uid, gid, mtime, ctime };
  if (type === "file") {
    node.size = Number(st.size);
    node.dev = st.dev.toString();
    node.inode = st.ino.toString();
    node.links = Number(st.nlink);
  }
  if (type === "chardev" || type === "blockdev") node.rdev = st.rdev.toString();
  return node;
}

/** True when the file's size, mtime or ctime differs between two stats (it changed). */
export function changedBetween(a: EntryStat, b: EntryStat): boolean {
  return a.size !== b.size || a.mtimeNs !== b.mtimeNs || a.ctimeNs !== b.ctimeNs;
}

/**
 * dir's entry names sorted by their bytes, as latin1 strings: one character per byte, so
 * every name survives, at a fraction of a Buffer's memory per name (~40 bytes against
 * ~265 for a Buffer with its own memory, as readdir's are); and sorting latin1 strings
 * compares their bytes. Throws what readdir throws.
 */
export function readSortedNames(dir: Buffer): string[] {
  return readdirSync(dir, { encoding: "latin1" }).sort();
}

export function joinPath(dir: Buffer, name: Buffer): Buffer {
  if (dir.length > 0 && dir[dir.length - 1] === 0x2f) return Buffer.concat([dir, name]);
  return Buffer.concat([dir, Buffer.from("/"), name]);
}
