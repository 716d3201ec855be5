import { hkdfSync } from "node:crypto";

/**
 * The FastCDC gear table: 256 pseudo-random 32-bit words derived from the repository's
 * chunker key. A secret table keeps chunk boundaries, and so chunk sizes, from revealing
 * whether a known file is in the repository (docs/THREATS.md).
 */
export function gearTable(chunkerKey: Buffer): Uint32Array {
  const bytes = Buffer.from(
    hkdfSync("sha256", chunkerKey, Buffer.alloc(0), "coffer/v1 gear", 1024),
  );
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = bytes.readUInt32LE(i * 4);
  return table;
}
