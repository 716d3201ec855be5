import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import type { ByteReader } from "../chunker/chunk-reader.js";
import { streamReader } from "../chunker/chunk-reader.js";
import { UserError } from "../errors.js";

/** How much of a child's stderr is kept for the error message: its tail only. */
const stderrKeep = 8 * 1024;
const stderrLinesShown = 3;

export interface ChildSpec {
  /** What the user knows the child as, for messages: "pg_dump", "mariadb-dump". */
  label: string;
  command: string;
  args: string[];
  /** Added to the inherited environment (PGPASSFILE, ...). */
  env?: Record<string, string>;
  /** Strings that must never appear in messages (passwords); replaced with "***". */
  secrets?: string[];
}

/**
 * A dump command run as a child process without a shell, its stdout read as a byte stream.
 * Reading pulls from the pipe only as fast as the chunker consumes it: the child blocks on a
 * full pipe, so memory stays bounded whatever the dump's size. `finish` decides whether
 * the dump is good: exit 0, no signal, and at least one byte written. A dump piped into a
 * backup tool by a shell cannot tell a truncated dump from a whole one; this can.
 */
export class ChildDump {
  readonly #spec: ChildSpec;
  readonly #child: ChildProcess;
  readonly #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = Buffer.alloc(0);
  #spawnError: Error | null = null;
  bytes = 0;
  readonly reader: ByteReader;

  constructor(spec: ChildSpec) {
    this.#spec = spec;
    this.#child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child.on("error", (err) => {
      this.#spawnError = err;
    });
    this.#child.stderr?.on("data", (d: Buffer) => {
      this.#stderr = Buffer.concat([this.#stderr, d]);
      if (this.#stderr.length > 2 * stderrKeep) this.#stderr = this.#stderr.subarray(-stderrKeep);
    });
    this.#exit = new Promise((resolve) => {
      this.#child.on("close", (code, signal) => resolve({ code, signal }));
    });
    const stdout = this.#child.stdout;
    if (stdout === null) throw new Error("child-dump: internal error: no stdout pipe");
    const inner = streamReader(stdout);
    this.reader = {
      read: async (into, offset, length) => {
        const n = await inner.read(into, offset, length);
        this.bytes += n;
        return n;
      },
    };
  }

  /** Waits for the child and throws a UserError unless it wrote something and exited 0. */
  async finish(): Promise<void> {
    const { code, signal } = await this.#exit;
    const { label } = this.#spec;
    if (this.#spawnError !== null) {
      const e = this.#spawnError as NodeJS.ErrnoException;
      throw new UserError(
        e.code === "ENOENT"
          ? `${label}: command not found (${this.#spec.command}): install it or put it on PATH`
          : `${label}: cannot start: ${this.redact(e.message)}`,
      );
    }
    const tail = this.stderrTail();
    const why = tail ? `: ${tail}` : "";
    if (signal !== null)
      throw new UserError(`${label} was killed by ${signal}; no snapshot saved${why}`);
    if (code !== 0)
      throw new UserError(`${label} failed with exit code ${code}; no snapshot saved${why}`);
    if (this.bytes === 0) throw new UserError(`${label} wrote nothing; no snapshot saved${why}`);
  }

  /** Stops the child (the backup failed on our side); safe to call when it has exited. */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGTERM");
      this.#child.stdout?.destroy();
    }
    await this.#exit;
  }

  /** The last lines of stderr, one line, secrets replaced. */
  stderrTail(): string {
    return stderrSummary(this.#stderr, this.#spec.secrets ?? []);
  }

  private redact(s: string): string {
    return redactSecrets(s, this.#spec.secrets ?? []);
  }
}

export function redactSecrets(s: string, secrets: readonly string[]): string {
  let out = s;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join("***");
  return out;
}

/**
 * A child's stderr as one line for an error message: its last lines that say "error" or
 * "fatal" (tools print the failing SQL after them), else its last lines; secrets replaced.
 */
export function stderrSummary(stderr: Buffer, secrets: readonly string[]): string {
  const lines = stderr
    .toString("utf8")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const errors = lines.filter((l) => /\b(error|fatal|panic)\b/i.test(l));
  const picked = errors.length > 0 ? errors.slice(-2) : lines.slice(-stderrLinesShown);
  return redactSecrets(picked.join(" | "), secrets).slice(-1000);
}

/** Runs a short query-like child to completion and returns its stdout (version checks). */
export async function runCapture(spec: ChildSpec): Promise<string> {
  const child = spawn(spec.command, spec.args, {
    env: { ...process.env, ...spec.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  let spawnError: NodeJS.ErrnoException | null = null;
  child.on("error", (e) => {
    spawnError = e;
  });
  const [code] = (await once(child, "close")) as [number | null];
  if (spawnError !== null) {
    throw new UserError(
      `${spec.label}: command not found (${spec.command}): install it or put it on PATH`,
    );
  }
  if (code !== 0) {
    const tail = stderrSummary(Buffer.concat(err), spec.secrets ?? []);
    throw new UserError(`${spec.label} failed with exit code ${code}: ${tail}`);
  }
  return Buffer.concat(out).toString("utf8");
}
