import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { UserError } from "../errors.js";
import type { SnapshotSource } from "../repo/snapshot.js";
import { runCapture } from "./child-dump.js";
import { redactUrl } from "./db-url.js";
import { pgConnection, pgServerInfo, safeFileName } from "./postgres.js";

/** A finished directory-format dump in a private temp directory, ready to be backed up. */
export interface PgDirectoryDump {
  /** The dump directory (toc.dat and one file per table). */
  dir: string;
  /** Its name in the snapshot: "DB.dir". */
  name: string;
  label: string;
  source: SnapshotSource;
  cleanup(): Promise<void>;
}

/**
 * `--pg-format directory`: pg_dump writes this format to files, not to a pipe, so it is
 * dumped whole into a private (0700) temp directory under TMPDIR (it needs the dump's
 * size in free space there), checked (exit 0), then backed up as a directory: one file
 * per table, so unchanged tables deduplicate whole. The temp directory is always removed.
 */
export async function dumpPgDirectory(raw: string): Promise<PgDirectoryDump> {
  const conn = await pgConnection(raw);
  const tmp = await mkdtemp(path.join(tmpdir(), "coffer-pgdir-"));
  const cleanup = async () => {
    await rm(tmp, { recursive: true, force: true });
    await conn.cleanup();
  };
  try {
    await chmod(tmp, 0o700);
    const info = await pgServerInfo(conn);
    const name = `${safeFileName(info.database)}.dir`;
    const dir = path.join(tmp, name);
    try {
      await runCapture({
        label: "pg_dump",
        command: "pg_dump",
        args: ["--format=directory", `--file=${dir}`, conn.dbnameArg],
        env: conn.env,
        secrets: conn.secrets,
      });
    } catch (err) {
      if (err instanceof UserError) throw new UserError(`${err.message}; no snapshot saved`);
      throw err;
    }
    return {
      dir,
      name,
      label: `postgres:${info.database}`,
      source: {
        kind: "postgres",
        tool: "pg_dump",
        format: "directory",
        serverVersion: info.version,
        databases: [info.database],
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    if (err instanceof UserError) throw new UserError(`${redactUrl(raw)}: ${err.message}`);
    throw err;
  }
}
