import { once } from "node:events";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { IntegrityError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { rawName, rawTarget } from "../repo/tree.js";
import { fileChunks } from "./file-content.js";
import { checkName } from "./safe-path.js";
import { loadTree } from "./tree-walk.js";

export interface TarCounters {
  files: number;
  dirs: number;
  bytes: number;
  skipped: number;
}

/** tar-stream clamps owners above the ustar field's range unless they go in PAX records. */
const ustarIdMax = 0o777777;

/**
 * Writes a snapshot tree (or a subtree) as a standard tar stream: PAX headers for long
 * names, sub-second mtimes and large owners; hard links as link entries to the first path
 * of each inode; symlinks as they were recorded. Names are relative ("home/a/file"), each
 * component checked like the directory restorer does, so the archive is safe to extract
 * with any tar. Content is streamed chunk by chunk with backpressure.
 */
export async function writeTar(
  store: BlobStore,
  root: TreeNode,
  prefix: string[],
  out: Writable,
  onWarning: (path: string, message: string) => void = () => {},
): Promise<TarCounters> {
  const pack = tar.pack();
  const counters: TarCounters = { files: 0, dirs: 0, bytes: 0, skipped: 0 };
  const firstLink = new Map<string, string>();
  const piping = pipeline(pack, out);
  // A failure downstream (EPIPE, ENOSPC) must stop the walk, not leave it waiting on drain.
  let failed: unknown = null;
  piping.catch((err) => {
    failed = err;
  });

  const header = (node: TreeNode, name: string): tar.Header => {
    const ns = BigInt(node.mtime);
    const secs = Number(ns / 1_000_000_000n);
    const pax: Record<string, string> = {};
    if (ns % 1_000_000_000n !== 0n && ns > 0n) {
      pax.mtime = `${secs}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}`;
    }
    if (node.uid > ustarIdMax) pax.uid = String(node.uid);
    if (node.gid > ustarIdMax) pax.gid = String(node.gid);
    return {
      name,
      mode: node.mode & 0o7777,
      uid: node.uid,
      gid: node.gid,
      mtime: new Date(secs * 1000),
      ...(Object.keys(pax).length > 0 ? { pax } : {}),
    } as tar.Header;
  };

  const add = (h: tar.Header): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry(h, (err) => (err ? reject(err) : resolve()));
    });

  const addFile = async (node: TreeNode, name: string): Promise<void> => {
    const size = node.size ?? 0;
    let entry!: ReturnType<typeof pack.entry>;
    const done = new Promise<void>((resolve, reject) => {
      entry = pack.entry({ ...header(node, name), type: "file", size }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
    done.catch(() => {});
    let written = 0;
    for await (const chunk of fileChunks(store, node.content ?? [])) {
      if (failed) throw failed;
      written += chunk.length;
      if (written > size) break;
      if (!entry.write(chunk)) await Promise.race([once(entry, "drain"), piping]);
    }
    if (written !== size) {
      entry.destroy();
      throw new IntegrityError(
        `${name}: the snapshot says ${size} bytes, its chunks hold ${written}`,
      );
    }
    (entry as unknown as { end(): void }).end();
    await done;
    counters.bytes += size;
  };

  const walk = async (node: TreeNode, names: string[]): Promise<void> => {
    const name = names.join("/");
    if (failed) throw failed;
    switch (node.type) {
      case "dir": {
        if (names.length > 0) {
          await add({ ...header(node, `${name}/`), type: "directory" });
          counters.dirs++;
        }
        if (node.subtree === undefined) throw new IntegrityError(`directory /${name} has no tree`);
        const tree = await loadTree(store, node.subtree);
        for (const child of tree.nodes) {
          const raw = rawName(child);
          checkName(raw, `/${name}`);
          await walk(child, [...names, raw.toString()]);
        }
        return;
      }
      case "file": {
        const key =
          (node.links ?? 1) > 1 && node.inode !== undefined ? `${node.dev}:${node.inode}` : null;
        const first = key !== null ? firstLink.get(key) : undefined;
        if (first !== undefined) {
          await add({ ...header(node, name), type: "link", linkname: first, size: 0 });
        } else {
          await addFile(node, name);
          if (key !== null) firstLink.set(key, name);
        }
        counters.files++;
        return;
      }
      case "symlink":
        await add({ ...header(node, name), type: "symlink", linkname: rawTarget(node).toString() });
        counters.files++;
        return;
      case "fifo":
        await add({ ...header(node, name), type: "fifo" });
        counters.files++;
        return;
      case "chardev":
      case "blockdev": {
        const rdev = Number(node.rdev ?? 0);
        await add({
          ...header(node, name),
          type: node.type === "chardev" ? "character-device" : "block-device",
          devmajor: (rdev >> 8) & 0xfff,
          devminor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
        });
        counters.files++;
        return;
      }
      default:
        counters.skipped++;
        onWarning(`/${name}`, `${node.type} cannot be stored in a tar: skipped`);
    }
  };

  try {
    await walk(root, prefix);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await piping.catch(() => {});
    throw err;
  }
  await piping;
  return counters;
}
