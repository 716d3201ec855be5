import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";
import { pgBase, psql, uniqueDb } from "./db-helpers.js";
import { repoFiles } from "./e2e-helpers.js";

// Real PostgreSQL on 127.0.0.1:5432 (trust auth): a database with varied types and a few
// MB of random text is dumped through coffer, dropped, restored, and compared.

const checksumSql =
  "SELECT count(*) || ':' || md5(string_agg(i::text, '|' ORDER BY id)) FROM items i";

function fill(db: string, rows: number): void {
  psql(
    db,
    `CREATE TABLE items (id serial PRIMARY KEY, t text, n numeric(20,6), b bytea, j jsonb,
       ts timestamptz, u text);
     INSERT INTO items (t, n, b, j, ts, u)
     SELECT (SELECT string_agg(md5(random()::text || g || k), '') FROM generate_series(1, 10) k),
            CASE WHEN g % 7 = 0 THEN NULL ELSE round((random() * 1e9)::numeric, 6) END,
            CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(random()::text) || '00ff', 'hex') END,
            jsonb_build_object('g', g, 'tags', jsonb_build_array('a', 'ü', g % 3)),
            timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute 1.5 second',
            CASE WHEN g % 11 = 0 THEN NULL ELSE 'ünïcødé ✓ 漢字 ' || g END
     FROM generate_series(1, ${rows}) g`,
  );
}

describe("backup --postgres against a real PostgreSQL", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });
  const db = uniqueDb("coffer_pg");
  const other = uniqueDb("coffer_pg_plain");
  const third = uniqueDb("coffer_pg_dir");
  const repo = () => path.join(dir, "repo");
  let sum = "";

  beforeAll(async () => {
    await initRepo(repo());
    psql("postgres", `CREATE DATABASE ${db}`);
    fill(db, 24000);
    sum = psql(db, checksumSql);
  });
  afterAll(() => {
    psql("postgres", `DROP DATABASE IF EXISTS ${db}`);
    psql("postgres", `DROP DATABASE IF EXISTS ${other}`);
    psql("postgres", `DROP DATABASE IF EXISTS ${third}`);
  });

  it("backs up a custom-format dump, restores it into a dropped database, content equal; a second backup deduplicates", async () => {
    // A password in the URL (ignored by trust auth) must never surface anywhere.
    const url = `postgres://postgres:Pw-s3cr3t-xyz@127.0.0.1:5432/${db}`;
    const b1 = await coffer(["backup", "--repo", repo(), "--postgres", url, "--json"]);
    expect(b1.stderr).toBe("");
    expect(b1.code).toBe(0);
    const s1 = JSON.parse(b1.stdout);
    expect(s1.bytesRead).toBeGreaterThan(1_000_000);

    const snaps = await coffer(["snapshots", "--repo", repo(), "--json"]);
    expect(snaps.stdout).not.toContain("Pw-s3cr3t-xyz");
    const snap = JSON.parse(snaps.stdout).at(-1);
    expect(snap.paths).toEqual([`postgres:${db}`]);
    expect(snap.source).toMatchObject({
      kind: "postgres",
      tool: "pg_dump",
      format: "custom",
      databases: [db],
    });
    expect(snap.source.serverVersion).toMatch(/^\d+/);
    const table = await coffer(["snapshots", "--repo", repo()]);
    expect(table.stdout).toMatch(new RegExp(`postgres:${db} \\(pg_dump custom, server \\d+`));

    const b2 = await coffer(["backup", "--repo", repo(), "--postgres", url, "--json"]);
    expect(b2.code).toBe(0);
    const s2 = JSON.parse(b2.stdout);
    // The dump header holds its start time: the first chunk (~1 MiB) changes, the rest dedups.
    expect(s1.bytesRead).toBeGreaterThan(4_000_000);
    expect(s2.bytesAdded).toBeLessThan(s1.bytesAdded / 2);

    psql("postgres", `DROP DATABASE ${db}`);
    psql("postgres", `CREATE DATABASE ${db}`);
    const r = await coffer(["restore", "--repo", repo(), s1.snapshot, "--postgres", url]);
    expect(r.stderr).not.toContain("Pw-s3cr3t-xyz");
    expect(r.code).toBe(0);
    expect(psql(db, checksumSql)).toBe(sum);

    // Restoring again over existing tables fails with pg_restore's own error, exit 1;
    // --clean drops and re-creates them.
    const again = await coffer(["restore", "--repo", repo(), s1.snapshot, "--postgres", url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/pg_restore failed.*already exists/);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    const clean = await coffer([
      "restore",
      "--repo",
      repo(),
      s1.snapshot,
      "--postgres",
      url,
      "--clean",
    ]);
    expect(clean.code).toBe(0);
    expect(psql(db, checksumSql)).toBe(sum);
  });

  it("a plain-format dump restores through psql into another database", async () => {
    const b = await coffer([
      "backup",
      "--repo",
      repo(),
      "--postgres",
      `${pgBase}/${db}`,
      "--pg-format",
      "plain",
      "--json",
    ]);
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const ls = await coffer(["ls", "--repo", repo(), id]);
    expect(ls.stdout.trim()).toBe(`/${db}.sql`);
    psql("postgres", `CREATE DATABASE ${other}`);
    const r = await coffer(["restore", "--repo", repo(), id, "--postgres", `${pgBase}/${other}`]);
    expect(r.code).toBe(0);
    expect(psql(other, checksumSql)).toBe(sum);
    const wrong = await coffer([
      "restore",
      "--repo",
      repo(),
      id,
      "--mysql",
      "mysql://root@127.0.0.1/x",
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("PostgreSQL dump: use --postgres");
  });

  it("a directory-format dump is stored as a directory (a file per table) and restores through pg_restore", async () => {
    const b = await coffer([
      "backup",
      "--repo",
      repo(),
      "--postgres",
      `${pgBase}/${db}`,
      "--pg-format",
      "directory",
      "--json",
    ]);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const ls = (await coffer(["ls", "--repo", repo(), id])).stdout.trim().split("\n");
    expect(ls).toContain(`/${db}.dir/toc.dat`);
    expect(ls.filter((l) => l.endsWith(".dat.gz")).length).toBeGreaterThan(0);
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    expect(snap.source).toMatchObject({ kind: "postgres", format: "directory", databases: [db] });
    psql("postgres", `CREATE DATABASE ${third}`);
    const r = await coffer(["restore", "--repo", repo(), id, "--postgres", `${pgBase}/${third}`]);
    expect(r.code).toBe(0);
    expect(psql(third, checksumSql)).toBe(sum);
    const clean = await coffer([
      "restore",
      "--repo",
      repo(),
      id,
      "--postgres",
      `${pgBase}/${third}`,
      "--clean",
    ]);
    expect(clean.code).toBe(0);
    expect(psql(third, checksumSql)).toBe(sum);
  });

  it("a missing database fails the backup with exit 1 and records no snapshot", async () => {
    const before = await repoFiles(repo(), "snapshots");
    const r = await coffer([
      "backup",
      "--repo",
      repo(),
      "--postgres",
      "postgres://postgres:Pw-s3cr3t-xyz@127.0.0.1:5432/coffer_no_such_db",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('database "coffer_no_such_db" does not exist');
    expect(r.stderr).not.toContain("Pw-s3cr3t-xyz");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await repoFiles(repo(), "snapshots")).toEqual(before);
  });
});
