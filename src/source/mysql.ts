import { UserError } from "../errors.js";
import { ChildDump, type ChildSpec, runCapture } from "./child-dump.js";
import { type DbUrl, parseDbUrl, redactUrl, secretFile } from "./db-url.js";
import { findOnPath, type PreparedDump } from "./dump-source.js";
import { safeFileName } from "./postgres.js";

/** Consistency flags users expect: one InnoDB snapshot, and the schema's code objects too. */
export const mysqlDumpFlags = [
  "--single-transaction",
  "--routines",
  "--events",
  "--triggers",
  "--hex-blob",
  "--default-character-set=utf8mb4",
];

const systemSchemas = new Set(["information_schema", "performance_schema", "sys"]);

/**
 * How MariaDB/MySQL clients reach the server: host, port and user in argv, the password
 * in a 0600 option file (--defaults-extra-file, which must be the first argument) in a
 * private temp directory, removed afterwards.
 */
export interface MysqlConnection {
  args: string[];
  secrets: string[];
  url: DbUrl;
  cleanup(): Promise<void>;
}

export async function mysqlConnection(raw: string): Promise<MysqlConnection> {
  const url = parseDbUrl(raw, "mysql");
  const args: string[] = [];
  let cleanup = async () => {};
  if (url.password !== undefined) {
    const quoted = url.password.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
    const f = await secretFile("my.cnf", `[client]\npassword="${quoted}"\n`);
    args.push(`--defaults-extra-file=${f.file}`);
    cleanup = f.cleanup;
  }
  if (url.host !== undefined) args.push(`--host=${url.host}`);
  if (url.port !== undefined) args.push(`--port=${url.port}`);
  if (url.user !== undefined) args.push(`--user=${url.user}`);
  // Over TCP unless the URL says otherwise: "localhost" would mean the socket to the client.
  if (url.host !== undefined && url.params.get("socket") === null) args.push("--protocol=TCP");
  const socket = url.params.get("socket");
  if (socket !== null) args.push(`--socket=${socket}`);
  return { args, secrets: [url.password ?? "", raw], url, cleanup };
}

export function mysqlClient(): string {
  const c = findOnPath(["mariadb", "mysql"]);
  if (c === undefined)
    throw new UserError("neither mariadb nor mysql is installed: install the client");
  return c;
}

function querySpec(conn: MysqlConnection, sql: string): ChildSpec {
  const client = mysqlClient();
  return {
    label: client,
    command: client,
    args: [...conn.args, "--batch", "--skip-column-names", "-e", sql],
    secrets: conn.secrets,
  };
}

export async function prepareMysql(
  raw: string,
  opts: { allDatabases: boolean },
): Promise<PreparedDump> {
  const conn = await mysqlConnection(raw);
  try {
    const db = conn.url.database;
    if (!opts.allDatabases && db === undefined) {
      throw new UserError("give the database in the URL (mysql://USER@HOST/DB) or --all-databases");
    }
    const version = (await runCapture(querySpec(conn, "SELECT VERSION()"))).trim();
    const databases = opts.allDatabases
      ? (await runCapture(querySpec(conn, "SHOW DATABASES")))
          .split("\n")
          .filter((n) => n !== "" && !systemSchemas.has(n))
      : [db as string];
    const tool = findOnPath(["mariadb-dump", "mysqldump"]);
    if (tool === undefined) throw new UserError("neither mariadb-dump nor mysqldump is installed");
    const dump = new ChildDump({
      label: tool,
      command: tool,
      args: [
        ...conn.args,
        ...mysqlDumpFlags,
        ...(opts.allDatabases ? ["--all-databases"] : ["--", db as string]),
      ],
      secrets: conn.secrets,
    });
    return {
      fileName: opts.allDatabases ? "all-databases.sql" : `${safeFileName(db as string)}.sql`,
      label: `mysql:${opts.allDatabases ? "*" : db}`,
      source: {
        kind: "mysql",
        tool,
        format: "sql",
        serverVersion: version,
        databases,
        ...(opts.allDatabases ? { allDatabases: true } : {}),
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
