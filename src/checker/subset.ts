import { randomInt } from "node:crypto";
import { UserError } from "../errors.js";

/**
 * Which packs `verify --read-data-subset` reads. "K/N" selects the packs whose id, read
 * as a number, falls in the K-th of N equal slices: nightly runs of 1/7 ... 7/7 cover the
 * whole repository in a week. "P%" selects each pack with probability P/100.
 */
export type PackSelector = (packId: string) => boolean;

export function parseSubset(spec: string): PackSelector {
  const slice = /^(\d+)\/(\d+)$/.exec(spec);
  if (slice) {
    const k = Number(slice[1]);
    const n = Number(slice[2]);
    if (n < 1 || k < 1 || k > n) {
      throw new UserError(`--read-data-subset ${spec}: K/N needs 1 <= K <= N`);
    }
    // The first 4 bytes of the random pack id are uniform: slice them into N ranges.
    return (packId) =>
      Math.floor((Number.parseInt(packId.slice(0, 8), 16) * n) / 2 ** 32) === k - 1;
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (percent) {
    const p = Number(percent[1]);
    if (!(p > 0 && p <= 100))
      throw new UserError(`--read-data-subset ${spec}: P% needs 0 < P <= 100`);
    return () => randomInt(1_000_000) < p * 10_000;
  }
  throw new UserError(`--read-data-subset ${spec}: give K/N (e.g. 2/7) or a percentage (e.g. 10%)`);
}
