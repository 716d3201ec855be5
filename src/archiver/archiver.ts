import type { BigIntStats } from "node:fs";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { ByteReader } from "../chunker/chunk-reader.js";
import { readChunks } from "../chunker/chunk-reader.js";
import type { FastCDC } from "../chunker/fastcdc.js";
import { ObjectKind } from "../crypto/seal.js";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { BackupSummary } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import { encodeTree, nameFields, targetFields } from "../repo/tree.js";
import { fileReader } from "../source/file-reader.js";
import { changedBetween, joinPath, metadataNode, nodeType } from "../source/fs-node.js";
import { buildPathTrie, type PathTrie } from "./path-trie.js";

export interface ArchiverEvents {
  /** A file or directory that could not be read: the backup goes on without it (exit 3). */
  onError(path: string, message: string): void;
  /** Something the user should know that does not make the snapshot incomplete. */
  onWarning(path: string, message: string): void;
  onFile?(path: string, bytes: number): void;
}

export interface ArchiverOptions {
  exclude: (absPath: string) => boolean;
}

type Counters = Omit<BackupSummary, "durationMs">;

/**
 * Walks sources and stores them: file contents as data blobs (one chunk stream per file,
 * so a chunk never spans two files) and each directory as a tree blob, children first.
 */
export class Archiver {
  readonly #store: BlobStore;
  readonly #cdc: FastCDC;
  readonly #events: ArchiverEvents;
  readonly #exclude: (absPath: string) => boolean;
  readonly #scratch: Buffer;
  /** dev:inode → content of hard-linked files already stored in this run. */
  readonly #hardLinks = new Map<string, string[]>();
  readonly counters: Counters = {
    files: 0,
    dirs: 0,
    bytesRead: 0,
    bytesAdded: 0,
    blobsAdded: 0,
    errors: 0,
  };

  constructor(store: BlobStore, cdc: FastCDC, events: ArchiverEvents, opts: ArchiverOptions) {
    this.#store = store;
    this.#cdc = cdc;
    this.#events = events;
    this.#exclude = opts.exclude;
    this.#scratch = Buffer.allocUnsafe(2 * cdc.params.max);
  }

  /** Backs up absolute paths; returns the root tree id. Intermediate dirs keep their metadata. */
  async backupPaths(paths: readonly string[]): Promise<string> {
    const trie = buildPathTrie(paths);
    const root = Buffer.from("/");
    if (!trie.included) return this.saveVirtualDir(root, trie);
    const tree = await this.saveDir(root);
    if (tree === null) throw new UserError("cannot read /: nothing was backed up");
    return tree;
  }

  /** Backs up one byte stream as a file named `name` at the root of the snapshot. */
  async backupStream(name: string, reader: ByteReader): Promise<string> {
    const now = BigInt(Date.now()) * 1_000_000n;
    const node: TreeNode = {
      ...nameFields(Buffer.from(name)),
      type: "file",
      mode: 0o600,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      mtime: now.toString(),
    };
    const { content, size } = await this.saveContent(reader);
    node.content = content;
    node.size = size;
    this.counters.files++;
    return this.saveTree([node]);
  }

  private async saveVirtualDir(dir: Buffer, trie: PathTrie): Promise<string> {
    const nodes: TreeNode[] = [];
    for (const [name, child] of trie.children) {
      const p = joinPath(dir, Buffer.from(name));
      const node = child.included
        ? await this.saveEntry(p, Buffer.from(name))
        : await this.intermediate(p, name, child);
      if (node) nodes.push(node);
    }
    return this.saveTree(nodes);
  }

  private async intermediate(p: Buffer, name: string, trie: PathTrie): Promise<TreeNode | null> {
    const st = await this.lstat(p);
    if (st === null) return null;
    const node = metadataNode(Buffer.from(name), "dir", st);
    node.subtree = await this.saveVirtualDir(p, trie);
    return node;
  }

  private async lstat(p: Buffer): Promise<BigIntStats | null> {
    try {
      return await fs.lstat(p, { bigint: true });
    } catch (err) {
      this.error(p, err);
      return null;
    }
  }

