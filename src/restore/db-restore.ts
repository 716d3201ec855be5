import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import { rawName } from "../repo/tree.js";
import { runCapture } from "../source/child-dump.js";
import { redactUrl } from "../source/db-url.js";
import { mysqlClient, mysqlConnection } from "../source/mysql.js";
import { pgConnection } from "../source/postgres.js";
import { ChildSink } from "./child-sink.js";
import { fileChunks } from "./file-content.js";
import { Restorer } from "./restorer.js";
import { loadTree } from "./tree-walk.js";

export interface DbTarget {
  postgres?: string;
  mysql?: string;
  /** pg_restore --clean --if-exists: drop objects before re-creating them. */
  clean?: boolean;
}

/** The one file of a dump snapshot. */
async function dumpFile(store: BlobStore, snap: SnapshotWithId): Promise<TreeNode> {
  const root = await loadTree(store, snap.tree);
  const only = root.nodes[0];
  if (root.nodes.length !== 1 || only?.type !== "file") {
    throw new UserError(
      `snapshot ${snap.id.slice(0, 8)} is not a database dump (it holds ${root.nodes.length} entries)`,
    );
  }
  return only;
}

/**
 * Which tool reads the dump back, from what the snapshot recorded (docs/FORMAT.md
 * §Snapshots, source): custom-format PostgreSQL dumps go to pg_restore, plain SQL to psql,
 * MariaDB/MySQL dumps to mariadb (or mysql). A `command`/`stdin` snapshot has no recorded
 * format: it is taken as SQL for the client named by the option.
 */
async function sinkFor(
  snap: SnapshotWithId,
  target: DbTarget,
): Promise<{ sink: ChildSink; cleanup: () => Promise<void> }> {
  const kind = snap.source.kind;
  const id = snap.id.slice(0, 8);
  if (target.postgres !== undefined) {
    if (kind === "mysql")
      throw new UserError(`snapshot ${id} holds a MariaDB/MySQL dump: use --mysql URL`);
    const format = kind === "postgres" ? snap.source.format : "plain";
    if (target.clean && format === "plain") {
      throw new UserError(
        `--clean works with custom and directory dumps (pg_restore); snapshot ${id} is plain SQL, which restores as written`,
      );
    }
    const conn = await pgConnection(target.postgres);
    const sink =
      format === "custom"
        ? new ChildSink({
            label: "pg_restore",
            command: "pg_restore",
            // One transaction: a restore cut short (a damaged chunk) leaves nothing behind.
            args: [
              "--exit-on-error",
              "--single-transaction",
              ...(target.clean ? ["--clean", "--if-exists"] : []),
              conn.dbnameArg,
            ],
            env: conn.env,
            secrets: conn.secrets,
          })
        : new ChildSink({
            label: "psql",
            command: "psql",
            // pg_dumpall output creates databases, which cannot run inside a transaction.
            args: [
              "-X",
              "-q",
              "-v",
              "ON_ERROR_STOP=1",
              ...(snap.source.allDatabases ? [] : ["--single-transaction"]),
              conn.dbnameArg,
            ],
            env: conn.env,
            secrets: conn.secrets,
          });
    return { sink, cleanup: conn.cleanup };
  }
  if (target.mysql === undefined) throw new Error("db-restore: internal error: no target");
  if (kind === "postgres")
    throw new UserError(`snapshot ${id} holds a PostgreSQL dump: use --postgres URL`);
  if (target.clean) throw new UserError("--clean goes with --postgres");
  const conn = await mysqlConnection(target.mysql);
  const client = mysqlClient();
  const db = conn.url.database;
  if (db === undefined && !snap.source.allDatabases) {
    await conn.cleanup();
    throw new UserError(`${redactUrl(target.mysql)}: give the database to restore into in the URL`);
  }
  const sink = new ChildSink({
    label: client,
    command: client,
    args: [...conn.args, "--binary-mode", ...(db !== undefined ? ["--", db] : [])],
    secrets: conn.secrets,
  });
  return { sink, cleanup: conn.cleanup };
}

/**
 * A directory-format dump: restored into a private temp directory (the directory
 * restorer, every chunk verified), then read by `pg_restore --format=directory`.
 */
async function restorePgDirectory(
  store: BlobStore,
  snap: SnapshotWithId,
  target: DbTarget & { postgres: string },
): Promise<number> {
  const root = await loadTree(store, snap.tree);
  const only = root.nodes[0];
  if (root.nodes.length !== 1 || only?.type !== "dir") {
    throw new UserError(`snapshot ${snap.id.slice(0, 8)} is not a directory-format dump`);
  }
  const tmp = await mkdtemp(path.join(tmpdir(), "coffer-pgdir-"));
  const conn = await pgConnection(target.postgres);
  try {
    await chmod(tmp, 0o700);
    let failure: Error | null = null;
    const restorer = new Restorer(
      store,
      {
        onError: (p, err) => {
          failure ??= new UserError(`${p}: ${err.message}`);
        },
        onWarning: () => {},
      },
      null,
    );
    const name = rawName(only);
    await restorer.restore(only, [name], tmp);
    if (failure !== null) throw failure;
    await runCapture({
      label: "pg_restore",
      command: "pg_restore",
      args: [
        "--exit-on-error",
        "--single-transaction",
        "--format=directory",
        ...(target.clean ? ["--clean", "--if-exists"] : []),
        conn.dbnameArg,
        tmp, // a directory node restores its contents into the target itself
      ],
      env: conn.env,
      secrets: conn.secrets,
    });
    return restorer.counters.bytes;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await conn.cleanup();
  }
}

/** Streams a dump snapshot into the database's restore tool; returns the bytes fed. */
export async function restoreDatabase(
  store: BlobStore,
  snap: SnapshotWithId,
  target: DbTarget,
): Promise<number> {
  if (target.postgres !== undefined && snap.source.format === "directory") {
    return restorePgDirectory(store, snap, { ...target, postgres: target.postgres });
  }
  const file = await dumpFile(store, snap);
  const { sink, cleanup } = await sinkFor(snap, target);
  let bytes = 0;
  try {
    for await (const chunk of fileChunks(store, file.content ?? [])) {
      if (!(await sink.write(chunk))) break;
      bytes += chunk.length;
    }
    await sink.finish();
    return bytes;
  } finally {
    await sink.kill();
    await cleanup();
  }
}
