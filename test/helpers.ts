import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { LocalBackend } from "../src/backend/local.js";
import { PassphraseProvider } from "../src/kms/passphrase.js";
import { BlobStore } from "../src/repo/blob-store.js";
import { Repository } from "../src/repo/repository.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const cliPath = path.join(repoRoot, "dist/bundle/main.js");
export const testPassphrase = "correct horse battery staple";

export async function tempDir(
  prefix = "coffer-test-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs the built CLI (npm run build first) with the test passphrase unless env overrides it. */
export function coffer(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: Buffer | string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      COFFER_PASSPHRASE: testPassphrase,
      ...opts.env,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: env as NodeJS.ProcessEnv,
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code: code ?? -1,
        stdout: stdoutBytes.toString(),
        stderr: Buffer.concat(err).toString(),
        stdoutBytes,
      });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** Creates a repository through the CLI with a cheap scrypt factor (tests only). */
export async function initRepo(repo: string): Promise<void> {
  const r = await coffer(["init", "--repo", repo, "--scrypt-work-factor", "10"]);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
}

/** Opens a repository in-process, index loaded, for tests that look inside. */
export async function openStore(repo: string): Promise<BlobStore> {
  const r = await Repository.open(new LocalBackend(repo), [new PassphraseProvider(testPassphrase)]);
  const store = new BlobStore(r);
  await store.loadIndex();
  return store;
}

/** A temp directory for a describe block: made before its tests, removed after them. */
export function useTempDir(set: (dir: string) => void): void {
  let cleanup: () => Promise<void> = async () => {};
  beforeAll(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    set(t.dir);
  });
  afterAll(() => cleanup());
}
