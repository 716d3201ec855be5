// Retries for remote backends, in one place: exponential backoff with full jitter
// (AWS Architecture Blog, "Exponential Backoff and Jitter"). The S3 SDK's own retries are
// off, so that every attempt, its reason and its wait are visible here (COFFER_DEBUG).

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** The first wait is drawn from [0, baseMs); each later one from a range twice as wide. */
  baseMs: number;
  /** No single wait is longer than this. */
  capMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 8, baseMs: 200, capMs: 10_000 };

/** The verdict on one failed attempt: try again (with the reason for the log) or stop. */
export type Verdict = { retry: true; reason: string } | { retry: false };

export function debugLog(msg: string): void {
  if (process.env.COFFER_DEBUG) process.stderr.write(`coffer: debug: ${msg}\n`);
}

/** Full jitter: a uniformly random wait in [0, min(cap, base · 2^attempt)). */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** attempt);
  return Math.floor(Math.random() * ceiling);
}

/**
 * Runs op until it succeeds, classify says an error cannot succeed on a retry, or the
 * attempts run out. The last error is thrown with the number of attempts in `attempts`.
 */
export async function retrying<T>(
  what: string,
  policy: RetryPolicy,
  classify: (err: unknown) => Verdict,
  op: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      const verdict = classify(err);
      if (!verdict.retry || attempt + 1 >= policy.maxAttempts) {
        if (err !== null && typeof err === "object") {
          (err as { attempts?: number }).attempts = attempt + 1;
        }
        throw err;
      }
      const wait = backoffMs(policy, attempt);
      debugLog(
        `${what}: attempt ${attempt + 1}/${policy.maxAttempts} failed (${verdict.reason}); retrying in ${wait} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
