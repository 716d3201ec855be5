import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// V8 frees an ArrayBuffer's memory only when a GC finds it dead, and schedules GCs by
// heap pressure. A backup or a verify allocates buffers (chunk copies, sealed blobs,
// decipher output) by the gigabyte and small heap objects hardly at all, so dead buffers
// piled up to the external-memory limit (~64 MiB over the last full GC) in every thread
// before anything freed them. They all die young: a minor GC every few MiB of them frees
// them for a fraction of a millisecond.

/**
 * Turns V8's incremental marking off for the rest of the process (its worker threads
 * too: flags are process-wide; a marking cycle already under way still finishes, as the
 * flag only gates starting one). V8 counts external memory allocated since the last full
 * GC against the old generation's limit, and while blobs are sealed by a pool the main
 * heap stays ~15 MB while tens of MiB of buffers are in flight and come and go by the
 * gigabyte: each small rise started a full marking cycle on background threads (38–42
 * full GCs in a first backup of the bench corpus, 11% of its CPU samples). Without
 * incremental marking V8 collects when the limit is reached: 10–12 full GCs, each a
 * pause of a few milliseconds, which nothing in a command-line run waits on. Called where
 * such a pool starts, not at start-up: runs that seal little (an unchanged re-run) keep
 * the incremental marker, whose earlier collections keep their peak ~10 MiB lower.
 */
export function preferAtomicMarking(): void {
  setFlagsFromString("--no-incremental-marking");
}

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
