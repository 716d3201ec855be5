import type { BigIntStats } from "node:fs";
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  readSync,
} from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import pLimit from "p-limit";
import type { ByteReader } from "../chunker/chunk-reader.js";
import { readChunks } from "../chunker/chunk-reader.js";
import type { FastCDC } from "../chunker/fastcdc.js";
import { ObjectKind } from "../crypto/seal.js";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { BackupSummary } from "../repo/snapshot.js";
import { emptySummary } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import { encodeTree, nameFields, targetFields } from "../repo/tree.js";
import { excludeNothing } from "../source/exclude.js";
import { fileReader } from "../source/file-reader.js";
import type { EntryStat } from "../source/fs-node.js";
import {
  changedBetween,
  joinPath,
  metadataNode,
  nodeType,
  readSortedNames,
} from "../source/fs-node.js";
import type { DirLister } from "./dir-lister.js";
import { ParentDir, unchangedContent } from "./parent-tree.js";
import { buildPathTrie, type PathTrie } from "./path-trie.js";

/**
 * Files under smallFileLimit are read whole, synchronously, as the walk meets them.
 * Larger ones are read concurrently with the walk, at most largeFilesInFlight at once,
 * each through a pooled buffer of 2 × max chunk size: memory stays bounded.
 */
const smallFileLimit = 1024 * 1024;
const largeFilesInFlight = 2;
/** The walk lets timers and signals run at least this often (see yieldToEventLoop). */
const yieldEveryMs = 20;

export interface ArchiverEvents {
  /** A file or directory that could not be read: the backup goes on without it (exit 3). */
  onError(path: string, message: string): void;
  /** Something the user should know that does not make the snapshot incomplete. */
  onWarning(path: string, message: string): void;
  onFile?(path: string, bytes: number): void;
  /** Work done so far, at most every 250 ms: bytes read plus the size of unchanged files. */
  onProgress?(done: { files: number; bytes: number; errors: number }): void;
}

export interface ArchiverOptions {
  exclude: (absPath: string) => boolean;
}

/** A node whose content may still be being read; wrapped so `await` does not flatten it. */
interface ReadResult {
  content: string[];
  size: number;
  /** fstat after the last read, to notice a file that changed while being read. */
  after: BigIntStats;
}

/** A tree node, or null for an entry left out (excluded, unreadable, vanished). */
type Entry = TreeNode | null;

interface Deferred {
  node: Promise<Entry>;
}

function done(node: Entry): Deferred {
  return { node: Promise.resolve(node) };
}

/** An entry's node once everything it waits for (walk, reads) is done. */
async function settled(entry: Entry | Promise<Deferred>): Promise<Entry> {
  return entry instanceof Promise ? (await entry).node : entry;
}

/**
 * Walks sources and stores them: file contents as data blobs (one chunk stream per file,
 * so a chunk never spans two files) and each directory as a tree blob, children first.
 */
export class Archiver {
  readonly #store: BlobStore;
  readonly #cdc: FastCDC;
  readonly #events: ArchiverEvents;
  /** null when nothing is excluded: no path string is built per entry then. */
  readonly #exclude: ((absPath: string) => boolean) | null;
  readonly #scratch: Buffer[] = [];
  /**
   * Small files are read one at a time into this buffer: the store copies what it keeps
   * before save() returns, and a fresh buffer per file only churns the allocator.
   */
  #smallScratch: Buffer | undefined;
  readonly #largeFiles = pLimit(largeFilesInFlight);
  /** Lists directories ahead of the walk on another thread, during backupPaths. */
  #lister: DirLister | null = null;
  /** dev:inode → content of hard-linked files already stored in this run. */
  readonly #hardLinks = new Map<string, Promise<string[]>>();
  #lastYield = Date.now();
  #lastProgress = 0;
  #bytesDone = 0;
  /** What the walk saw; bytesAdded and blobsAdded are the store's (see BlobStore.stats). */
  readonly counters: BackupSummary = emptySummary();

  constructor(store: BlobStore, cdc: FastCDC, events: ArchiverEvents, opts: ArchiverOptions) {
    this.#store = store;
    this.#cdc = cdc;
    this.#events = events;
    this.#exclude = opts.exclude === excludeNothing ? null : opts.exclude;
  }

