import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// V8 frees an ArrayBuffer's memory only when a GC finds it dead, and schedules GCs by
// heap pressure. A backup or a verify allocates buffers (chunk copies, sealed blobs,
// decipher output) by the gigabyte and small heap objects hardly at all, so dead buffers
// piled up to the external-memory limit (~64 MiB over the last full GC) in every thread
// before anything freed them. They all die young: a minor GC every few MiB of them frees
// them for a fraction of a millisecond.

// V8's flags are read by its GC threads while they run: a flag that changes how the heap
// is collected must not change at run time. Turning incremental marking off here once a
// seal pool started (to save the full marking cycles that buffers in flight start, 2% of a
// first backup's CPU) crashed V8 in 3 to 5 of 12-20 backups of 200,000 small files
// ("unreachable code" in ConcurrentMarking, or a segmentation fault): the flag flipped
// while a marking cycle was under way. test/unit/v8-flags.test.ts keeps it out. Only
// --expose-gc is set at run time, and only to make `gc` for a new context.

/** Short-lived buffer bytes between minor GCs in the backup path: a few chunks' worth. */
export const youngCollectBytes = 16 * 1024 * 1024;

let minorGc: (() => void) | null = null;

/**
 * Collects V8's young generation now. `--expose-gc` gives `gc` only to contexts created
 * after it is set, so no global changes.
 */
export function collectYoung(): void {
  if (minorGc === null) {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    minorGc =
      typeof gc === "function"
        ? () => (gc as (o: { type: "minor" }) => void)({ type: "minor" })
        : () => {};
  }
  minorGc();
}

/**
 * Counts bytes of short-lived buffers and collects the young generation after every
 * `every` of them. The collection waits for the event loop's next turn: the code that
 * reports a buffer still holds it, and a buffer that survives two minor GCs is moved to
 * the old generation, where only a full GC frees it.
 */
export class YoungBuffers {
  readonly #every: number;
  #bytes = 0;
  #scheduled = false;

  constructor(every: number) {
    this.#every = every;
  }

  allocated(n: number): void {
    this.#bytes += n;
    if (this.#bytes < this.#every || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#bytes = 0;
      collectYoung();
    }).unref();
  }
}
