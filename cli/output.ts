/** Human-readable byte counts: 1.5 GiB, 320 KiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`coffer: ${message}\n`);
}

/** A path as printed on one line: control characters (newlines in names) escaped. */
export function shownPath(p: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  return /[\u0000-\u001f\u007f]/.test(p) ? JSON.stringify(p) : p;
}
