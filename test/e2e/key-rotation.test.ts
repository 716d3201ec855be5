// coffer key: add, list, remove and rotate --new-generation with passphrase and age
// (post-quantum hybrid) envelopes: back up, rotate, back up, restore both.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { generateHybridIdentity, identityToRecipient } from "age-encryption";
import { beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";

let dir = "";
useTempDir((d) => {
  dir = d;
});
let pqIdentityFile = "";
let pqRecipient = "";

beforeAll(async () => {
  const identity = await generateHybridIdentity();
  pqRecipient = await identityToRecipient(identity);
  pqIdentityFile = path.join(dir, "pq.key");
  await writeFile(pqIdentityFile, `# post-quantum hybrid\n${identity}\n`, { mode: 0o600 });
});

async function keys(repo: string, extra: string[] = [], env = {}) {
  const r = await coffer(["key", "list", "--repo", repo, "--json", ...extra], { env });
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout) as {
    generation: number;
    keys: Array<{
      id: string;
      provider: string;
      generation: number | null;
      created: string | null;
    }>;
  };
}

async function snapshotIds(repo: string, env = {}): Promise<string[]> {
  const r = await coffer(["snapshots", "--repo", repo, "--json"], { env });
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ id: string }>).map((s) => s.id);
}

describe("key management round trips", () => {
  it("a hybrid post-quantum recipient added with key add opens the repository with its identity", async () => {
    const repo = path.join(dir, "pq");
    await initRepo(repo);
    const add = await coffer(["key", "add", "--repo", repo, "--recipient", pqRecipient]);
    expect(add.code).toBe(0);
    const listed = await keys(repo);
    expect(listed.keys.map((k) => k.provider).sort()).toEqual(["age-pq", "passphrase"]);
    const r = await coffer(["snapshots", "--repo", repo, "--identity", pqIdentityFile], {
      env: { COFFER_PASSPHRASE: undefined },
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("back up, rotate --new-generation, back up, restore both; verify passes; objects carry their generation", async () => {
    const repo = path.join(dir, "gen");
    await initRepo(repo);
    const src = path.join(dir, "gen-src");
    await mkdir(src);
    await writeFile(path.join(src, "f.txt"), "version one\n");
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);
    expect((await coffer(["key", "add", "--repo", repo, "--recipient", pqRecipient])).code).toBe(0);

    const rot = await coffer(["key", "rotate", "--new-generation", "--repo", repo]);
    expect(rot.code).toBe(0);
    expect(rot.stdout).toMatch(/key generation 2: 1 envelope\(s\) re-made/);
    // The recipient-only envelope cannot be re-made without its identity: named, left alone.
    expect(rot.stderr).toMatch(/still opens only older generations/);
    const after = await keys(repo);
    expect(after.generation).toBe(2);
    expect(after.keys.find((k) => k.provider === "passphrase")?.generation).toBe(2);

    await writeFile(path.join(src, "f.txt"), "version two\n");
    await writeFile(path.join(src, "g.txt"), "new under generation 2\n");
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);

    const [first, second] = await snapshotIds(repo);
    const gens: number[] = [];
    for (const id of [first, second]) {
      const sealed = await readFile(path.join(repo, "snapshots", id as string));
      gens.push(sealed.readUInt32LE(0));
    }
    expect(gens).toEqual([1, 2]);

    for (const [id, want] of [
      [first, "version one\n"],
      [second, "version two\n"],
    ] as const) {
      const out = path.join(dir, `gen-out-${id?.slice(0, 8)}`);
      const r = await coffer(["restore", "--repo", repo, id as string, "--target", out]);
      expect(r.code).toBe(0);
      expect(await readFile(path.join(out, src, "f.txt"), "utf8")).toBe(want);
    }
    const v = await coffer(["verify", "--repo", repo]);
    expect(v.stderr).not.toMatch(/coffer:/);
    expect(v.code).toBe(0);

    // The stale post-quantum envelope opens generation 1 only: a clear key error.
    const stale = await coffer(["snapshots", "--repo", repo, "--identity", pqIdentityFile], {
      env: { COFFER_PASSPHRASE: undefined },
    });
    expect(stale.code).toBe(12);
    expect(stale.stderr).toMatch(/opens only key generation 1; the repository is at generation 2/);

    // Re-add it at generation 2, remove the stale one; it then opens everything again.
    expect((await coffer(["key", "add", "--repo", repo, "--recipient", pqRecipient])).code).toBe(0);
    const staleId = (await keys(repo)).keys.find(
      (k) => k.provider === "age-pq" && k.generation === null,
    );
    const withBoth = ["--identity", pqIdentityFile];
    const listed = await keys(repo, withBoth);
    const old = listed.keys.find((k) => k.provider === "age-pq" && k.generation === 1);
    expect(staleId).toBeDefined();
    expect(old).toBeDefined();
    expect(
      (await coffer(["key", "remove", "--repo", repo, (old?.id ?? "").slice(0, 12), ...withBoth]))
        .code,
    ).toBe(0);
    const pqOnly = await coffer(
      [
        "restore",
        "--repo",
        repo,
        first as string,
        "--target",
        path.join(dir, "pq-out"),
        ...withBoth,
      ],
      {
        env: { COFFER_PASSPHRASE: undefined },
      },
    );
    expect(pqOnly.code).toBe(0);
    expect(await readFile(path.join(dir, "pq-out", src, "f.txt"), "utf8")).toBe("version one\n");
  });

  it("key remove refuses the last envelope the given keys open at the current generation", async () => {
    const repo = path.join(dir, "rm");
    await initRepo(repo);
    expect((await coffer(["key", "add", "--repo", repo, "--recipient", pqRecipient])).code).toBe(0);
    const pass = (await keys(repo)).keys.find((k) => k.provider === "passphrase");
    const refused = await coffer(["key", "remove", "--repo", repo, (pass?.id ?? "").slice(0, 12)]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^coffer: refusing to remove keys\/[0-9a-f]{12}: no other envelope opened with the given keys holds the current key generation/,
    );
    expect(await readdir(path.join(repo, "keys"))).toHaveLength(2);
    // With the identity that opens the other envelope, the passphrase envelope can go.
    const ok = await coffer([
      "key",
      "remove",
      "--repo",
      repo,
      (pass?.id ?? "").slice(0, 12),
      "--identity",
      pqIdentityFile,
    ]);
    expect(ok.code).toBe(0);
    expect(await readdir(path.join(repo, "keys"))).toHaveLength(1);
    const wrong = await coffer(["snapshots", "--repo", repo]);
    expect(wrong.code).toBe(12);
  });
});
