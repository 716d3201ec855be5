import { rmSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { UserError } from "../errors.js";

/** A database URL taken apart; the password never goes back into a string we print or pass. */
export interface DbUrl {
  scheme: "postgres" | "mysql";
  user?: string;
  password?: string;
  host?: string;
  port?: string;
  database?: string;
  /** Query parameters (sslmode=require, ...), kept for the tools that understand them. */
  params: URLSearchParams;
}

/**
 * Parses postgres://user:pass@host:port/db?sslmode=... or mysql://user:pass@host:port/db
 * (mariadb:// is accepted as mysql). Errors show the URL with its password replaced.
 */
export function parseDbUrl(raw: string, expect: "postgres" | "mysql"): DbUrl {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UserError(
      `${redactUrl(raw)} is not a database URL: use ${expect === "postgres" ? "postgres://USER@HOST:PORT/DB" : "mysql://USER@HOST:PORT/DB"}`,
    );
  }
  const scheme = u.protocol.replace(/:$/, "");
  const ok =
    expect === "postgres"
      ? scheme === "postgres" || scheme === "postgresql"
      : scheme === "mysql" || scheme === "mariadb";
  if (!ok) throw new UserError(`${redactUrl(raw)}: expected a ${expect}:// URL`);
  const dec = (s: string) => (s === "" ? undefined : decodeURIComponent(s));
  const db = u.pathname.replace(/^\//, "");
  if (db.includes("/"))
    throw new UserError(`${redactUrl(raw)}: the path must be one database name`);
  return {
    scheme: expect,
    user: dec(u.username),
    password: dec(u.password),
    host: dec(u.hostname.replace(/^\[|\]$/g, "")),
    port: u.port === "" ? undefined : u.port,
    database: dec(db),
    params: u.searchParams,
  };
}

/** The URL as it may be shown or recorded: any password replaced with "***". */
export function redactUrl(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, "$1:***@");
}

/** A private temp directory (0700) for a password file; removed by the returned cleanup. */
export async function secretFile(
  name: string,
  content: string,
): Promise<{ file: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "coffer-secret-"));
  await chmod(dir, 0o700);
  const file = path.join(dir, name);
  await writeFile(file, content, { mode: 0o600, flag: "wx" });
  // Also on process.exit (SIGINT/SIGTERM end the process without unwinding finally blocks).
  const onExit = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", onExit);
  return {
    file,
    cleanup: async () => {
      process.removeListener("exit", onExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
