import { describe, expect, it } from "vitest";
import type { Dated, RetentionPolicy } from "../../src/repo/retention.js";
import { applyPolicy, isEmptyPolicy } from "../../src/repo/retention.js";

// Expectations written from restic's documented semantics (restic docs, "Removing
// snapshots according to a policy"), not from this code.
const times = [
  "2026-11-29T03:00:00Z", // Sunday
  "2026-11-28T15:00:00Z",
  "2026-11-28T03:00:00Z",
  "2026-11-27T03:00:00Z",
  "2026-11-23T03:00:00Z", // Monday, same ISO week as the 28th
  "2026-11-22T03:00:00Z", // Sunday, previous ISO week
  "2026-11-01T03:00:00Z",
  "2026-10-15T03:00:00Z",
  "2026-10-01T03:00:00Z",
  "2025-12-31T23:00:00Z",
  "2025-06-01T00:00:00Z",
];
const snaps: Dated[] = times.map((time, i) => ({
  id: `s${i}`,
  time,
  tags: i === 10 ? ["keep-me"] : [],
}));

function kept(policy: RetentionPolicy): string[] {
  return applyPolicy(snaps, policy)
    .keep.map((k) => k.snapshot.time)
    .sort()
    .reverse();
}

describe("retention policies (restic semantics)", () => {
  it("keep-last keeps the n newest", () => {
    expect(kept({ last: 3 })).toEqual(times.slice(0, 3));
  });

  it("keep-daily keeps the newest snapshot of each of the last n days that have one", () => {
    expect(kept({ daily: 3 })).toEqual([
      "2026-11-29T03:00:00Z",
      "2026-11-28T15:00:00Z",
      "2026-11-27T03:00:00Z",
    ]);
  });

  it("keep-weekly uses ISO weeks: Monday the 23rd shares a week with the 28th, Sunday the 22nd does not", () => {
    expect(kept({ weekly: 3 })).toEqual([
      "2026-11-29T03:00:00Z", // ISO week 48 (Mon 23rd to Sun 29th)
      "2026-11-22T03:00:00Z", // week 47
      "2026-11-01T03:00:00Z", // week 44
    ]);
  });

  it("keep-monthly and keep-yearly keep the newest of each period", () => {
    expect(kept({ monthly: 4 })).toEqual([
      "2026-11-29T03:00:00Z",
      "2026-10-15T03:00:00Z",
      "2025-12-31T23:00:00Z",
      "2025-06-01T00:00:00Z",
    ]);
    expect(kept({ yearly: 5 })).toEqual(["2026-11-29T03:00:00Z", "2025-12-31T23:00:00Z"]);
  });

  it("keep-hourly counts hours that have a snapshot, not clock hours", () => {
    expect(kept({ hourly: 2 })).toEqual(["2026-11-29T03:00:00Z", "2026-11-28T15:00:00Z"]);
  });

  it("rules combine as a union and keep-tag keeps every tagged snapshot", () => {
    expect(kept({ last: 1, monthly: 2, tags: ["keep-me"] })).toEqual([
      "2026-11-29T03:00:00Z",
      "2026-10-15T03:00:00Z",
      "2025-06-01T00:00:00Z",
    ]);
    const d = applyPolicy(snaps, { last: 1, monthly: 2, tags: ["keep-me"] });
    expect(d.keep.length + d.remove.length).toBe(snaps.length);
    expect(d.keep.find((k) => k.snapshot.id === "s0")?.reasons).toEqual(["last", "monthly"]);
  });

  it("an empty policy is recognised, so forget can refuse to remove everything", () => {
    expect(isEmptyPolicy({})).toBe(true);
    expect(isEmptyPolicy({ tags: [] })).toBe(true);
    expect(isEmptyPolicy({ daily: 1 })).toBe(false);
  });
});
