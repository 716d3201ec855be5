import { mkdirSync, openSync } from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import pino from "pino";
import { UserError } from "../errors.js";

// The JSON-lines log of `coffer run` (README §Logs): one line per run, job and step, with
// the run id, job, step, duration, bytes, files and exit code. Secrets never reach it:
// keys named like secrets are censored by pino's redact, and every string is scrubbed of
// URL user information (postgresql://user:password@host) before it is written.

const secretKey = /passphrase|password|passwd|token|secret|credential|private.?key/i;

const redactPaths = ["passphrase", "password", "token", "secret", "env"].flatMap((k) => [
  k,
  `*.${k}`,
]);

/** Removes user information from URLs anywhere in a string. */
export function scrubUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s@]+@/gi, "$1[redacted]@");
}

/** A copy of a log record with secret-named keys censored and URLs scrubbed, at any depth. */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrubUrls(value);
  if (value === null || typeof value !== "object" || depth > 8) return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = secretKey.test(k) ? "[redacted]" : scrub(v, depth + 1);
  }
  return out;
}

export type RunLogger = Logger;

/** Opens (appends to) a log file, mode 0600 when created; writes are synchronous. */
export function openRunLog(file: string, runId: string): RunLogger {
  let fd: number;
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    fd = openSync(file, "a", 0o600);
  } catch (err) {
    throw new UserError(
      `cannot open log file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return pino(
    {
      base: { run: runId },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths, censor: "[redacted]" },
      formatters: {
        level: (label) => ({ level: label }),
        log: (record) => scrub(record) as Record<string, unknown>,
      },
      hooks: {
        // The message is not part of the record formatters.log sees.
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === "string" ? scrubUrls(a) : a)) as Parameters<
              typeof method
            >,
          );
        },
      },
    },
    pino.destination({ fd, sync: true }),
  );
}