  /**
   * Backs up absolute paths; returns the root tree id. Intermediate dirs keep their
   * metadata. `lister`, started on the same paths (DirLister.start), lists directories
   * ahead of the walk; it is stopped when the walk ends.
   */
  async backupPaths(
    paths: readonly string[],
    parentTree?: string,
    lister: DirLister | null = null,
  ): Promise<string> {
    this.#lister = lister;
    try {
      const trie = buildPathTrie(paths);
      const root = Buffer.from("/");
      const parent = await ParentDir.load(this.#store, parentTree);
      if (!trie.included) return await this.saveVirtualDir(root, trie, parent);
      const tree = await this.saveDir(root, parent);
      if (tree === null) throw new UserError("cannot read /: nothing was backed up");
      return tree;
    } finally {
      this.#lister = null;
      lister?.stop();
    }
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

  /**
   * Backs up the directory `dir` as the one entry of the snapshot's root, named `name`
   * (a pg_dump directory-format dump written to a temp directory).
   */
  async backupDirAs(name: string, dir: string): Promise<string> {
    const p = Buffer.from(dir);
    const st = this.lstat(p);
    if (st === null || !st.isDirectory()) throw new UserError(`${dir} is not a directory`);
    const subtree = await this.saveDir(p, await ParentDir.load(this.#store, undefined));
    if (subtree === null) throw new UserError(`cannot read ${dir}`);
    this.counters.dirs++;
    return this.saveTree([{ ...metadataNode(Buffer.from(name), "dir", st), subtree }]);
  }

  /**
   * Stores one byte stream as a file's content (a tar entry); returns its chunk ids and
   * size. `sizeHint` (the entry's declared size) keeps small entries off the 16 MiB buffer.
   */
  async storeContent(
    reader: ByteReader,
    sizeHint: number,
  ): Promise<{ content: string[]; size: number }> {
    const small = sizeHint < smallFileLimit;
    const buffer = small ? Buffer.allocUnsafe(sizeHint + 1) : this.takeScratch();
    try {
      const r = await this.saveContent(reader, buffer);
      this.counters.files++;
      return r;
    } finally {
      if (!small) this.#scratch.push(buffer);
      await this.#store.checkpoint();
    }
  }

  /** Stores a directory's nodes (sorted by name bytes) as a tree blob; returns its id. */
  storeTree(nodes: TreeNode[]): Promise<string> {
    return this.saveTree(nodes);
  }

  private async saveVirtualDir(dir: Buffer, trie: PathTrie, parent: ParentDir): Promise<string> {
    const nodes: TreeNode[] = [];
    for (const [name, child] of trie.children) {
      const raw = Buffer.from(name);
      const p = joinPath(dir, raw);
      const node = child.included
        ? await settled(this.saveEntry(p, raw, parent))
        : await this.intermediate(
            p,
            name,
            child,
            await ParentDir.load(this.#store, parent.subtree(nameFields(raw))),
          );
      if (node) nodes.push(node);
    }
    return this.saveTree(nodes);
  }

  private async intermediate(
    p: Buffer,
    name: string,
    trie: PathTrie,
    parent: ParentDir,
  ): Promise<TreeNode | null> {
    const st = this.lstat(p);
    if (st === null) return null;
    const node = metadataNode(Buffer.from(name), "dir", st);
    node.subtree = await this.saveVirtualDir(p, trie, parent);
    return node;
  }

  private lstat(p: Buffer): BigIntStats | null {
    // Synchronous: the walk is sequential anyway, and a cached lstat on the main thread
    // costs microseconds where a thread-pool round trip costs tens of them.
    try {
      return lstatSync(p, { bigint: true });
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

  /**
   * One directory entry as a tree node, or null when excluded or unreadable. What needs
   * no I/O beyond lstat (an unchanged file, a symlink, a device) is answered at once: an
   * unchanged re-run meets tens of thousands of those, and a promise and a microtask
   * turn for each cost more than its lstat. A directory is walked, and a small file read,
   * before the returned promise resolves; a large file's content is read concurrently
   * with the walk (its Deferred resolves when it is stored).
   */
  private saveEntry(
    p: Buffer,
    name: Buffer,
    parent: ParentDir,
    listed?: EntryStat,
  ): Entry | Promise<Deferred> {
    if (this.#exclude?.(p.toString())) return null;
    const st = listed ?? this.lstat(p);
    if (st === null) return null;
    const type = nodeType(st);
    if (type === null) {
      this.#events.onWarning(p.toString(), "unknown file type: skipped");
      return null;
    }
    const node = metadataNode(name, type, st);
    switch (type) {
      case "dir":
        return this.saveSubdir(p, parent, node);
      case "file": {
        const before = parent.get(node);
        const cached = unchangedContent(this.#store, node, before);
        if (cached !== null) {
          node.content = cached;
          this.#bytesDone += Number(st.size);
          this.counters.files++;
          this.counters.unchangedFiles++;
          return parent.sameOrNew(node, before);
        }
        const save = async () => ((await this.saveFile(p, st, node)) ? node : null);
        if (st.size < smallFileLimit) return save().then(done);
        return Promise.resolve({ node: this.#largeFiles(save) });
      }
      case "symlink":
        try {
          Object.assign(node, targetFields(readlinkSync(p, { encoding: "buffer" })));
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

  private async saveSubdir(p: Buffer, parent: ParentDir, node: TreeNode): Promise<Deferred> {
    const subtree = await this.saveDir(p, await ParentDir.load(this.#store, parent.subtree(node)));
    if (subtree === null) return done(null);
    node.subtree = subtree;
    this.counters.dirs++;
    return done(node);
  }

  /**
   * Lets timers and signals run: small files are read synchronously and their saves
   * resolve as microtasks, so without this the event loop would not turn for the whole
   * walk (no lock refresh, no Ctrl-C).
   */
  private async yieldToEventLoop(): Promise<void> {
    const now = Date.now();
    this.reportProgress(now);
    this.#lastYield = now;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private async saveDir(p: Buffer, parent: ParentDir): Promise<string | null> {
    const listed = this.#lister?.take(p) ?? null;
    let names: Buffer[];
    if (listed !== null) names = listed.names;
    else {
      try {
        names = readSortedNames(p).map((n) => Buffer.from(n, "latin1"));
      } catch (err) {
        this.error(p, err);
        return null;
      }
    }
    const entries: (Entry | Promise<Entry>)[] = [];
    let waiting = false;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as Buffer;
      const entry = this.saveEntry(joinPath(p, name), name, parent, listed?.stat(i));
      if (entry instanceof Promise) {
        entries.push((await entry).node);
        waiting = true;
      } else entries.push(entry);
      if (Date.now() - this.#lastYield >= yieldEveryMs) await this.yieldToEventLoop();
    }
    const settled = waiting ? await Promise.all(entries) : (entries as Entry[]);
    return this.saveTree(
      settled.filter((n): n is TreeNode => n !== null),
      parent,
    );
  }

  private async saveFile(p: Buffer, before: EntryStat, node: TreeNode): Promise<boolean> {
    const linkKey = before.nlink > 1n ? `${before.dev}:${before.ino}` : null;
    const linked = linkKey !== null ? this.#hardLinks.get(linkKey) : undefined;
    if (linked !== undefined) {
      node.content = await linked;
      this.counters.files++;
      return true;
    }
    let resolveLink: (content: string[]) => void = () => {};
    if (linkKey !== null) {
      // Later links to this inode wait for this read instead of reading it again.
      this.#hardLinks.set(linkKey, new Promise((r) => (resolveLink = r)));
    }
    try {
      const read =
        before.size < smallFileLimit ? await this.readSmallFile(p) : await this.readLargeFile(p);
      if (!read.after.isFile()) {
        this.#events.onWarning(p.toString(), "changed type while being backed up: skipped");
        resolveLink([]);
        return false;
      }
      if (changedBetween(before, read.after) || BigInt(read.size) !== read.after.size) {
        this.#events.onWarning(
          p.toString(),
          "file changed while being read: the snapshot may hold a mix",
        );
      }
      node.content = read.content;
      node.size = read.size;
      this.counters.files++;
      this.#events.onFile?.(p.toString(), read.size);
      resolveLink(read.content);
      return true;
    } catch (err) {
      this.error(p, err);
      resolveLink([]);
      return false;
    } finally {
      await this.#store.checkpoint();
    }
  }

  /**
   * Small files are read with synchronous calls: with thousands of them, a thread-pool
   * round trip per open/read/stat/close costs more than the reads themselves.
   * O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a fifo after lstat is neither
   * followed nor waited on; the caller checks the final fstat is still a regular file.
   */
  private async readSmallFile(p: Buffer): Promise<ReadResult> {
    const fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    let data: Buffer;
    let after: BigIntStats;
    try {
      // Room for a file that grew to twice the limit while we read it, and one byte more
      // to notice that it grew further.
      this.#smallScratch ??= Buffer.allocUnsafe(2 * smallFileLimit + 1);
      const buf = this.#smallScratch;
      let got = 0;
      const st = fstatSync(fd, { bigint: true });
      if (st.isFile()) {
        const size = Number(st.size);
        while (got < buf.length) {
          const want = buf.length - got;
          const n = readSync(fd, buf, got, want, null);
          got += n;
          // A short read that ends where fstat put the end is the end: the read that would
          // return 0 costs a system call per file (2 us on some hosts). Any other short
          // read (a file being written, a network file system) reads on to a 0.
          if (n === 0 || (n < want && got === size)) break;
        }
      }
      data = buf.subarray(0, got);
      after = fstatSync(fd, { bigint: true });
      if (got === buf.length) {
        // It grew past the small-file path while we read: read it as a large file.
        closeSync(fd);
        return this.readLargeFile(p);
      }
    } finally {
      try {
        closeSync(fd);
      } catch {
        // already closed on the grow-to-large path
      }
    }
    const content: string[] = [];
    for (let start = 0; start < data.length; ) {
      const len = this.#cdc.cut(data, start, data.length);
      content.push(await this.saveChunk(data.subarray(start, start + len)));
      start += len;
    }
    this.counters.bytesRead += data.length;
    return { content, size: data.length, after };
  }

  private async readLargeFile(p: Buffer): Promise<ReadResult> {
    const fh = await fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const buffer = this.takeScratch();
    try {
      // As for a small file: what lstat saw may have been swapped for a device since, and
      // a device is not read (one like /dev/zero never ends). The caller skips it.
      const opened = await fh.stat({ bigint: true });
      if (!opened.isFile()) return { content: [], size: 0, after: opened };
      const { content, size } = await this.saveContent(fileReader(fh), buffer);
      return { content, size, after: await fh.stat({ bigint: true }) };
    } finally {
      this.#scratch.push(buffer);
      await fh.close();
    }
  }

  private takeScratch(): Buffer {
    return this.#scratch.pop() ?? Buffer.allocUnsafe(2 * this.#cdc.params.max);
  }

  private async saveContent(
    reader: ByteReader,
    buffer?: Buffer,
  ): Promise<{ content: string[]; size: number }> {
    const content: string[] = [];
    let size = 0;
    for await (const chunk of readChunks(reader, this.#cdc, buffer)) {
      size += chunk.length;
      content.push(await this.saveChunk(chunk));
    }
    this.counters.bytesRead += size;
    return { content, size };
  }

  private reportProgress(now: number): void {
    if (this.#events.onProgress === undefined || now - this.#lastProgress < 250) return;
    this.#lastProgress = now;
    const { files, errors } = this.counters;
    this.#events.onProgress({ files, bytes: this.#bytesDone, errors });
  }

  private saveChunk(chunk: Buffer): Promise<string> {
    this.#bytesDone += chunk.length;
    this.reportProgress(Date.now());
    return this.#store.save(ObjectKind.data, chunk);
  }

  /** Stores a tree; one with the same nodes as the directory's tree in the parent is that blob. */
  private async saveTree(nodes: TreeNode[], parent?: ParentDir): Promise<string> {
    if (parent?.id !== undefined && parent.sameNodes(nodes) && this.#store.index.has(parent.id)) {
      return parent.id;
    }
    return this.#store.save(ObjectKind.tree, encodeTree({ nodes }));
  }
}

export function absolutePaths(paths: readonly string[]): string[] {
  return paths.map((p) => path.resolve(p));
}