  private error(p: Buffer, err: unknown): void {
    this.counters.errors++;
    const e = err as NodeJS.ErrnoException;
    this.#events.onError(
      p.toString(),
      e.code ? `${e.code}: ${e.message.split(":")[0]}` : String(err),
    );
  }

  /** One directory entry as a tree node, or null when excluded or unreadable. */
  private async saveEntry(p: Buffer, name: Buffer): Promise<TreeNode | null> {
    const pathText = p.toString();
    if (this.#exclude(pathText)) return null;
    const st = await this.lstat(p);
    if (st === null) return null;
    const type = nodeType(st);
    if (type === null) {
      this.#events.onWarning(pathText, "unknown file type: skipped");
      return null;
    }
    const node = metadataNode(name, type, st);
    switch (type) {
      case "dir": {
        const subtree = await this.saveDir(p);
        if (subtree === null) return null;
        node.subtree = subtree;
        this.counters.dirs++;
        return node;
      }
      case "file":
        return (await this.saveFile(p, st, node)) ? node : null;
      case "symlink":
        try {
          Object.assign(node, targetFields(await fs.readlink(p, { encoding: "buffer" })));
        } catch (err) {
          this.error(p, err);
          return null;
        }
        return node;
      default:
        // fifos, sockets and devices are recorded, never opened (opening a fifo blocks).
        return node;
    }
  }

  private async saveDir(p: Buffer): Promise<string | null> {
    let names: Buffer[];
    try {
      names = await fs.readdir(p, { encoding: "buffer" });
    } catch (err) {
      this.error(p, err);
      return null;
    }
    names.sort(Buffer.compare);
    const nodes: TreeNode[] = [];
    for (const name of names) {
      const node = await this.saveEntry(joinPath(p, name), name);
      if (node) nodes.push(node);
    }
    return this.saveTree(nodes);
  }

  private async saveFile(p: Buffer, before: BigIntStats, node: TreeNode): Promise<boolean> {
    const linkKey = before.nlink > 1n ? `${before.dev}:${before.ino}` : null;
    const linked = linkKey !== null ? this.#hardLinks.get(linkKey) : undefined;
    if (linked !== undefined) {
      node.content = linked;
      this.counters.files++;
      return true;
    }
    let fh: fs.FileHandle;
    try {
      // O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a fifo after lstat is
      // neither followed nor waited on; fstat below confirms it is still a regular file.
      fh = await fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      this.error(p, err);
      return false;
    }
    try {
      const opened = await fh.stat({ bigint: true });
      if (!opened.isFile()) {
        this.#events.onWarning(p.toString(), "changed type while being backed up: skipped");
        return false;
      }
      const { content, size } = await this.saveContent(fileReader(fh));
      const after = await fh.stat({ bigint: true });
      if (changedBetween(before, after) || BigInt(size) !== after.size) {
        this.#events.onWarning(
          p.toString(),
          "file changed while being read: the snapshot may hold a mix",
        );
      }
      node.content = content;
      node.size = size;
      this.counters.files++;
      this.#events.onFile?.(p.toString(), size);
      if (linkKey !== null) this.#hardLinks.set(linkKey, content);
      return true;
    } catch (err) {
      this.error(p, err);
      return false;
    } finally {
      await fh.close();
      await this.#store.checkpoint();
    }
  }

  private async saveContent(reader: ByteReader): Promise<{ content: string[]; size: number }> {
    const content: string[] = [];
    let size = 0;
    for await (const chunk of readChunks(reader, this.#cdc, this.#scratch)) {
      size += chunk.length;
      const r = await this.#store.save(ObjectKind.data, chunk);
      content.push(r.id);
      if (r.added > 0) {
        this.counters.bytesAdded += r.added;
        this.counters.blobsAdded++;
      }
    }
    this.counters.bytesRead += size;
    return { content, size };
  }

  private async saveTree(nodes: TreeNode[]): Promise<string> {
    const r = await this.#store.save(ObjectKind.tree, encodeTree({ nodes }));
    if (r.added > 0) {
      this.counters.bytesAdded += r.added;
      this.counters.blobsAdded++;
    }
    return r.id;
  }
}

export function absolutePaths(paths: readonly string[]): string[] {
  return paths.map((p) => path.resolve(p));
}
