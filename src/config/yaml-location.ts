import type { Document, LineCounter, Node } from "yaml";
import { isMap, isScalar, isSeq } from "yaml";

/**
 * Where a key path (as zod reports it) is in the YAML source: the line of the deepest
 * key or item that exists, so an error about a missing key points at its parent and one
 * about a value points at the key that holds it.
 */
export function lineOf(
  doc: Document,
  lines: LineCounter,
  path: readonly PropertyKey[],
): number | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

/** A short description of a YAML value for "expected X, got Y" messages. */
export function describeValue(v: unknown): string {
  if (v === null) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  // Text is never echoed: it could be a secret written under the wrong key.
  if (typeof v === "string") return "text";
  return `${typeof v === "number" ? "the number " : ""}${String(v)}`;
}

/** The value at a key path of plain data, or undefined. */
export function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}
