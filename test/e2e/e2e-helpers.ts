// Helpers shared by the end-to-end tests: running the CLI under another user or as a
// killable child, hashing files as streams, and comparing two directory trees.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { type BigIntStats, createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { cliPath, type RunResult, testPassphrase } from "../helpers.js";

export interface CliOptions {
  env?: Record<string, string | undefined>;
  input?: Buffer | string;
  cwd?: string;
  /** A command to run node under, e.g. ["setpriv", "--reuid=65534", ...]. */
  prefix?: string[];
}

function childEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: Record<string, string | undefined> = {
    ...process.env,
    COFFER_PASSPHRASE: testPassphrase,
    ...env,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as NodeJS.ProcessEnv;
}

/** Starts the built CLI as a child; stdout and stderr are collected. */
export function startCli(
  args: string[],
  opts: CliOptions = {},
): { child: ChildProcess; done: Promise<RunResult & { signal: NodeJS.Signals | null }> } {
  const prefix = opts.prefix ?? [];
  const [cmd, ...rest] =
    prefix.length > 0
      ? [...prefix, process.execPath, cliPath, ...args]
      : [process.execPath, cliPath, ...args];
  const child = spawn(cmd as string, rest, {
    env: childEnv(opts.env),
    cwd: opts.cwd,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => out.push(d));
  child.stderr?.on("data", (d: Buffer) => err.push(d));
  const done = new Promise<RunResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code: code ?? -1,
        signal,
        stdout: stdoutBytes.toString(),
        stderr: Buffer.concat(err).toString(),
        stdoutBytes,
      });
    });
  });
  child.stdin?.on("error", () => {});
  child.stdin?.end(opts.input ?? "");
  return { child, done };
}

/** Runs the built CLI to completion (like helpers.coffer, plus an optional prefix). */
export function cli(args: string[], opts: CliOptions = {}): Promise<RunResult> {
  return startCli(args, opts).done;
}

export function hasCommand(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** SHA-256 of a file's bytes, read as a stream (works for multi-GiB sparse files). */
export async function hashFile(p: string | Buffer): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(p, { highWaterMark: 4 * 1024 * 1024 }))
    h.update(chunk as Buffer);
  return h.digest("hex");
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

export interface Entry {
  type: string;
  mode: number;
  size: bigint;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  ino: bigint;
  nlink: bigint;
  hash?: string;
  target?: string;
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  return "other";
}

/** A readable form of a raw relative path (non-UTF-8 bytes escaped). */
export function showRel(key: string): string {
  return JSON.stringify(Buffer.from(key, "latin1").toString("utf8"));
}

/**
 * Every entry under root (root itself as ""), keyed by its raw relative path in latin1
 * (one char per byte, so non-UTF-8 names survive). Files are hashed.
 */
export async function walkTree(root: string | Buffer): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const base = Buffer.isBuffer(root) ? root : Buffer.from(root);
  const visit = async (abs: Buffer, rel: Buffer): Promise<void> => {
    const st = await fs.lstat(abs, { bigint: true });
    const e: Entry = {
      type: typeOf(st),
      mode: Number(st.mode & 0o7777n),
      size: st.size,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      ino: st.ino,
      nlink: st.nlink,
    };
    if (e.type === "file") e.hash = await hashFile(abs);
    if (e.type === "symlink")
      e.target = (await fs.readlink(abs, { encoding: "buffer" })).toString("latin1");
    out.set(rel.toString("latin1"), e);
    if (e.type === "dir") {
      for (const name of await fs.readdir(abs, { encoding: "buffer" })) {
        const slash = Buffer.from("/");
        await visit(
          Buffer.concat([abs, slash, name]),
          rel.length === 0 ? name : Buffer.concat([rel, slash, name]),
        );
      }
    }
  };
  await visit(base, Buffer.alloc(0));
  return out;
}

export interface CompareOptions {
  /** Relative paths (latin1 keys) expected in the source but not in the restore. */
  notRestored?: string[];
  /**
   * Compare mtimes at this resolution in nanoseconds (default 1000: the microsecond, the
   * finest time Node's utimes can set): both sides truncated to it must be equal.
   */
  mtimeResolutionNs?: bigint;
  /** Skip the owner check (restores by non-root users cannot chown). */
  ignoreOwner?: boolean;
  /** Skip the mtime check (for tests about bytes only). */
  ignoreMtime?: boolean;
}

/**
 * Differences between a source tree and its restore, one line each: type, mode, size,
 * content, link target, owner, mtime, and hard links (files that share an inode in the
 * source share one in the restore, and only those).
 */
export function compareTrees(
  src: Map<string, Entry>,
  dst: Map<string, Entry>,
  opts: CompareOptions = {},
): string[] {
  const diffs: string[] = [];
  const skip = new Set(opts.notRestored ?? []);
  const res = opts.mtimeResolutionNs ?? 1000n;
  for (const [k, a] of src) {
    const b = dst.get(k);
    if (skip.has(k)) {
      if (b !== undefined) diffs.push(`${showRel(k)}: restored, but should not be`);
      continue;
    }
    if (b === undefined) {
      diffs.push(`${showRel(k)}: missing from the restore`);
      continue;
    }
    const at = showRel(k);
    if (a.type !== b.type) diffs.push(`${at}: type ${a.type} became ${b.type}`);
    if (a.mode !== b.mode)
      diffs.push(`${at}: mode ${a.mode.toString(8)} became ${b.mode.toString(8)}`);
    if (a.type === "file" && a.size !== b.size)
      diffs.push(`${at}: size ${a.size} became ${b.size}`);
    if (a.hash !== b.hash) diffs.push(`${at}: content differs`);
    if (a.target !== b.target) diffs.push(`${at}: link target ${a.target} became ${b.target}`);
    if (!opts.ignoreOwner && (a.uid !== b.uid || a.gid !== b.gid))
      diffs.push(`${at}: owner ${a.uid}:${a.gid} became ${b.uid}:${b.gid}`);
    if (!opts.ignoreMtime && a.mtimeNs / res !== b.mtimeNs / res)
      diffs.push(`${at}: mtime ${a.mtimeNs} ns became ${b.mtimeNs} ns`);
  }
  for (const k of dst.keys()) if (!src.has(k)) diffs.push(`${showRel(k)}: restored from nowhere`);
  // Hard links: the partition of files by inode must be the same on both sides.
  const groups = (m: Map<string, Entry>) => {
    const byIno = new Map<bigint, string[]>();
    for (const [k, e] of m) {
      if (e.type !== "file" || skip.has(k)) continue;
      byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), k]);
    }
    return new Set([...byIno.values()].map((g) => g.sort().map(showRel).join(" = ")));
  };
  const ga = groups(src);
  const gb = groups(new Map([...dst].filter(([k]) => src.has(k))));
  for (const g of ga) if (!gb.has(g)) diffs.push(`hard link group ${g} not restored as one inode`);
  for (const g of gb) if (!ga.has(g)) diffs.push(`restore links ${g}, the source does not`);
  return diffs;
}

/** Waits until check() is true, polling; throws after timeoutMs. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Names in a folder of the repository (locks, snapshots, keys, index). */
export async function repoFiles(repo: string, folder: string): Promise<string[]> {
  try {
    return (await fs.readdir(`${repo}/${folder}`)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
}

/** A deterministic byte generator (xorshift), for data whose bytes must vary but repeat by seed. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  for (; i < size; i++) b[i] = i & 0xff;
  return b;
}
