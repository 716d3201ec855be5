import { IntegrityError } from "../errors.js";

/**
 * A snapshot's names come from its tree, and a hostile or damaged snapshot may hold
 * names that would escape the restore target. Only single path components pass.
 */
export function checkName(raw: Buffer, where: string): void {
  const bad =
    raw.length === 0 ||
    raw.includes(0x2f) ||
    raw.includes(0x00) ||
    (raw.length === 1 && raw[0] === 0x2e) ||
    (raw.length === 2 && raw[0] === 0x2e && raw[1] === 0x2e);
  if (bad) {
    throw new IntegrityError(
      `refusing unsafe name ${JSON.stringify(raw.toString())} in ${where}: the snapshot is damaged or hostile`,
    );
  }
}

/** Refuses a tree where two nodes share a name: a hostile tree could swap a dir for a link. */
export function checkUniqueNames(names: readonly Buffer[], where: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    const k = n.toString("latin1");
    if (seen.has(k)) {
      throw new IntegrityError(`duplicate name ${JSON.stringify(n.toString())} in ${where}`);
    }
    seen.add(k);
  }
}
