// The S3 client coffer uses: TLS enforced (docs/THREATS.md §Transport), a private CA when
// given, the SDK's retries off (retry.ts does them) and its checksums only where required
// (we send Content-MD5 ourselves: with the SDK's default streaming checksums some
// S3-compatible servers store the aws-chunked framing inside the object).
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import { rootCertificates } from "node:tls";
import { S3Client } from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { UserError } from "../errors.js";
import { debugLog } from "./retry.js";

export interface S3ConnectionOptions {
  /** https://host[:port] of an S3-compatible service; AWS's regional endpoint when absent. */
  endpoint?: string;
  region?: string;
  /** Bucket in the path (https://host/bucket/key), as most self-hosted servers need. */
  pathStyle?: boolean;
  /** PEM file with the CA certificate(s) to trust beside the system's. */
  caFile?: string;
  /** Allow http:// to a loopback host (a local test server or a TLS-terminating sidecar). */
  insecureHttp?: boolean;
  /** A request with no progress for this long is abandoned (and retried). */
  requestTimeoutMs?: number;
  /** Sockets per host; at least the number of parallel uploads and reads. */
  maxSockets?: number;
}

export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1";
  return false;
}

/** Checks the endpoint against the transport policy: https, or http to loopback when allowed. */
export function checkEndpoint(endpoint: string, insecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UserError(
      `--s3-endpoint ${endpoint} is not a URL: give https://HOST[:PORT] of the S3 service`,
    );
  }
  if (url.protocol === "https:") return url;
  if (url.protocol !== "http:") {
    throw new UserError(
      `--s3-endpoint ${endpoint}: only https:// endpoints are supported (got ${url.protocol})`,
    );
  }
  if (!insecureHttp) {
    throw new UserError(
      `--s3-endpoint ${endpoint} is plain http: use https, or --insecure-http for a server on this machine`,
    );
  }
  if (!isLoopback(url.hostname)) {
    throw new UserError(
      `--insecure-http is only allowed for a loopback host (localhost, 127.0.0.1, ::1), not ${url.hostname}: use https`,
    );
  }
  return url;
}

function readCa(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(
      `--ca-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new UserError(`--ca-file ${file} does not hold a PEM certificate`);
  }
  return pem;
}

const quiet = () => {};
const sdkLogger = {
  trace: quiet,
  debug: quiet,
  info: quiet,
  warn: (...args: unknown[]) => debugLog(`s3 client: ${args.map(String).join(" ")}`),
  error: (...args: unknown[]) => debugLog(`s3 client: ${args.map(String).join(" ")}`),
};

export function makeS3Client(o: S3ConnectionOptions): S3Client {
  // The SDK warns on every run under Node 20 that its releases after January 2027 need
  // Node 22; coffer pins its SDK version (package.json), so the warning is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const endpoint = o.endpoint ? checkEndpoint(o.endpoint, o.insecureHttp ?? false) : undefined;
  const maxSockets = o.maxSockets ?? 16;
  const ca = o.caFile ? [...rootCertificates, readCa(o.caFile)] : undefined;
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets, ca, rejectUnauthorized: true });
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets });
  return new S3Client({
    region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
    endpoint: endpoint?.toString().replace(/\/$/, ""),
    forcePathStyle: o.pathStyle ?? false,
    maxAttempts: 1,
    // Without a logger the SDK writes some warnings to the console ("An error was
    // encountered in a non-retryable streaming request." for a failed streamed PUT): the
    // failure itself is reported once, by retry.ts. Warnings go to the debug log only.
    logger: sdkLogger,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: new NodeHttpHandler({
      httpsAgent,
      httpAgent,
      connectionTimeout: 10_000,
      // Inactivity, not total time: a 16 MiB pack on a slow link may take minutes.
      socketTimeout: o.requestTimeoutMs ?? 120_000,
    }),
  });
}
