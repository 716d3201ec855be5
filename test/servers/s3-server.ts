// A real S3-compatible server for tests: s3rver (npm) as a child process on a random
// loopback port, storing into a temp directory, with the buckets the test asks for.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const mainScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "s3rver-main.mjs");

export interface S3TestServer {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** Where s3rver keeps the objects. */
  directory: string;
  close(): Promise<void>;
}

function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.on("exit", (code) => reject(new Error(`s3rver exited with ${code}: ${err}`)));
  });
}

export async function startS3Server(buckets: string[] = ["coffer-test"]): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), "coffer-s3rver-"));
  const child = spawn(
    process.execPath,
    ["--openssl-legacy-provider", mainScript, directory, ...buckets],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const port = await readPort(child);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
