// FastCDC (Xia et al., 2016/2020) with normalized chunking, level 2, over a 32-bit gear
// hash. In h = (h << 1) + gear[b], bit k of h depends on the last k+1 bytes only, so the
// masks use the high bits: a cut depends on the last 32 bytes and nothing earlier.

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const defaultChunkerParams: ChunkerParams = {
  min: 512 * 1024,
  avg: 1024 * 1024,
  max: 8 * 1024 * 1024,
};

function highBitsMask(bits: number): number {
  return (0xffffffff << (32 - bits)) >>> 0;
}

export class FastCDC {
  readonly params: ChunkerParams;
  readonly #gear: Uint32Array;
  /** Stricter mask below the average size, looser above: sizes cluster near avg. */
  readonly #maskSmall: number;
  readonly #maskLarge: number;

  constructor(gear: Uint32Array, params: ChunkerParams = defaultChunkerParams) {
    const bits = Math.round(Math.log2(params.avg));
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) {
      throw new Error("fastcdc: internal error: need 0 < min <= avg <= max");
    }
    if (bits + 2 > 32) throw new Error("fastcdc: internal error: average size too large");
    this.params = params;
    this.#gear = gear;
    this.#maskSmall = highBitsMask(bits + 2);
    this.#maskLarge = highBitsMask(bits - 2);
  }

  /**
   * Length of the next chunk of buf[start, end). When end-start <= min the answer is all of
   * it. `scanned` says that buf[start, scanned) is known to hold no cut point (an earlier
   * call on fewer bytes found none): the search resumes there instead of at start + min.
   */
  cut(buf: Uint8Array, start: number, end: number, scanned = start): number {
    const { min, avg, max } = this.params;
    const n = end - start;
    if (n <= min) return n;
    const limit = start + Math.min(n, max);
    const normal = start + Math.min(n, avg);
    const gear = this.#gear;
    const maskS = this.#maskSmall;
    const maskL = this.#maskLarge;
    let h = 0;
    let i = start + min;
    if (scanned - 32 > i) {
      // The hash at a position depends on the 32 bytes before it only: rebuild it from
      // those, testing nothing, then test from `scanned` on.
      for (i = scanned - 32; i < scanned; i++)
        h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
    }
    // Unrolled by four: V8 then runs the loop about 2.5× faster (bench: 450 → 1,200 MiB/s).
    for (; i + 4 <= normal; i += 4) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
      h = ((h << 1) + (gear[buf[i + 1] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 2 - start;
      h = ((h << 1) + (gear[buf[i + 2] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 3 - start;
      h = ((h << 1) + (gear[buf[i + 3] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 4 - start;
    }
    for (; i < normal; i++) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
    }
    for (; i + 4 <= limit; i += 4) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
      h = ((h << 1) + (gear[buf[i + 1] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 2 - start;
      h = ((h << 1) + (gear[buf[i + 2] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 3 - start;
      h = ((h << 1) + (gear[buf[i + 3] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 4 - start;
    }
    for (; i < limit; i++) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
    }
    return limit - start;
  }
}
