import type { FastCDC } from "./fastcdc.js";

/** Anything bytes can be read from in order; read returns 0 at the end. */
export interface ByteReader {
  read(into: Buffer, offset: number, length: number): Promise<number>;
}

/**
 * Splits a byte stream into content-defined chunks. Holds at most one buffer of
 * 2 × max chunk size, whatever the stream's length. Each yielded chunk is a fresh copy.
 * A caller that expects a small stream passes a small buffer; it grows only if the
 * stream turns out longer.
 */
export async function* readChunks(
  reader: ByteReader,
  cdc: FastCDC,
  buffer?: Buffer,
): AsyncGenerator<Buffer> {
  const { max } = cdc.params;
  let buf = buffer && buffer.length > 0 ? buffer : Buffer.allocUnsafe(2 * max);
  let start = 0;
  let end = 0;
  let eof = false;
  for (;;) {
    while (!eof && end - start < max) {
      if (end === buf.length) {
        if (start === 0) {
          const bigger = Buffer.allocUnsafe(Math.max(2 * max, buf.length));
          buf.copy(bigger, 0, 0, end);
          buf = bigger;
        } else {
          buf.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
      }
      const n = await reader.read(buf, end, buf.length - end);
      if (n === 0) eof = true;
      else end += n;
    }
    if (start === end) return;
    const len = cdc.cut(buf, start, end);
    yield Buffer.from(buf.subarray(start, start + len));
    start += len;
  }
}

/** Adapts a Node readable (stdin, a child's stdout) to a ByteReader. */
export function streamReader(stream: AsyncIterable<Buffer | string>): ByteReader {
  const it = stream[Symbol.asyncIterator]();
  let pending: Buffer | null = null;
  return {
    async read(into, offset, length) {
      while (pending === null || pending.length === 0) {
        const r = await it.next();
        if (r.done) return 0;
        pending = typeof r.value === "string" ? Buffer.from(r.value) : r.value;
      }
      const n = pending.copy(into, offset, 0, Math.min(length, pending.length));
      pending = pending.subarray(n);
      return n;
    },
  };
}
