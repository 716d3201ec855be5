import picomatch from "picomatch";

/**
 * Exclude patterns with restic's meaning: a pattern without "/" matches a name at any
 * depth ("*.log", "node_modules"); a pattern with "/" matches the absolute path, "**"
 * crossing directories (for example "/home/alice/.cache" or "/srv/**" then "tmp").
 */
/** The matcher of no patterns; the walk skips building path strings for it. */
export const excludeNothing = (_absPath: string): boolean => false;

export function excludeMatcher(patterns: readonly string[]): (absPath: string) => boolean {
  if (patterns.length === 0) return excludeNothing;
  const byName = patterns.filter((p) => !p.includes("/"));
  const byPath = patterns
    .filter((p) => p.includes("/"))
    .map((p) => (p.startsWith("/") ? p : `**/${p}`))
    .map((p) => p.replace(/\/+$/, ""));
  const nameMatch = byName.length > 0 ? picomatch(byName, { dot: true }) : () => false;
  const pathMatch = byPath.length > 0 ? picomatch(byPath, { dot: true }) : () => false;
  return (absPath) => {
    const slash = absPath.lastIndexOf("/");
    return nameMatch(absPath.slice(slash + 1)) || pathMatch(absPath);
  };
}
