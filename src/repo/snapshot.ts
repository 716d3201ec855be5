import { IntegrityError } from "../errors.js";

/** A snapshot manifest (docs/FORMAT.md §Snapshots): sealed JSON naming the root tree. */
export interface Snapshot {
  version: 1;
  /** ISO 8601 time the backup started. */
  time: string;
  hostname: string;
  username: string;
  /** What was backed up: absolute paths, or "stdin:NAME". */
  paths: string[];
  tags: string[];
  /** The snapshot whose file metadata let unchanged files be skipped, if any. */
  parent?: string;
  /** Root tree blob id: one node per backed-up path, named by its base name. */
  tree: string;
  source: SnapshotSource;
  summary: BackupSummary;
}

/**
 * Where the snapshot's data came from (docs/FORMAT.md §Snapshots). Dumps record enough for
 * `restore --postgres/--mysql` to pick the tool; never a URL or password.
 */
export interface SnapshotSource {
  kind: "files" | "stdin" | "postgres" | "mysql" | "command" | "tar";
  /** The dump program: pg_dump, pg_dumpall, mariadb-dump, mysqldump, or a command's name. */
  tool?: string;
  /** Dump format: "custom" or "plain" (PostgreSQL), "sql" (MariaDB/MySQL). */
  format?: string;
  /** The server's version string as the server reports it. */
  serverVersion?: string;
  /** Databases in the dump. */
  databases?: string[];
  /** The dump holds every database of the server (pg_dumpall, --all-databases). */
  allDatabases?: boolean;
}

export interface BackupSummary {
  files: number;
  dirs: number;
  bytesRead: number;
  bytesAdded: number;
  blobsAdded: number;
  errors: number;
  /** Files not read again because size, mtime, ctime and inode matched the parent snapshot. */
  unchangedFiles: number;
  durationMs: number;
}

export function emptySummary(): BackupSummary {
  return {
    files: 0,
    dirs: 0,
    bytesRead: 0,
    bytesAdded: 0,
    blobsAdded: 0,
    errors: 0,
    unchangedFiles: 0,
    durationMs: 0,
  };
}

export interface SnapshotWithId extends Snapshot {
  id: string;
}

export function encodeSnapshot(s: Snapshot): Buffer {
  return Buffer.from(JSON.stringify(s));
}

export function decodeSnapshot(b: Buffer, id: string): Snapshot {
  let v: unknown;
  try {
    v = JSON.parse(b.toString("utf8"));
  } catch {
    throw new IntegrityError(`snapshot ${id} is not valid JSON`);
  }
  const s = v as Snapshot;
  if (
    typeof s !== "object" ||
    s === null ||
    s.version !== 1 ||
    typeof s.tree !== "string" ||
    !/^[0-9a-f]{64}$/.test(s.tree) ||
    !Array.isArray(s.paths) ||
    typeof s.time !== "string"
  ) {
    throw new IntegrityError(`snapshot ${id} is malformed`);
  }
  return s;
}
