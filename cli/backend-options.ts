// Global options for remote repositories (S3) and the factory that turns a --repo value
// into a backend. session.ts calls remoteBackendFor for anything that looks like a URL.
import type { Options } from "yargs";
import type { Backend } from "../src/backend/backend.js";
import { CachingBackend, defaultCacheRoot } from "../src/backend/cache.js";
import { defaultRetryPolicy } from "../src/backend/retry.js";
import { UserError } from "../src/errors.js";
import { parseConfig } from "../src/repo/config.js";

export interface BackendArgs {
  "s3-endpoint"?: string;
  "s3-region"?: string;
  "s3-path-style"?: boolean;
  "ca-file"?: string;
  "insecure-http"?: boolean;
  "s3-sse"?: string;
  "s3-sse-kms-key-id"?: string;
  "s3-storage-class"?: string;
  "s3-object-lock-days"?: number;
  "s3-object-lock-mode"?: string;
  "s3-max-attempts"?: number;
  "s3-request-timeout"?: number;
  "upload-concurrency"?: number;
  cache?: boolean;
}

export const backendOptions: Record<string, Options> = {
  "s3-endpoint": {
    type: "string",
    describe: "S3-compatible service URL, https://HOST[:PORT] (default: AWS)",
    global: true,
  },
  "s3-region": { type: "string", describe: "S3 region (or AWS_REGION)", global: true },
  "s3-path-style": {
    type: "boolean",
    describe: "bucket in the URL path (MinIO, Ceph and most self-hosted servers)",
    global: true,
  },
  "ca-file": {
    type: "string",
    describe: "PEM file of a private CA to trust for the S3 endpoint",
    global: true,
  },
  "insecure-http": {
    type: "boolean",
    describe: "allow an http:// S3 endpoint on a loopback host (never a remote one)",
    global: true,
  },
  "s3-sse": {
    type: "string",
    choices: ["AES256", "aws:kms"],
    describe: "server-side encryption for new objects",
    global: true,
  },
  "s3-sse-kms-key-id": {
    type: "string",
    describe: "KMS key for --s3-sse aws:kms",
    global: true,
  },
  "s3-storage-class": {
    type: "string",
    describe: "storage class for new objects (STANDARD, STANDARD_IA, ...)",
    global: true,
  },
  "s3-object-lock-days": {
    type: "number",
    describe: "Object Lock retention in days for new packs and snapshots",
    global: true,
  },
  "s3-object-lock-mode": {
    type: "string",
    choices: ["GOVERNANCE", "COMPLIANCE"],
    describe: "Object Lock mode (default GOVERNANCE)",
    global: true,
  },
  "s3-max-attempts": {
    type: "number",
    describe: `attempts per S3 request, retries included (default ${defaultRetryPolicy.maxAttempts})`,
    global: true,
  },
  "s3-request-timeout": {
    type: "number",
    describe: "seconds without progress before an S3 request is retried (default 120)",
    global: true,
  },
  "upload-concurrency": {
    type: "number",
    describe:
      "packs written at once; on S3 each is spooled in a file in TMPDIR (default: 1 local, 4 S3)",
    global: true,
  },
  cache: {
    type: "boolean",
    describe: "cache index and snapshot objects of remote repositories locally (--no-cache)",
    global: true,
  },
};

function positiveInt(name: string, v: number | undefined, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new UserError(`--${name} must be a whole number from 1 to ${max}`);
  }
  return v;
}

/** Packs in flight at once: each holds a pack buffer, so this bounds upload memory. */
export function uploadConcurrency(args: BackendArgs, backend: Backend): number {
  const given = positiveInt("upload-concurrency", args["upload-concurrency"], 64);
  return given ?? (backend.location.startsWith("s3://") ? 4 : 1);
}

export async function remoteBackendFor(url: string, args: BackendArgs): Promise<Backend> {
  if (!url.startsWith("s3://")) {
    throw new UserError(
      `${url}: unsupported repository URL: use a directory or s3://BUCKET/PREFIX`,
    );
  }
  // The AWS SDK loads only for S3 repositories: local ones start without it.
  const { parseS3Url, S3Backend } = await import("../src/backend/s3.js");
  const { checkEndpoint, makeS3Client } = await import("../src/backend/s3-client.js");
  const { bucket } = parseS3Url(url);
  const endpoint = args["s3-endpoint"];
  const insecure = args["insecure-http"] ?? false;
  const host = endpoint ? checkEndpoint(endpoint, insecure).host : "s3.amazonaws.com";
  const sse = args["s3-sse"] as "AES256" | "aws:kms" | undefined;
  if (args["s3-sse-kms-key-id"] && sse !== "aws:kms") {
    throw new UserError("--s3-sse-kms-key-id needs --s3-sse aws:kms");
  }
  const lockDays = positiveInt("s3-object-lock-days", args["s3-object-lock-days"], 36_500);
  if (args["s3-object-lock-mode"] && lockDays === undefined) {
    throw new UserError("--s3-object-lock-mode needs --s3-object-lock-days N");
  }
  const maxAttempts =
    positiveInt("s3-max-attempts", args["s3-max-attempts"], 100) ?? defaultRetryPolicy.maxAttempts;
  const timeout = positiveInt("s3-request-timeout", args["s3-request-timeout"], 3600) ?? 120;
  const client = makeS3Client({
    endpoint,
    region: args["s3-region"],
    pathStyle: args["s3-path-style"],
    caFile: args["ca-file"],
    insecureHttp: insecure,
    requestTimeoutMs: timeout * 1000,
    maxSockets: Math.max(16, (args["upload-concurrency"] ?? 4) * 2),
  });
  const s3 = new S3Backend(client, url, endpoint ? host : `${bucket}.${host}`, {
    sse,
    sseKmsKeyId: args["s3-sse-kms-key-id"],
    storageClass: args["s3-storage-class"],
    objectLock:
      lockDays === undefined
        ? undefined
        : {
            days: lockDays,
            mode: (args["s3-object-lock-mode"] ?? "GOVERNANCE") as "GOVERNANCE" | "COMPLIANCE",
          },
    retry: { ...defaultRetryPolicy, maxAttempts },
  });
  const backend =
    args.cache === false
      ? s3
      : new CachingBackend(s3, defaultCacheRoot(), (config) => parseConfig(config, url).id);
  process.once("exit", () => backend.close());
  return backend;
}
