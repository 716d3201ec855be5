import type { Readable } from "node:stream";
import tar from "tar-stream";
import type { Archiver } from "../archiver/archiver.js";
import { streamReader } from "../chunker/chunk-reader.js";
import { UserError } from "../errors.js";
import type { TreeNode } from "../repo/tree.js";
import { nameFields, rawName, targetFields } from "../repo/tree.js";

type Leaf = { leaf: TreeNode };
interface Dir {
  meta: TreeNode | null;
  children: Map<string, Dir | Leaf>;
}

const isDir = (c: Dir | Leaf): c is Dir => "children" in c;

/** What a hostile name becomes: a ".." component is kept as data under this literal name. */
export const dotDotName = "%2E%2E";

/**
 * A tar entry name as path components inside the snapshot. Leading "/" and "./" are
 * dropped (as GNU tar does); ".." becomes the literal name "%2E%2E", so the entry is kept
 * but can never name a parent directory on restore.
 */
export function tarPathParts(name: string): { parts: string[]; renamed: boolean } {
  let renamed = false;
  const parts = name
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .map((p) => {
      if (p !== "..") return p;
      renamed = true;
      return dotDotName;
    });
  return { parts, renamed };
}

/** Nanoseconds since the epoch: PAX mtime (fractional seconds) when present, else whole seconds. */
/** tar-stream's typings leave `pax` untyped: it is the PAX record of the entry, key → value. */
function paxOf(h: tar.Header): Record<string, string> {
  return ((h as { pax?: Record<string, string> }).pax ?? {}) as Record<string, string>;
}

function mtimeNs(h: tar.Header): string {
  const pax = paxOf(h).mtime;
  // Times before 1970 fall back to the header's whole seconds.
  if (pax !== undefined && /^\d+(\.\d+)?$/.test(pax)) {
    const [sec = "0", frac = ""] = pax.split(".");
    return (BigInt(sec) * 1_000_000_000n + BigInt(`${frac}000000000`.slice(0, 9))).toString();
  }
  return (BigInt(Math.floor((h.mtime?.getTime() ?? 0) / 1000)) * 1_000_000_000n).toString();
}

function paxNumber(h: tar.Header, key: string, fallback: number | undefined): number {
  const v = paxOf(h)[key];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : (fallback ?? 0);
}

/**
 * Reads a tar stream and stores each entry as a node of the snapshot: files, directories,
 * symlinks, hard links, fifos and devices, with mode, owner and mtime. Entry contents are
 * chunked as they arrive; only the tree's metadata (not content) is held until the end,
 * because a tar may list a directory's children anywhere in the stream.
 */
export async function backupTarStream(
  archiver: Archiver,
  input: Readable,
  warn: (path: string, message: string) => void = () => {},
): Promise<string> {
  const root: Dir = { meta: null, children: new Map() };
  const now = (BigInt(Date.now()) * 1_000_000n).toString();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let nextInode = 1;
  const linkGroups = new Map<string, TreeNode[]>();

  const dirAt = (parts: readonly string[]): Dir => {
    let d = root;
    for (const p of parts) {
      const c = d.children.get(p);
      if (c !== undefined && isDir(c)) {
        d = c;
        continue;
      }
      // A leaf where a directory is needed (a symlink, then a file "through" it): the
      // directory wins, so nothing is ever written through a link on restore.
      const next: Dir = { meta: null, children: new Map() };
      d.children.set(p, next);
      d = next;
    }
    return d;
  };
  const leafAt = (parts: readonly string[]): TreeNode | undefined => {
    let c: Dir | Leaf | undefined = root;
    for (const p of parts) {
      if (c === undefined || !isDir(c)) return undefined;
      c = c.children.get(p);
    }
    return c !== undefined && !isDir(c) ? c.leaf : undefined;
  };

  const extract = tar.extract();
  input.on("error", (err) => extract.destroy(err));
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const { parts, renamed } = tarPathParts(h.name);
      if (renamed) warn(h.name, `".." stored as ${dotDotName}`);
      const base: TreeNode = {
        ...nameFields(Buffer.from(parts.at(-1) ?? "")),
        type: "file",
        mode: (h.mode ?? 0o644) & 0o7777,
        uid: paxNumber(h, "uid", h.uid),
        gid: paxNumber(h, "gid", h.gid),
        mtime: mtimeNs(h),
      };
      if (h.type === "directory") {
        entry.resume();
        if (parts.length > 0) dirAt(parts).meta = { ...base, type: "dir" };
        continue;
      }
      if (parts.length === 0) {
        entry.resume();
        warn(h.name, "entry without a name: skipped");
        continue;
      }
      const parent = dirAt(parts.slice(0, -1));
      const name = parts.at(-1) as string;
      let node: TreeNode | null = base;
      switch (h.type) {
        case "file":
        case "contiguous-file": {
          const { content, size } = await archiver.storeContent(
            streamReader(entry as unknown as AsyncIterable<Buffer>),
            h.size ?? 0,
          );
          node = { ...base, size, content };
          break;
        }
        case "symlink":
          entry.resume();
          node = { ...base, type: "symlink", ...targetFields(Buffer.from(h.linkname ?? "")) };
          break;
        case "link": {
          entry.resume();
          const target = leafAt(tarPathParts(h.linkname ?? "").parts);
          if (target === undefined || target.type !== "file") {
            warn(h.name, `hard link to ${h.linkname} which is not an earlier file: skipped`);
            node = null;
            break;
          }
          if (target.inode === undefined) {
            target.dev = "0";
            target.inode = String(nextInode++);
            linkGroups.set(target.inode, [target]);
          }
          node = {
            ...base,
            size: target.size,
            content: target.content,
            dev: "0",
            inode: target.inode,
          };
          linkGroups.get(target.inode)?.push(node);
          break;
        }
        case "fifo":
          entry.resume();
          node = { ...base, type: "fifo" };
          break;
        case "character-device":
        case "block-device":
          entry.resume();
          node = {
            ...base,
            type: h.type === "block-device" ? "blockdev" : "chardev",
            rdev: String(((h.devmajor ?? 0) << 8) | (h.devminor ?? 0)),
          };
          break;
        default:
          entry.resume();
          warn(h.name, `tar entry type ${h.type ?? "unknown"} not supported: skipped`);
          node = null;
      }
      if (node !== null) {
        if (parent.children.has(name)) warn(h.name, "appears twice: the later entry is kept");
        parent.children.set(name, { leaf: node });
      }
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`--tar -: not a readable tar stream: ${(err as Error).message}`);
  }
  for (const group of linkGroups.values()) for (const n of group) n.links = group.length;

  const saveDir = async (d: Dir): Promise<string> => {
    const nodes: TreeNode[] = [];
    for (const [name, c] of d.children) {
      if (!isDir(c)) {
        nodes.push(c.leaf);
        continue;
      }
      const meta = c.meta ?? {
        ...nameFields(Buffer.from(name)),
        type: "dir" as const,
        mode: 0o755,
        uid,
        gid,
        mtime: now,
      };
      archiver.counters.dirs++;
      nodes.push({ ...meta, ...nameFields(Buffer.from(name)), subtree: await saveDir(c) });
    }
    nodes.sort((a, b) => Buffer.compare(rawName(a), rawName(b)));
    return archiver.storeTree(nodes);
  };
  return saveDir(root);
}
