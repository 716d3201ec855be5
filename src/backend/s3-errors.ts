// What a failed S3 request means: worth retrying, the user's to fix, or a missing object.
// Messages are one line, name the object and say what to do (cli/main.ts prints them).
import { UserError } from "../errors.js";
import type { Verdict } from "./retry.js";

/** A failure of one attempt that another attempt may not have: a cut body, a bad ETag. */
export class TransientError extends Error {
  readonly code = "ETRANSIENT";
}

/** A request that failed for good; `code` makes cli/main.ts print it as one line, exit 1. */
export class S3RequestError extends Error {
  readonly code: string;
  constructor(message: string, code = "ES3") {
    super(message);
    this.code = code;
  }
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const networkCodes = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);

/** Node's codes for a certificate the client does not trust: never retried, never skipped. */
const certificateCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
]);

const throttleNames = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "RequestThrottled",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalError",
  "ServiceUnavailable",
]);

function shape(err: unknown): SdkErrorShape {
  return err !== null && typeof err === "object" ? (err as SdkErrorShape) : {};
}

/** The codes of err and of its causes (the SDK wraps socket errors). */
function codesOf(err: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const s = shape(e);
    if (typeof s.code === "string") out.push(s.code);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

export function statusOf(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

export function isNotFound(err: unknown): boolean {
  const s = shape(err);
  return s.name === "NoSuchKey" || s.name === "NotFound" || statusOf(err) === 404;
}

export function isCertificateError(err: unknown): string | null {
  return codesOf(err).find((c) => certificateCodes.has(c)) ?? null;
}

/** Retry 5xx, throttling, resets, timeouts and cut bodies; never 4xx that cannot succeed. */
export function classifyS3Error(err: unknown): Verdict {
  if (err instanceof TransientError) return { retry: true, reason: err.message };
  if (isCertificateError(err)) return { retry: false };
  const s = shape(err);
  const status = statusOf(err);
  if (s.name && throttleNames.has(s.name)) {
    return { retry: true, reason: `${status ?? ""} ${s.name}`.trim() };
  }
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) {
    const name = s.name && s.name !== "Unknown" ? ` ${s.name}` : "";
    return { retry: true, reason: `HTTP ${status}${name}` };
  }
  const code = codesOf(err).find((c) => networkCodes.has(c));
  if (code) return { retry: true, reason: code };
  if (s.name === "TimeoutError" || /timed? ?out|socket hang up|aborted/i.test(s.message ?? "")) {
    return { retry: true, reason: s.message ?? "timeout" };
  }
  return { retry: false };
}

/**
 * The one-line error a user sees for a request that failed for good: certificate problems
 * and access denial as UserError (exit 1, with what to do), the rest as S3RequestError.
 */
export function describeS3Failure(what: string, host: string, err: unknown): Error {
  const cert = isCertificateError(err);
  if (cert) {
    return new UserError(
      `TLS certificate of ${host} is not trusted (${cert}): if the server uses a private CA, pass it with --ca-file FILE`,
    );
  }
  if (codesOf(err).some((c) => c === "EPROTO" || c === "ERR_SSL_WRONG_VERSION_NUMBER")) {
    return new UserError(
      `${host} did not answer TLS (${what}): check that --s3-endpoint is the service's https:// address`,
    );
  }
  const s = shape(err);
  if (s.name === "CredentialsProviderError") {
    return new UserError(
      `${what}: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role`,
    );
  }
  const status = statusOf(err);
  const attempts = (err as { attempts?: number }).attempts;
  const after = attempts && attempts > 1 ? ` (after ${attempts} attempts)` : "";
  if (status === 403 || s.name === "AccessDenied" || s.name === "InvalidAccessKeyId") {
    return new UserError(
      `${what}: access denied by ${host} (${s.name ?? status}): check the AWS credentials and the bucket policy`,
    );
  }
  if (s.name === "NoSuchBucket") {
    return new UserError(`${what}: the bucket does not exist on ${host}: create it first`);
  }
  const reason =
    status !== undefined
      ? `HTTP ${status}${s.name && s.name !== "Unknown" ? ` ${s.name}` : ""}`
      : (codesOf(err)[0] ?? s.name ?? "error");
  const detail = s.message && !s.message.includes("\n") ? `: ${s.message}` : "";
  return new S3RequestError(`${what}: ${reason}${detail}${after}`);
}
