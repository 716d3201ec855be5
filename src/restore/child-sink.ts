import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { UserError } from "../errors.js";
import { stderrSummary } from "../source/child-dump.js";

const stderrKeep = 8 * 1024;

/**
 * A restore tool (pg_restore, psql, mariadb) run without a shell, fed through its stdin
 * with backpressure. `finish` closes stdin and throws a UserError with the tool's stderr
 * tail unless it exited 0.
 */
export class ChildSink {
  readonly #label: string;
  readonly #command: string;
  readonly #secrets: string[];
  readonly #child: ChildProcess;
  readonly #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = Buffer.alloc(0);
  #spawnError: NodeJS.ErrnoException | null = null;
  #writeFailed = false;

  constructor(spec: {
    label: string;
    command: string;
    args: string[];
    env?: Record<string, string>;
    secrets?: string[];
  }) {
    this.#label = spec.label;
    this.#command = spec.command;
    this.#secrets = spec.secrets ?? [];
    this.#child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env },
      stdio: ["pipe", "ignore", "pipe"],
    });
    this.#child.on("error", (err) => {
      this.#spawnError = err;
    });
    this.#child.stdin?.on("error", () => {
      // EPIPE: the tool stopped reading; finish() reports why from its exit and stderr.
      this.#writeFailed = true;
    });
    this.#child.stderr?.on("data", (d: Buffer) => {
      this.#stderr = Buffer.concat([this.#stderr, d]);
      if (this.#stderr.length > 2 * stderrKeep) this.#stderr = this.#stderr.subarray(-stderrKeep);
    });
    this.#exit = new Promise((resolve) => {
      this.#child.on("close", (code, signal) => resolve({ code, signal }));
    });
  }

  /** Writes a chunk; false when the tool has gone away (stop feeding it, call finish). */
  async write(chunk: Buffer): Promise<boolean> {
    const stdin = this.#child.stdin;
    if (stdin === null || this.#writeFailed || this.#spawnError !== null || stdin.destroyed)
      return false;
    if (!stdin.write(chunk)) {
      await Promise.race([once(stdin, "drain").catch(() => {}), this.#exit]);
    }
    return !this.#writeFailed;
  }

  async finish(): Promise<void> {
    this.#child.stdin?.end();
    const { code, signal } = await this.#exit;
    if (this.#spawnError !== null) {
      throw new UserError(
        this.#spawnError.code === "ENOENT"
          ? `${this.#label}: command not found (${this.#command}): install it or put it on PATH`
          : `${this.#label}: cannot start: ${this.#spawnError.message}`,
      );
    }
    const tail = this.stderrTail();
    const why = tail ? `: ${tail}` : "";
    if (signal !== null) throw new UserError(`${this.#label} was killed by ${signal}${why}`);
    if (code !== 0) throw new UserError(`${this.#label} failed with exit code ${code}${why}`);
  }

  /** Stops the tool (the restore failed on our side). */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGTERM");
    }
    await this.#exit;
  }

  private stderrTail(): string {
    return stderrSummary(this.#stderr, this.#secrets);
  }
}
