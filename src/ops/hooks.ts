import { spawn } from "node:child_process";

// Job hooks run as argument lists, without a shell: nothing in a path or a tag is ever
// re-parsed. A user who wants a shell writes [sh, -c, "..."] and owns its quoting.

export interface HookResult {
  /** 0 when the command exited 0; otherwise a one-line reason. */
  ok: boolean;
  reason: string;
  durationMs: number;
}

/**
 * Runs one hook to completion. Its stdout and stderr go to coffer's stderr (stdout stays
 * clean for --json); with quiet, its stdout is dropped. stdin is closed.
 */
export function runHook(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: { quiet?: boolean } = {},
): Promise<HookResult> {
  const started = Date.now();
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    const done = (ok: boolean, reason: string) =>
      resolve({ ok, reason, durationMs: Date.now() - started });
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(cmd, args, { env, stdio: ["ignore", opts.quiet ? "ignore" : 2, 2] });
    } catch (err) {
      done(false, `cannot run ${cmd}: ${(err as Error).message}`);
      return;
    }
    child.on("error", (err: NodeJS.ErrnoException) =>
      done(false, `cannot run ${cmd}: ${err.code ?? err.message}`),
    );
    child.on("close", (code, signal) => {
      if (code === 0) done(true, "exit 0");
      else done(false, signal ? `${cmd} killed by ${signal}` : `${cmd} exited ${code}`);
    });
  });
}
