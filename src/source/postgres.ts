import { UserError } from "../errors.js";
import { ChildDump, type ChildSpec, runCapture } from "./child-dump.js";
import { type DbUrl, parseDbUrl, redactUrl, secretFile } from "./db-url.js";
import type { PreparedDump } from "./dump-source.js";

export type PgFormat = "custom" | "plain" | "directory";
export const pgFormats: readonly PgFormat[] = ["custom", "plain", "directory"];

/**
 * How libpq tools reach the server: the URL without its password as --dbname, and the
 * password (if any) in a 0600 PGPASSFILE in a private temp directory, so it is in neither
 * argv nor the environment of any process.
 */
export interface PgConnection {
  dbnameArg: string;
  env: Record<string, string>;
  secrets: string[];
  url: DbUrl;
  cleanup(): Promise<void>;
}

export async function pgConnection(raw: string): Promise<PgConnection> {
  const url = parseDbUrl(raw, "postgres");
  const u = new URL(raw);
  u.password = "";
  const env: Record<string, string> = {};
  let cleanup = async () => {};
  if (url.password !== undefined) {
    // PGPASSFILE lines are host:port:db:user:password; ':' and '\' are escaped with '\'.
    const escaped = url.password.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
    const f = await secretFile("pgpass", `*:*:*:*:${escaped}\n`);
    env.PGPASSFILE = f.file;
    cleanup = f.cleanup;
  }
  return {
    dbnameArg: `--dbname=${u.toString()}`,
    env,
    secrets: [url.password ?? "", raw],
    url,
    cleanup,
  };
}

/** Server version and current database, one psql round trip. */
export async function pgServerInfo(
  conn: PgConnection,
): Promise<{ version: string; database: string }> {
  const out = await runCapture(
    psqlSpec(conn, "SELECT current_setting('server_version'), current_database()"),
  );
  const [version = "", database = ""] = out.trim().split("\t");
  return { version, database };
}

function psqlSpec(conn: PgConnection, sql: string): ChildSpec {
  return {
    label: "psql",
    command: "psql",
    args: ["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", conn.dbnameArg, "-c", sql],
    env: conn.env,
    secrets: conn.secrets,
  };
}

/**
 * Starts pg_dump (one database, custom or plain format) or pg_dumpall (--all-databases,
 * always plain SQL: pg_dumpall has no other format).
 */
export async function preparePostgres(
  raw: string,
  opts: { format: PgFormat; allDatabases: boolean },
): Promise<PreparedDump> {
  const conn = await pgConnection(raw);
  try {
    const info = await pgServerInfo(conn);
    if (opts.allDatabases) {
      const names = await runCapture(
        psqlSpec(conn, "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1"),
      );
      const dump = new ChildDump({
        label: "pg_dumpall",
        command: "pg_dumpall",
        args: [conn.dbnameArg],
        env: conn.env,
        secrets: conn.secrets,
      });
      return {
        fileName: "all-databases.sql",
        label: "postgres:*",
        source: {
          kind: "postgres",
          tool: "pg_dumpall",
          format: "plain",
          serverVersion: info.version,
          databases: names.split("\n").filter((n) => n !== ""),
          allDatabases: true,
        },
        dump,
        cleanup: conn.cleanup,
      };
    }
    const dump = new ChildDump({
      label: "pg_dump",
      command: "pg_dump",
      args: [opts.format === "custom" ? "--format=custom" : "--format=plain", conn.dbnameArg],
      env: conn.env,
      secrets: conn.secrets,
    });
    return {
      fileName: `${safeFileName(info.database)}.${opts.format === "custom" ? "pgdump" : "sql"}`,
      label: `postgres:${info.database}`,
      source: {
        kind: "postgres",
        tool: "pg_dump",
        format: opts.format,
        serverVersion: info.version,
        databases: [info.database],
      },
      dump,
      cleanup: conn.cleanup,
    };
  } catch (err) {
    await conn.cleanup();
    if (err instanceof UserError) throw new UserError(`${redactUrl(raw)}: ${err.message}`);
    throw err;
  }
}

/** A database name as a file name: '/' and NUL replaced, never "." or "..". */
export function safeFileName(name: string): string {
  const s = name.replace(/[/\0]/g, "_");
  return s === "" || s === "." || s === ".." ? "database" : s;
}
