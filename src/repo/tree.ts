import { isUtf8 } from "node:buffer";
import { IntegrityError } from "../errors.js";

// A tree blob is one directory: JSON {"nodes": [...]}, nodes sorted by name bytes
// (docs/FORMAT.md §Trees). Names and link targets that are not valid UTF-8 are stored as
// base64 of their raw bytes, so every name a filesystem allows survives a round trip.

export type NodeType = "file" | "dir" | "symlink" | "fifo" | "socket" | "chardev" | "blockdev";

export interface TreeNode {
  name: string;
  /** Set instead of a meaningful `name` when the raw name is not valid UTF-8. */
  nameB64?: string;
  type: NodeType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a decimal string. */
  mtime: string;
  ctime?: string;
  dev?: string;
  inode?: string;
  /** Hard link count; with dev and inode it lets restore re-create hard links. */
  links?: number;
  size?: number;
  content?: string[];
  subtree?: string;
  target?: string;
  targetB64?: string;
  rdev?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

/** Valid UTF-8 is exactly what decodes and re-encodes to the same bytes. */
function isUtf8RoundTrip(b: Buffer): boolean {
  return isUtf8(b);
}

/** Fields for a raw name: `name` when UTF-8, `nameB64` otherwise. */
export function nameFields(raw: Buffer): { name: string; nameB64?: string } {
  if (isUtf8RoundTrip(raw)) return { name: raw.toString("utf8") };
  return { name: raw.toString("utf8"), nameB64: raw.toString("base64") };
}

export function targetFields(raw: Buffer): { target: string; targetB64?: string } {
  if (isUtf8RoundTrip(raw)) return { target: raw.toString("utf8") };
  return { target: raw.toString("utf8"), targetB64: raw.toString("base64") };
}

export function rawName(n: TreeNode): Buffer {
  return n.nameB64 !== undefined ? Buffer.from(n.nameB64, "base64") : Buffer.from(n.name, "utf8");
}

export function rawTarget(n: TreeNode): Buffer {
  if (n.targetB64 !== undefined) return Buffer.from(n.targetB64, "base64");
  return Buffer.from(n.target ?? "", "utf8");
}

export function encodeTree(t: Tree): Buffer {
  return Buffer.from(JSON.stringify(t));
}

export function decodeTree(b: Buffer, what: string): Tree {
  let v: unknown;
  try {
    v = JSON.parse(b.toString("utf8"));
  } catch {
    throw new IntegrityError(`${what} is not a valid tree`);
  }
  const t = v as Tree;
  if (typeof t !== "object" || t === null || !Array.isArray(t.nodes)) {
    throw new IntegrityError(`${what} is not a valid tree`);
  }
  return t;
}
