// A real S3-compatible server for tests: s3rver (npm) on a random loopback port, storing
// into a temp directory, with the buckets the test asks for.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import S3rver from "s3rver";

export interface S3TestServer {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** Where s3rver keeps the objects (BUCKET/KEY/... under it). */
  directory: string;
  close(): Promise<void>;
}

export async function startS3Server(buckets: string[] = ["coffer-test"]): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), "coffer-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const addr = await server.run();
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    port: addr.port,
    directory,
    close: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
