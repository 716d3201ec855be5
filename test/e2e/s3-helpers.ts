// The S3 test stack: coffer ──TLS──► tls-proxy ──► fault-proxy ──► s3rver, all real
// servers on random loopback ports, with a CA made by the test. Helpers run the built CLI
// against it and open the repository in-process to look inside.
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Backend } from "../../src/backend/backend.js";
import { S3Backend } from "../../src/backend/s3.js";
import { makeS3Client } from "../../src/backend/s3-client.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { Repository } from "../../src/repo/repository.js";
import { type RunResult, testPassphrase } from "../helpers.js";
import { type FaultProxy, startFaultProxy } from "../servers/fault-proxy.js";
import { type S3TestServer, startS3Server } from "../servers/s3-server.js";
import { makeTestCa, type TestCa } from "../servers/test-ca.js";
import { startTlsProxy, type TlsProxy } from "../servers/tls-proxy.js";
import { cli } from "./e2e-helpers.js";

export const bucket = "coffer-test";

export interface S3Stack {
  dir: string;
  s3: S3TestServer;
  faults: FaultProxy;
  tls: TlsProxy;
  ca: TestCa;
  /** https://127.0.0.1:PORT of the TLS proxy. */
  endpoint: string;
  close(): Promise<void>;
}

export async function startS3Stack(): Promise<S3Stack> {
  const dir = await mkdtemp(path.join(tmpdir(), "coffer-s3-"));
  await mkdir(path.join(dir, "spool"));
  const s3 = await startS3Server([bucket]);
  const faults = await startFaultProxy(s3.port);
  const ca = makeTestCa(dir);
  const tls = await startTlsProxy(faults.port, ca.serverKey, ca.serverCert);
  return {
    dir,
    s3,
    faults,
    tls,
    ca,
    endpoint: `https://127.0.0.1:${tls.port}`,
    close: async () => {
      await tls.close();
      await faults.close();
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Environment for the CLI: s3rver's fixed credentials, a private cache folder. */
export function s3Env(stack: S3Stack): Record<string, string | undefined> {
  return {
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: path.join(stack.dir, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: path.join(stack.dir, "no-aws-credentials"),
    XDG_CACHE_HOME: path.join(stack.dir, "cache"),
    // Where packs are spooled on their way up (s3-spool.ts): spoolFiles() looks there.
    TMPDIR: path.join(stack.dir, "spool"),
  };
}

/** Spool files the CLI left in its TMPDIR: none, once a backup has ended either way. */
export async function spoolFiles(stack: S3Stack): Promise<string[]> {
  return readdir(path.join(stack.dir, "spool"));
}

/** The flags that reach the stack over TLS with the test CA. */
export function s3Flags(stack: S3Stack, prefix: string): string[] {
  return [
    "--repo",
    `s3://${bucket}/${prefix}`,
    "--s3-endpoint",
    stack.endpoint,
    "--s3-path-style",
    "--ca-file",
    stack.ca.caFile,
  ];
}

export function s3cli(
  stack: S3Stack,
  prefix: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  return cli([...args, ...s3Flags(stack, prefix)], { env: { ...s3Env(stack), ...env } });
}

/** A backend straight to s3rver (no proxy, no faults), for looking inside a repository. */
export function directBackend(stack: S3Stack, prefix: string): S3Backend {
  process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
  const client = makeS3Client({
    endpoint: stack.s3.endpoint,
    insecureHttp: true,
    pathStyle: true,
    region: "us-east-1",
  });
  return new S3Backend(client, `s3://${bucket}/${prefix}`, "s3rver");
}

export async function openS3Store(backend: Backend): Promise<BlobStore> {
  const repo = await Repository.open(backend, [new PassphraseProvider(testPassphrase)]);
  const store = new BlobStore(repo);
  await store.loadIndex();
  return store;
}

/** stderr without debug lines: what a user sees. */
export function userLines(r: RunResult): string[] {
  return r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("coffer: debug:"));
}
