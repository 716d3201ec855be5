/**
 * The backed-up paths as a tree of names from "/". A node is `included` when its whole
 * subtree is backed up; other nodes are directories on the way, stored with their own
 * metadata only. A path under another backed-up path adds nothing.
 */
export interface PathTrie {
  included: boolean;
  children: Map<string, PathTrie>;
}

export function buildPathTrie(absPaths: readonly string[]): PathTrie {
  const root: PathTrie = { included: false, children: new Map() };
  for (const p of absPaths) {
    const parts = p.split("/").filter((s) => s.length > 0);
    if (parts.length === 0) {
      // "/" itself: everything at the root is included.
      root.included = true;
      root.children.clear();
      continue;
    }
    let node = root;
    for (const part of parts) {
      if (node.included) break;
      let next = node.children.get(part);
      if (next === undefined) {
        next = { included: false, children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    }
    if (!node.included) {
      node.included = true;
      node.children.clear();
    }
  }
  // Sort children by name bytes, as directories are.
  sortTrie(root);
  return root;
}

function sortTrie(t: PathTrie): void {
  const sorted = [...t.children.entries()].sort((a, b) =>
    Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])),
  );
  t.children = new Map(sorted);
  for (const c of t.children.values()) sortTrie(c);
}

/** The backed-up paths in the order the walk reaches them (children by name bytes). */
export function includedPaths(t: PathTrie, at = ""): string[] {
  if (t.included) return [at === "" ? "/" : at];
  return [...t.children].flatMap(([name, child]) => includedPaths(child, `${at}/${name}`));
}
