import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";
import { mariadb, myBase, uniqueDb } from "./db-helpers.js";
import { repoFiles } from "./e2e-helpers.js";

// Real MariaDB on 127.0.0.1:3306 (root, no password): a database with varied types and a
// few MB of random text is dumped through coffer, dropped, restored, and compared.

const checksumSql = `SET SESSION group_concat_max_len = 1073741824;
  SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', id, t, IFNULL(n, 'N'),
    IFNULL(HEX(b), 'N'), j, ts, IFNULL(u, 'N')) ORDER BY id SEPARATOR '\\n'))) FROM items`;

describe("backup --mysql against a real MariaDB", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });
  const db = uniqueDb("coffer_my");
  const repo = () => path.join(dir, "repo");
  let sum = "";

  beforeAll(async () => {
    await initRepo(repo());
    mariadb("", `CREATE DATABASE ${db} CHARACTER SET utf8mb4`);
    mariadb(
      db,
      `CREATE TABLE items (id INT PRIMARY KEY, t TEXT, n DECIMAL(20,6), b BLOB, j JSON,
         ts DATETIME(6), u VARCHAR(100)) CHARACTER SET utf8mb4;
       INSERT INTO items
       SELECT seq,
              CONCAT(MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()),
                     MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())),
              IF(seq % 7 = 0, NULL, ROUND(RAND() * 1e9, 6)),
              IF(seq % 5 = 0, NULL, UNHEX(CONCAT(MD5(RAND()), '00FF0A0D5C27'))),
              JSON_OBJECT('g', seq, 'tags', JSON_ARRAY('a', 'ü', seq % 3)),
              TIMESTAMP('2020-01-01') + INTERVAL (seq * 61500) MICROSECOND,
              IF(seq % 11 = 0, NULL, CONCAT('ünïcødé ✓ 漢字 ', seq))
       FROM seq_1_to_24000`,
    );
    sum = mariadb(db, checksumSql);
  });
  afterAll(() => {
    mariadb("", `DROP DATABASE IF EXISTS ${db}`);
  });

  it("backs up, restores into a dropped database, content equal; a second backup deduplicates", async () => {
    const url = `${myBase}/${db}`;
    const b1 = await coffer(["backup", "--repo", repo(), "--mysql", url, "--json"]);
    expect(b1.stderr).toBe("");
    expect(b1.code).toBe(0);
    const s1 = JSON.parse(b1.stdout);
    expect(s1.bytesRead).toBeGreaterThan(4_000_000);
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    expect(snap.paths).toEqual([`mysql:${db}`]);
    expect(snap.source).toMatchObject({ kind: "mysql", format: "sql", databases: [db] });
    expect(snap.source.tool).toMatch(/^(mariadb-dump|mysqldump)$/);
    expect(snap.source.serverVersion).toMatch(/MariaDB|^\d/);

    // The dump's header and footer hold times: the chunks between them dedup.
    const b2 = await coffer(["backup", "--repo", repo(), "--mysql", url, "--json"]);
    expect(b2.code).toBe(0);
    expect(JSON.parse(b2.stdout).bytesAdded).toBeLessThan(s1.bytesAdded / 2);

    mariadb("", `DROP DATABASE ${db}`);
    mariadb("", `CREATE DATABASE ${db} CHARACTER SET utf8mb4`);
    const r = await coffer(["restore", "--repo", repo(), s1.snapshot, "--mysql", url]);
    expect(r.stderr).not.toContain("failed");
    expect(r.code).toBe(0);
    expect(mariadb(db, checksumSql)).toBe(sum);
  });

  it("--all-databases dumps every database and records their names", async () => {
    const b = await coffer([
      "backup",
      "--repo",
      repo(),
      "--mysql",
      myBase,
      "--all-databases",
      "--json",
    ]);
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    expect(snap.paths).toEqual(["mysql:*"]);
    expect(snap.source.allDatabases).toBe(true);
    expect(snap.source.databases).toContain(db);
    expect(snap.source.databases).not.toContain("information_schema");
    const dump = await coffer(["restore", "--repo", repo(), id, "--stdout"]);
    expect(dump.stdout).toContain(`CREATE DATABASE /*!32312 IF NOT EXISTS*/ \`${db}\``);
  });

  it("a missing database fails the backup with exit 1 and records no snapshot", async () => {
    const before = await repoFiles(repo(), "snapshots");
    const r = await coffer([
      "backup",
      "--repo",
      repo(),
      "--mysql",
      "mysql://root:Pw-s3cr3t-xyz@127.0.0.1:3306/coffer_no_such_db",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain("Pw-s3cr3t-xyz");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await repoFiles(repo(), "snapshots")).toEqual(before);
  });

  it("a failing restore tool fails the restore with its error", async () => {
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    const r = await coffer([
      "restore",
      "--repo",
      repo(),
      snap.id,
      "--mysql",
      `${myBase}/coffer_no_such_db`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed with exit code 1: .*Unknown database 'coffer_no_such_db'/);
  });
});
