import { accessSync, constants } from "node:fs";
import * as path from "node:path";
import type { SnapshotSource } from "../repo/snapshot.js";
import type { ChildDump } from "./child-dump.js";

/** A dump ready to be read: the child is running; `cleanup` removes its password file. */
export interface PreparedDump {
  /** The one file of the snapshot holding the dump ("test.pgdump", "shop.sql"). */
  fileName: string;
  /** What the snapshot records (docs/FORMAT.md §Snapshots, source): never a password. */
  source: SnapshotSource;
  /** What `snapshots` shows as the snapshot's path: "postgres:test", "mysql:*". */
  label: string;
  dump: ChildDump;
  cleanup(): Promise<void>;
}

/** The first of `names` found as an executable on PATH, or undefined. */
export function findOnPath(names: readonly string[]): string | undefined {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter((d) => d !== "");
  for (const name of names) {
    for (const dir of dirs) {
      try {
        accessSync(path.join(dir, name), constants.X_OK);
        return name;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}
