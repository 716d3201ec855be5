// What the directory lister (lister-worker.ts) and the walk (dir-lister.ts) exchange.

/** One listed directory: names sorted by bytes, and lstat fields per name. */
export interface Listing {
  dir: Uint8Array;
  /** Every name's bytes back to back; name i ends at nameEnds[i]. */
  names: Uint8Array;
  nameEnds: Uint32Array;
  /** statFields values per name; an entry whose lstat failed has mode 0 (not listed). */
  stats: BigInt64Array;
  /** readdir failed: the walk lists this directory itself and reports the error. */
  failed: boolean;
}

/** Fields per entry in Listing.stats, in this order. */
export const statFields = 10;

/**
 * dirs: list these, in this order, at most maxAhead listings ahead of the walk; urgent:
 * list this one now (the walk waits for it); consumed: the walk took (or dropped) listings.
 */
export type ListerMessage = { dirs: Uint8Array[] } | { urgent: Uint8Array } | { consumed: number };
