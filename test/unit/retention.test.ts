import { describe, expect, it } from "vitest";
import type { Dated, RetentionPolicy } from "../../src/repo/retention.js";
import { applyPolicy, isEmptyPolicy } from "../../src/repo/retention.js";

// Expectations written by hand from restic's documented semantics (restic docs, "Removing
// snapshots according to a policy", and `restic forget --help` of 0.17), not from this
// code: snapshots are taken newest first; keep-last keeps the n newest; keep-<period>
// keeps the newest snapshot of each of the last n periods that have one (hours, days,
// ISO weeks, months, years); a rule with periods left at the oldest snapshot keeps that
// one too; keep-tag keeps every tagged snapshot; the rules combine as a union.
// Periods are in UTC here (restic uses local time; coffer documents UTC).

const policies: Record<string, RetentionPolicy> = {
  last3: { last: 3 },
  hourly2: { hourly: 2 },
  daily3: { daily: 3 },
  weekly3: { weekly: 3 },
  weekly10: { weekly: 10 },
  monthly4: { monthly: 4 },
  yearly5: { yearly: 5 },
  tag: { tags: ["keep-me"] },
  union: { last: 1, monthly: 2, tags: ["keep-me"] },
};

// x = kept by the column's policy. Comments: the ISO week and why a row is notable.
const table = `
time                  tag      last3 hourly2 daily3 weekly3 weekly10 monthly4 yearly5 tag union
2026-11-29T03:00:00Z  -        x     x       x      x       x        x        x       .   x      Sun, 2026-W48
2026-11-28T15:00:00Z  -        x     x       x      .       .        .        .       .   .
2026-11-28T03:00:00Z  -        x     .       .      .       .        .        .       .   .      same day as above, older
2026-11-27T03:00:00Z  -        .     .       x      .       .        .        .       .   .
2026-11-23T03:00:00Z  -        .     .       .      .       .        .        .       .   .      Mon, 2026-W48 like the 29th
2026-11-22T03:00:00Z  -        .     .       .      x       x        .        .       .   .      Sun, 2026-W47
2026-11-01T03:00:00Z  -        .     .       .      x       x        .        .       .   .      2026-W44
2026-10-15T03:00:00Z  -        .     .       .      .       x        x        .       .   x      2026-W42, newest of October
2026-10-01T03:00:00Z  -        .     .       .      .       x        .        .       .   .      2026-W40
2026-01-01T12:00:00Z  -        .     .       .      .       x        x        .       .   .      Thu, 2026-W01
2025-12-29T12:00:00Z  -        .     .       .      .       .        x        x       .   .      Mon, also 2026-W01; newest of 2025
2025-12-28T12:00:00Z  -        .     .       .      .       x        .        .       .   .      Sun, 2025-W52
2025-06-01T00:00:00Z  keep-me  .     .       .      .       x        .        x       x   x      oldest: yearly5 and weekly10 have periods left
`;

const rows = table
  .trim()
  .split("\n")
  .map((l) => l.split(/\s+/));
const header = rows[0] as string[];
const body = rows.slice(1);
const snaps: Dated[] = body.map((r, i) => ({
  id: `s${String(i).padStart(2, "0")}`,
  time: r[0] as string,
  tags: r[1] === "-" ? [] : [r[1] as string],
}));

function kept(snapshots: Dated[], policy: RetentionPolicy): string[] {
  return applyPolicy(snapshots, policy)
    .keep.map((k) => k.snapshot.time)
    .sort()
    .reverse();
}

describe("retention policies (restic semantics), as a table of snapshot times", () => {
  for (const [col, name] of header.slice(2).entries()) {
    it(`${name}: ${JSON.stringify(policies[name])}`, () => {
      const expected = body.filter((r) => r[col + 2] === "x").map((r) => r[0]);
      // The snapshots are shuffled: the order they are listed in must not matter.
      const shuffled = [...snaps].reverse();
      shuffled.push(...shuffled.splice(0, 5));
      expect(kept(shuffled, policies[name] as RetentionPolicy)).toEqual(expected);
    });
  }

  it("every snapshot is either kept or removed, with the rules that kept it", () => {
    const d = applyPolicy(snaps, policies.union as RetentionPolicy);
    expect(d.keep.length + d.remove.length).toBe(snaps.length);
    expect(d.keep.find((k) => k.snapshot.id === "s00")?.reasons).toEqual(["last", "monthly"]);
    expect(d.keep.find((k) => k.snapshot.id === "s12")?.reasons).toEqual(["tag keep-me"]);
    const y = applyPolicy(snaps, policies.yearly5 as RetentionPolicy);
    expect(y.keep.find((k) => k.snapshot.id === "s12")?.reasons).toEqual(["yearly (oldest)"]);
  });

  it("a young history keeps its oldest snapshot while a period rule has periods left", () => {
    const twoToday: Dated[] = [
      { id: "a", time: "2026-11-29T03:00:00Z", tags: [] },
      { id: "b", time: "2026-11-29T02:00:00Z", tags: [] },
    ];
    expect(kept(twoToday, { daily: 7 })).toEqual(["2026-11-29T03:00:00Z", "2026-11-29T02:00:00Z"]);
    // keep-daily 1 has no day left at the oldest; keep-last is a count, not a period.
    expect(kept(twoToday, { daily: 1 })).toEqual(["2026-11-29T03:00:00Z"]);
    expect(kept(twoToday, { last: 1 })).toEqual(["2026-11-29T03:00:00Z"]);
  });

  it("an empty policy is recognised, so forget can refuse to remove everything", () => {
    expect(isEmptyPolicy({})).toBe(true);
    expect(isEmptyPolicy({ tags: [] })).toBe(true);
    expect(isEmptyPolicy({ daily: 1 })).toBe(false);
  });
});
