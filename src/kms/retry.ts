// Retries with exponential backoff and jitter, only for failures where trying again can
// help (throttling, 5xx, a dropped connection); a denied request or a disabled key fails
// at once.

export interface RetryPolicy {
  attempts: number;
  /** First pause in ms; doubled per attempt, with full jitter. */
  baseDelay: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  attempts: Number(process.env.COFFER_KMS_ATTEMPTS ?? 5),
  baseDelay: 200,
};

export async function withRetry<T>(
  fn: () => Promise<T>,
  retryable: (err: unknown) => boolean,
  policy: RetryPolicy = defaultRetryPolicy,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= policy.attempts || !retryable(err)) throw err;
      const pause = Math.random() * policy.baseDelay * 2 ** (attempt - 1);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** A connection-level failure: the service was not reached (or the reply was lost). */
export function isNetworkError(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return networkCodes.has(e?.code ?? "") || networkCodes.has(e?.cause?.code ?? "");
}

export function networkCause(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return `unreachable (${e?.code ?? e?.cause?.code ?? "network error"})`;
}
