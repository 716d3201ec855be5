import type { BigIntStats } from "node:fs";
import type { NodeType, TreeNode } from "../repo/tree.js";
import { nameFields } from "../repo/tree.js";

export function nodeType(st: BigIntStats): NodeType | null {
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
export function metadataNode(name: Buffer, type: NodeType, st: BigIntStats): TreeNode {
  const node: TreeNode = {
    ...nameFields(name),
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
  };
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
export function changedBetween(a: BigIntStats, b: BigIntStats): boolean {
  return a.size !== b.size || a.mtimeNs !== b.mtimeNs || a.ctimeNs !== b.ctimeNs;
}

export function joinPath(dir: Buffer, name: Buffer): Buffer {
  if (dir.length > 0 && dir[dir.length - 1] === 0x2f) return Buffer.concat([dir, name]);
  return Buffer.concat([dir, Buffer.from("/"), name]);
}
