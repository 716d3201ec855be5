import { once } from "node:events";
import type { Writable } from "node:stream";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { fileChunks } from "./file-content.js";

/** Writes one file's bytes to a stream (stdout), chunk by chunk, honouring backpressure. */
export async function writeFileTo(
  store: BlobStore,
  node: TreeNode,
  out: Writable,
  shown: string,
): Promise<number> {
  if (node.type !== "file")
    throw new UserError(`${shown} is a ${node.type}, not a file: give a file's path`);
  let n = 0;
  for await (const chunk of fileChunks(store, node.content ?? [])) {
    n += chunk.length;
    // events.once rejects on "error" and removes both listeners either way.
    if (!out.write(chunk)) await once(out, "drain");
  }
  return n;
}
