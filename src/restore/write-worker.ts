import { parentPort, workerData } from "node:worker_threads";
import type { FileOutcome, WriteBatch } from "./write-ops.js";
import { FileWriter } from "./write-ops.js";

// A restore worker: opens sealed chunks and writes restored files (see write-ops.ts and
// write-pool.ts). It holds no key but those a batch brings, and writes only the paths the
// main thread planned; batches are handled in the order they arrive.

export interface WriteResult {
  batch: number;
  outcomes?: FileOutcome[];
  error?: string;
}

const { repositoryId } = workerData as { repositoryId: Uint8Array };
const writer = new FileWriter(repositoryId);

parentPort?.on("message", (m: { batch: number; work: WriteBatch } | { close: true }) => {
  if ("close" in m) {
    writer.close();
    parentPort?.postMessage({ batch: -1 } satisfies WriteResult);
    return;
  }
  try {
    parentPort?.postMessage({ batch: m.batch, outcomes: writer.run(m.work) } satisfies WriteResult);
  } catch (err) {
    parentPort?.postMessage({
      batch: m.batch,
      error: (err as Error).message,
    } satisfies WriteResult);
  }
});
