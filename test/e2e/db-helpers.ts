// Helpers for the database dump tests: run SQL on the real PostgreSQL and MariaDB of this
// machine (see .ci/run, which starts them), make unique database names.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

export const pgBase = "postgres://postgres@127.0.0.1:5432";
export const myBase = "mysql://root@127.0.0.1:3306";

export function uniqueDb(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** Runs SQL with psql on database `db`; returns its unaligned, tuples-only output. */
export function psql(db: string, sql: string): string {
  return execFileSync(
    "psql",
    [
      "-X",
      "-q",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      "127.0.0.1",
      "-U",
      "postgres",
      "-d",
      db,
      "-c",
      sql,
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  ).trim();
}

/** Runs SQL with the mariadb client; `db` may be "" for none. */
export function mariadb(db: string, sql: string): string {
  return execFileSync(
    "mariadb",
    [
      "--protocol=TCP",
      "-h",
      "127.0.0.1",
      "-P",
      "3306",
      "-u",
      "root",
      "-N",
      "-B",
      ...(db ? [db] : []),
      "-e",
      sql,
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  ).trim();
}
