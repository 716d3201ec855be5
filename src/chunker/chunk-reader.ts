import type { FastCDC } from "./fastcdc.js";

/** Anything bytes can be read from in order; read returns 0 at the end. */
export interface ByteReader {
  read(into: Buffer, offset: number, length: number): Promise<number>;
}

/** Bytes asked of the reader at a time: a chunk is cut as soon as the bytes read hold its end. */
const readStep = 1024 * 1024;
/**
 * Unconsumed bytes move to the front of the buffer once this much of it has been consumed:
 * a buffer sized for the largest chunk then has only its first few MiB in use (resident),
 * for the cost of copying what was read past the last cut, a fraction of a read step.
 */
const compactAt = 2 * 1024 * 1024;

/**
 * Splits a byte stream into content-defined chunks. Holds at most one buffer of
 * 2 × max chunk size, whatever the stream's length, and reads a step at a time, so only
 * as much of it is touched as the chunks need. Each yielded chunk is a fresh copy.
 * A caller that expects a small stream passes a small buffer; it grows only if the
 * stream turns out longer.
 */
export async function* readChunks(
  reader: ByteReader,
  cdc: FastCDC,
  buffer?: Buffer,
): AsyncGenerator<Buffer> {
  const { min, max } = cdc.params;
  let buf = buffer && buffer.length > 0 ? buffer : Buffer.allocUnsafe(2 * max);
  let start = 0;
  let end = 0;
  let eof = false;
  /** buf[start, scanned) holds no cut point: a search of the bytes read so far found none. */
  let scanned = 0;
  for (;;) {
    const n = end - start;
    if (eof || n > min) {
      if (n === 0) return;
      const len = cdc.cut(buf, start, end, scanned);
      // Short of max and of the stream's end, "no cut point found" also answers n, as a cut
      // at the last byte read does: read on, and test that byte again.
      if (len < n || eof || n >= max) {
        yield Buffer.from(buf.subarray(start, start + len));
        start += len;
        scanned = start;
        continue;
      }
      scanned = end - 1;
    }
    if (start > 0 && (start >= compactAt || end === buf.length)) {
      buf.copyWithin(0, start, end);
      end -= start;
      scanned -= start;
      start = 0;
    }
    if (end === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * max, 2 * buf.length));
      buf.copy(bigger, 0, 0, end);
      buf = bigger;
    }
    const got = await reader.read(buf, end, Math.min(readStep, buf.length - end));
    if (got === 0) eof = true;
    else end += got;
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
