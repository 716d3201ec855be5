// Retention policies with restic's meaning (restic docs, "Removing snapshots according to
// a policy"): snapshots are taken newest first; keep-last keeps the n newest; each
// keep-<period> keeps the newest snapshot of each of the last n periods that have one;
// keep-tag keeps every snapshot carrying the tag. A snapshot any rule keeps is kept.
// When a keep-<period> rule still has periods left at the oldest snapshot of the group,
// that snapshot is kept too (restic 0.17: "if there are not enough snapshots to keep one
// for each duration related --keep option, the oldest snapshot in the group is kept
// additionally"), so a young history keeps its first snapshot.
// Periods are calendar periods in UTC; weeks are ISO weeks.

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  tags?: string[];
}

export interface Dated {
  id: string;
  time: string;
  tags: string[];
}

export interface RetentionDecision<T extends Dated> {
  keep: { snapshot: T; reasons: string[] }[];
  remove: T[];
}

type Period = "hourly" | "daily" | "weekly" | "monthly" | "yearly";

function isoWeek(d: Date): string {
  // ISO 8601: the week with the year's first Thursday is week 1.
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}

function bucket(period: Period, d: Date): string {
  const iso = d.toISOString();
  switch (period) {
    case "hourly":
      return iso.slice(0, 13);
    case "daily":
      return iso.slice(0, 10);
    case "weekly":
      return isoWeek(d);
    case "monthly":
      return iso.slice(0, 7);
    case "yearly":
      return iso.slice(0, 4);
  }
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return !(p.last || p.hourly || p.daily || p.weekly || p.monthly || p.yearly || p.tags?.length);
}

/** Applies a policy to one group of snapshots (same host and paths). */
export function applyPolicy<T extends Dated>(
  snapshots: readonly T[],
  policy: RetentionPolicy,
): RetentionDecision<T> {
  const newestFirst = [...snapshots].sort(
    (a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id),
  );
  const periods: Period[] = ["hourly", "daily", "weekly", "monthly", "yearly"];
  const left: Record<Period | "last", number> = {
    last: policy.last ?? 0,
    hourly: policy.hourly ?? 0,
    daily: policy.daily ?? 0,
    weekly: policy.weekly ?? 0,
    monthly: policy.monthly ?? 0,
    yearly: policy.yearly ?? 0,
  };
  const lastBucket = new Map<Period, string>();
  const decision: RetentionDecision<T> = { keep: [], remove: [] };
  for (const [i, s] of newestFirst.entries()) {
    const oldest = i === newestFirst.length - 1;
    const reasons: string[] = [];
    if (left.last > 0) {
      left.last--;
      reasons.push("last");
    }
    const d = new Date(s.time);
    for (const p of periods) {
      if (left[p] <= 0) continue;
      const b = bucket(p, d);
      if (lastBucket.get(p) === b) {
        if (oldest) reasons.push(`${p} (oldest)`);
        continue;
      }
      lastBucket.set(p, b);
      left[p]--;
      reasons.push(p);
    }
    for (const t of policy.tags ?? []) if (s.tags.includes(t)) reasons.push(`tag ${t}`);
    if (reasons.length > 0) decision.keep.push({ snapshot: s, reasons });
    else decision.remove.push(s);
  }
  return decision;
}
