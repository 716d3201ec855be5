// Transport policy against real servers: a TLS proxy whose certificate a test CA signed,
// and s3rver's plain http port. An untrusted certificate is refused with one clear line
// (never retried, never skipped); --ca-file accepts it; plain http is refused unless
// --insecure-http is given and the host is loopback.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTestCa } from "../servers/test-ca.js";
import { cli } from "./e2e-helpers.js";
import { bucket, type S3Stack, s3Env, startS3Stack } from "./s3-helpers.js";

let stack: S3Stack;
beforeAll(async () => {
  stack = await startS3Stack();
});
afterAll(() => stack.close());

const init = ["init", "--scrypt-work-factor", "10", "--s3-path-style"];
const run = (args: string[]) => cli(args, { env: s3Env(stack) });

describe("S3 over TLS: certificates (test CA, TLS proxy in front of s3rver)", () => {
  it("refuses a certificate signed by a CA it was not given, in one line, with exit 1", async () => {
    const before = stack.faults.requests.length;
    const r = await run([
      ...init,
      "--repo",
      `s3://${bucket}/tls/a`,
      "--s3-endpoint",
      stack.endpoint,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^coffer: TLS certificate of 127\.0\.0\.1:\d+ is not trusted \([A-Z_]+\): if the server uses a private CA, pass it with --ca-file FILE\n$/,
    );
    // Nothing got through to the server.
    expect(stack.faults.requests.length).toBe(before);
  });

  it("refuses it with another CA's certificate in --ca-file too", async () => {
    const other = path.join(stack.dir, "other-ca");
    await fs.mkdir(other);
    const otherCa = makeTestCa(other, "some other CA");
    const r = await run([
      ...init,
      "--repo",
      `s3://${bucket}/tls/b`,
      "--s3-endpoint",
      stack.endpoint,
      "--ca-file",
      otherCa.caFile,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is not trusted");
  });

  it("accepts it with the signing CA in --ca-file", async () => {
    const flags = ["--repo", `s3://${bucket}/tls/c`, "--s3-endpoint", stack.endpoint];
    const r = await run([...init, ...flags, "--ca-file", stack.ca.caFile]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const snaps = await run([
      "snapshots",
      "--s3-path-style",
      ...flags,
      "--ca-file",
      stack.ca.caFile,
    ]);
    expect(snaps.code).toBe(0);
  });

  it("says so plainly when --ca-file is not a certificate", async () => {
    const bogus = path.join(stack.dir, "not-a-cert.pem");
    await fs.writeFile(bogus, "hello\n");
    const r = await run([
      ...init,
      "--repo",
      `s3://${bucket}/tls/d`,
      "--s3-endpoint",
      stack.endpoint,
      "--ca-file",
      bogus,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`coffer: --ca-file ${bogus} does not hold a PEM certificate\n`);
  });
});

describe("S3 over plain http (s3rver's own port)", () => {
  it("refuses http:// without --insecure-http", async () => {
    const r = await run([
      ...init,
      "--repo",
      `s3://${bucket}/http/a`,
      "--s3-endpoint",
      stack.s3.endpoint,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `coffer: --s3-endpoint ${stack.s3.endpoint} is plain http: use https, or --insecure-http for a server on this machine\n`,
    );
  });

  it("refuses --insecure-http to a host that is not loopback", async () => {
    const r = await run([
      ...init,
      "--repo",
      `s3://${bucket}/http/b`,
      "--s3-endpoint",
      "http://192.0.2.10:9000",
      "--insecure-http",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "coffer: --insecure-http is only allowed for a loopback host (localhost, 127.0.0.1, ::1), not 192.0.2.10: use https\n",
    );
  });

  it("allows http:// to loopback with --insecure-http", async () => {
    const flags = [
      "--repo",
      `s3://${bucket}/http/c`,
      "--s3-endpoint",
      stack.s3.endpoint,
      "--insecure-http",
    ];
    const r = await run([...init, ...flags]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("an https endpoint on a plain http port is a one-line error, not a hang", async () => {
    const https = stack.s3.endpoint.replace("http:", "https:");
    const r = await run([...init, "--repo", `s3://${bucket}/http/d`, "--s3-endpoint", https]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^coffer: 127\.0\.0\.1:\d+ did not answer TLS .*\n$/);
  });
});
