// One flipped bit anywhere in a repository must never turn into wrong bytes silently:
// either the repository does not open, or verify --read-data reports the damage, or (when
// the flip was in bytes nothing depends on) a full restore gives back exactly the original.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CofferError } from "../../src/errors.js";
import { authenticateConfig, parseConfig } from "../../src/repo/config.js";
import {
  backup,
  check,
  flipBit,
  initRepo,
  mixedData,
  openRepo,
  openStore,
  readTree,
  restoreSnapshot,
  tempDir,
} from "../unit/inprocess.js";

const categories = ["config", "keys", "data", "index", "snapshots"] as const;
type Category = (typeof categories)[number];

let base: string;
let repoDir: string;
let srcDir: string;
const files = new Map<Category, { rel: string; size: number }[]>();
/** Snapshot id → every entry of the source at backup time. */
const expected = new Map<string, Map<string, string | Buffer>>();
const outcomes = { openFailed: 0, checkFailed: 0, clean: 0 };
let run = 0;

async function listFiles(dir: string, rel = ""): Promise<{ rel: string; size: number }[]> {
  const out: { rel: string; size: number }[] = [];
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await listFiles(dir, r)));
    else out.push({ rel: r, size: (await fs.stat(path.join(dir, r))).size });
  }
  return out;
}

beforeAll(async () => {
  base = await tempDir("coffer-bitflip-");
  repoDir = path.join(base, "repo");
  srcDir = path.join(base, "src");
  await fs.mkdir(path.join(srcDir, "sub"), { recursive: true });
  await fs.writeFile(path.join(srcDir, "small.txt"), "hello, coffer\n");
  await fs.writeFile(path.join(srcDir, "empty"), "");
  await fs.writeFile(path.join(srcDir, "sub", "big.bin"), mixedData(3 * 1024 * 1024 + 12_345));
  await fs.writeFile(path.join(srcDir, "sub", "mid.bin"), randomBytes(300_000));
  await fs.symlink("../small.txt", path.join(srcDir, "sub", "link"));
  // Small packs and chunks, so the few MB spread over several packs and many blobs.
  const { repo, backend } = await initRepo(repoDir, {
    packSize: 512 * 1024,
    chunker: { min: 64 * 1024, avg: 128 * 1024, max: 512 * 1024 },
  });
  const first = await backup(repo, [srcDir]);
  expected.set(first.id, await readTree(srcDir));
  await fs.appendFile(path.join(srcDir, "small.txt"), "second snapshot\n");
  await fs.writeFile(path.join(srcDir, "sub", "new.bin"), mixedData(700_000));
  const second = await backup(repo, [srcDir], first.tree);
  expected.set(second.id, await readTree(srcDir));
  backend.close();
  for (const f of await listFiles(repoDir)) {
    const top = f.rel.split("/")[0] as Category;
    if (!categories.includes(top)) continue;
    const list = files.get(top) ?? [];
    list.push(f);
    files.set(top, list);
  }
}, 120_000);

