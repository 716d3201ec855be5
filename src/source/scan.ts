import { lstat, readdir } from "node:fs/promises";
import * as path from "node:path";

/**
 * Counts the files and bytes under paths (excludes applied, symlinks not followed), for
 * the progress display's total and ETA. It runs beside the backup on a terminal only, and
 * stops when signal aborts; errors are skipped (the backup reports them).
 */
export async function scanTotals(
  paths: readonly string[],
  exclude: (absPath: string) => boolean,
  signal: AbortSignal,
  onUpdate: (totals: { files: number; bytes: number; done: boolean }) => void,
): Promise<void> {
  const totals = { files: 0, bytes: 0, done: false };
  const stack = paths.map((p) => path.resolve(p));
  while (stack.length > 0) {
    if (signal.aborted) return;
    const p = stack.pop() as string;
    if (exclude(p)) continue;
    try {
      const st = await lstat(p);
      if (st.isDirectory()) {
        for (const name of await readdir(p)) stack.push(path.join(p, name));
      } else if (st.isFile()) {
        totals.files++;
        totals.bytes += st.size;
      }
    } catch {
      // unreadable: the backup names it
    }
    if (totals.files % 1000 === 0) onUpdate({ ...totals });
  }
  onUpdate({ ...totals, done: true });
}
