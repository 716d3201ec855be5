import type { FileHandle } from "node:fs/promises";
import type { ByteReader } from "../chunker/chunk-reader.js";

/** Reads a file front to back through one handle. */
export function fileReader(fh: FileHandle): ByteReader {
  let position = 0;
  return {
    async read(into, offset, length) {
      const { bytesRead } = await fh.read(into, offset, length, position);
      position += bytesRead;
      return bytesRead;
    },
  };
}