afterAll(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

/** Copies the repository's files (not its empty folders: nothing needs them to read). */
async function copyRepo(to: string): Promise<void> {
  for (const list of files.values()) {
    for (const f of list) {
      await fs.mkdir(path.dirname(path.join(to, f.rel)), { recursive: true });
      await fs.copyFile(path.join(repoDir, f.rel), path.join(to, f.rel));
    }
  }
}

function same(a: string | Buffer | undefined, b: string | Buffer | undefined): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

/** Restores every snapshot; what is restored must be exact, what is not must be reported. */
async function restoreAll(dir: string, mustBeClean: boolean): Promise<void> {
  const { repo, backend } = await openRepo(dir);
  try {
    let store: Awaited<ReturnType<typeof openStore>>;
    try {
      store = await openStore(repo);
    } catch (err) {
      expect(err).toBeInstanceOf(CofferError);
      expect(mustBeClean, `index failed to load but verify was clean: ${err}`).toBe(false);
      return;
    }
    for (const [id, want] of expected) {
      const target = path.join(dir, `restore-${id.slice(0, 8)}`);
      const outcome = await restoreSnapshot(store, id, target);
      const reported = outcome.thrown !== undefined || outcome.errors.length > 0;
      if (outcome.thrown !== undefined) expect(outcome.thrown).toBeInstanceOf(CofferError);
      for (const e of outcome.errors) expect(e.err).toBeInstanceOf(CofferError);
      const root = path.join(target, srcDir);
      const got = await readTree(root).catch(() => new Map<string, string | Buffer>());
      for (const [rel, g] of got) {
        expect(want.has(rel), `restore made ${rel}, which is not in the snapshot`).toBe(true);
        expect(same(g, want.get(rel)), `${rel} restored with wrong content`).toBe(true);
      }
      const missing = [...want.keys()].filter((rel) => !got.has(rel));
      if (missing.length > 0) expect(reported, `${missing} missing with no error`).toBe(true);
      if (mustBeClean) {
        expect(outcome.thrown).toBeUndefined();
        expect(outcome.errors).toEqual([]);
        expect(missing).toEqual([]);
      }
    }
  } finally {
    backend.close();
  }
}

describe("a single flipped bit anywhere in the repository", () => {
  it("is refused at open, reported by verify --read-data, or harmless to a full restore", async () => {
    const where = fc.oneof(
      fc.record({ from: fc.constant("anywhere" as const), n: fc.nat() }),
      fc.record({
        from: fc.constant("start" as const),
        n: fc.integer({ min: 0, max: 8 * 48 - 1 }),
      }),
      fc.record({ from: fc.constant("end" as const), n: fc.integer({ min: 0, max: 8 * 48 - 1 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...categories),
        fc.nat(),
        where,
        async (category, fileSel, at) => {
          const list = files.get(category) ?? [];
          expect(list.length).toBeGreaterThan(0);
          const file = list[fileSel % list.length] as { rel: string; size: number };
          const bits = file.size * 8;
          const bit =
            at.from === "anywhere"
              ? at.n % bits
              : at.from === "start"
                ? at.n % bits
                : bits - 1 - (at.n % bits);
          const copy = path.join(base, `copy-${run++}`);
          await copyRepo(copy);
          try {
            await flipBit(path.join(copy, file.rel), bit);
            const what = `${file.rel} bit ${bit}`;
            try {
              const { backend } = await openRepo(copy);
              backend.close();
            } catch (err) {
              expect(err, what).toBeInstanceOf(CofferError);
              outcomes.openFailed++;
              return;
            }
            const report = await check(copy, true);
            const clean = report.errors.length === 0;
            // Packs, index deltas and snapshots are authenticated byte for byte: verify
            // --read-data must notice every flip in them.
            if (category === "data" || category === "index" || category === "snapshots") {
              expect(clean, `verify missed ${what}`).toBe(false);
            }
            if (clean) outcomes.clean++;
            else outcomes.checkFailed++;
            await restoreAll(copy, clean);
          } finally {
            await fs.rm(copy, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 120 },
    );
    expect(outcomes.openFailed + outcomes.checkFailed + outcomes.clean).toBeGreaterThanOrEqual(120);
    expect(outcomes.openFailed).toBeGreaterThan(0);
    expect(outcomes.checkFailed).toBeGreaterThan(0);
  }, 180_000);

  it("every single bit flip of the config fails to parse or authenticate, or changes nothing", async () => {
    const { repo, backend } = await openRepo(repoDir);
    backend.close();
    const raw = await fs.readFile(path.join(repoDir, "config"));
    const want = authenticateConfig(parseConfig(raw, "r"), repo.current.config);
    let refused = 0;
    for (let bit = 0; bit < raw.length * 8; bit++) {
      const b = Buffer.from(raw);
      b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7));
      try {
        expect(authenticateConfig(parseConfig(b, "r"), repo.current.config)).toEqual(want);
      } catch (err) {
        expect(err, `config bit ${bit}`).toBeInstanceOf(CofferError);
        refused++;
      }
    }
    // Only flips that leave the JSON's meaning unchanged may pass.
    expect(refused).toBeGreaterThan(raw.length * 8 * 0.95);
  });

  it("the undamaged repository verifies and restores exactly (the baseline the property relies on)", async () => {
    const report = await check(repoDir, true);
    expect(report.errors).toEqual([]);
    expect(report.snapshots).toBe(2);
    expect(report.packs).toBeGreaterThan(4);
    const copy = path.join(base, "baseline");
    await copyRepo(copy);
    await restoreAll(copy, true);
  });
});
