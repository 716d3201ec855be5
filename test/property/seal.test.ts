import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { blobId } from "../../src/crypto/blob-id.js";
import {
  decodeKeyRecord,
  encodeKeyRecord,
  unwrapKeyRecord,
  wrapKeyRecord,
} from "../../src/crypto/envelope.js";
import { deriveKeys, type RepositoryKeys } from "../../src/crypto/keys.js";
import {
  associatedData,
  blobKey,
  ObjectKind,
  open,
  seal,
  sealedGeneration,
  sealOverhead,
} from "../../src/crypto/seal.js";
import { IntegrityError, KeyError } from "../../src/errors.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import { type BlobKind, openBlob, sealBlob } from "../../src/repo/blob.js";

const bytes = (n: number) =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const key32 = bytes(32);
const kinds = Object.values(ObjectKind) as ObjectKind[];
const kindArb = fc.constantFrom(...kinds);
const generationArb = fc.integer({ min: 1, max: 0xffffffff });
const plaintextArb = fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a));

const sealedCase = fc.record({
  key: key32,
  repositoryId: key32,
  kind: kindArb,
  id: key32,
  generation: generationArb,
  plaintext: plaintextArb,
});

/**
 * Opens a sealed object the way every reader in the repository does: the generation in
 * the clear selects the keys and goes into the associated data (docs/FORMAT.md).
 */
function openAsReader(
  c: { key: Buffer; repositoryId: Buffer; kind: ObjectKind; id: Buffer },
  sealed: Buffer,
): Buffer {
  const generation = sealedGeneration(sealed);
  const aad = associatedData(c.repositoryId, c.kind, c.id, generation);
  return open(c.key, aad, sealed, "test object");
}

function flip(b: Buffer, bit: number): Buffer {
  const out = Buffer.from(b);
  const i = Math.floor(bit / 8);
  out[i] = (out[i] as number) ^ (1 << (bit % 8));
  return out;
}

function expectIntegrityError(fn: () => unknown, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(IntegrityError);
  if (message) expect((thrown as Error).message).toMatch(message);
}

describe("seal / open", () => {
  it("round-trips any plaintext, key, kind, id and generation", () => {
    fc.assert(
      fc.property(sealedCase, (c) => {
        const aad = associatedData(c.repositoryId, c.kind, c.id, c.generation);
        const sealed = seal(c.key, aad, c.generation, c.plaintext);
        expect(sealed.length).toBe(c.plaintext.length + sealOverhead);
        expect(sealedGeneration(sealed)).toBe(c.generation);
        expect(open(c.key, aad, sealed, "x").equals(c.plaintext)).toBe(true);
        expect(openAsReader(c, sealed).equals(c.plaintext)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("uses a fresh nonce: sealing the same plaintext twice gives different bytes", () => {
    const k = randomBytes(32);
    const aad = associatedData(randomBytes(32), ObjectKind.data, randomBytes(32), 1);
    const p = Buffer.from("same plaintext");
    expect(seal(k, aad, 1, p).equals(seal(k, aad, 1, p))).toBe(false);
  });

  it("any single bit flip anywhere, generation prefix included, fails with IntegrityError", () => {
    fc.assert(
      fc.property(sealedCase, fc.nat(), (c, n) => {
        const aad = associatedData(c.repositoryId, c.kind, c.id, c.generation);
        const sealed = seal(c.key, aad, c.generation, c.plaintext);
        const damaged = flip(sealed, n % (sealed.length * 8));
        expectIntegrityError(() => openAsReader(c, damaged), /failed authentication/);
      }),
      { numRuns: 500 },
    );
  });

  it("flips in the generation prefix and the tag are all caught (exhaustive over one object)", () => {
    const c = {
      key: randomBytes(32),
      repositoryId: randomBytes(32),
      kind: ObjectKind.snapshot,
      id: randomBytes(32),
    };
    const sealed = seal(c.key, associatedData(c.repositoryId, c.kind, c.id, 1), 1, randomBytes(40));
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      expectIntegrityError(() => openAsReader(c, flip(sealed, bit)));
    }
  });

  it("open refuses a clear generation that differs from the one the associated data binds", () => {
    fc.assert(
      fc.property(sealedCase, fc.integer({ min: 0, max: 31 }), (c, bit) => {
        const aad = associatedData(c.repositoryId, c.kind, c.id, c.generation);
        const sealed = seal(c.key, aad, c.generation, c.plaintext);
        // The caller's associated data is right; only the prefix in the object changed.
        expectIntegrityError(() => open(c.key, aad, flip(sealed, bit), "x"), /generation/);
      }),
      { numRuns: 100 },
    );
  });

  it("a truncated or extended object fails with IntegrityError", () => {
    fc.assert(
      fc.property(sealedCase, fc.nat(), fc.boolean(), (c, n, extend) => {
        const aad = associatedData(c.repositoryId, c.kind, c.id, c.generation);
        const sealed = seal(c.key, aad, c.generation, c.plaintext);
        const changed = extend
          ? Buffer.concat([sealed, Buffer.from([n & 0xff])])
          : sealed.subarray(0, n % sealed.length);
        expectIntegrityError(() => open(c.key, aad, changed, "x"));
      }),
      { numRuns: 200 },
    );
  });

  it("another kind, id, repository id, generation or key in the associated data fails", () => {
    const field = fc.constantFrom("kind", "id", "repositoryId", "generation", "key");
    fc.assert(
      fc.property(sealedCase, field, key32, kindArb, generationArb, (c, which, other, k2, g2) => {
        const aad = associatedData(c.repositoryId, c.kind, c.id, c.generation);
        const sealed = seal(c.key, aad, c.generation, c.plaintext);
        const w = { ...c };
        if (which === "kind") {
          fc.pre(k2 !== c.kind);
          w.kind = k2;
        } else if (which === "generation") {
          fc.pre(g2 !== c.generation);
          w.generation = g2;
        } else {
          fc.pre(!other.equals(c[which]));
          w[which] = other;
        }
        const wrongAad = associatedData(w.repositoryId, w.kind, w.id, w.generation);
        expectIntegrityError(
          () => open(w.key, wrongAad, sealed, "x"),
          /failed authentication|wrong key generation/,
        );
      }),
      { numRuns: 300 },
    );
  });

  it("associated data is 76 bytes and distinct for every field", () => {
    const r = randomBytes(32);
    const id = randomBytes(32);
    const base = associatedData(r, ObjectKind.data, id, 1);
    expect(base.length).toBe(6 + 1 + 32 + 1 + 32 + 4);
    const variants = [
      associatedData(randomBytes(32), ObjectKind.data, id, 1),
      associatedData(r, ObjectKind.tree, id, 1),
      associatedData(r, ObjectKind.data, randomBytes(32), 1),
      associatedData(r, ObjectKind.data, id, 2),
    ];
    for (const v of variants) expect(v.equals(base)).toBe(false);
  });
});

describe("sealBlob / openBlob", () => {
  const keysArb = fc
    .record({ secret: key32, repositoryId: key32, generation: fc.integer({ min: 1, max: 5 }) })
    .map((r) => ({ ...r, keys: deriveKeys(r.secret, r.repositoryId, r.generation) }));
  const blobKindArb = fc.constantFrom<BlobKind>(ObjectKind.data, ObjectKind.tree);
  const repetitive = fc
    .record({
      unit: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      times: fc.integer({ min: 64, max: 20_000 }),
    })
    .map(({ unit, times }) =>
      Buffer.concat(Array.from({ length: times }, () => Buffer.from(unit))),
    );
  const random = fc.integer({ min: 0, max: 70_000 }).map((n) => randomBytes(n));
  const dataArb = fc.oneof(
    repetitive.map((d) => ({ d, compressible: true })),
    random.map((d) => ({ d, compressible: false })),
  );

  function sealed(
    k: { keys: RepositoryKeys; repositoryId: Buffer },
    kind: BlobKind,
    plaintext: Buffer,
  ) {
    const id = blobId(k.keys.id, plaintext);
    return { id, blob: sealBlob(k.repositoryId, k.keys, kind, id, plaintext) };
  }

  it("round-trips random and repetitive data; repetitive data is stored compressed", () => {
    fc.assert(
      fc.property(keysArb, blobKindArb, dataArb, (k, kind, { d, compressible }) => {
        const { id, blob } = sealed(k, kind, d);
        expect(blob.rawLength).toBe(d.length);
        expect(blob.kind).toBe(kind);
        expect(sealedGeneration(blob.sealed)).toBe(k.generation);
        if (compressible) expect(blob.sealed.length).toBeLessThan(d.length / 2 + sealOverhead);
        // Random data never grows by more than the flag byte.
        else expect(blob.sealed.length).toBe(d.length + 1 + sealOverhead);
        const back = openBlob(k.repositoryId, k.keys, kind, id, blob.sealed, d.length);
        expect(back.equals(d)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it("decides on a large chunk's first 64 KiB: an incompressible head is stored raw, a compressible one compressed, and both round-trip", () => {
    const part = (compressible: boolean, n: number) =>
      compressible ? Buffer.alloc(n, n % 251) : randomBytes(n);
    fc.assert(
      fc.property(
        keysArb,
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 128 * 1024 + 1, max: 3 * 1024 * 1024 }),
        (k, headCompresses, tailCompresses, length) => {
          const head = 64 * 1024 + 17; // the probe ends inside the head
          const d = Buffer.concat([
            part(headCompresses, head),
            part(tailCompresses, length - head),
          ]);
          const { id, blob } = sealed(k, ObjectKind.data, d);
          if (!headCompresses) expect(blob.sealed.length).toBe(d.length + 1 + sealOverhead);
          else if (tailCompresses) expect(blob.sealed.length).toBeLessThan(4096 + sealOverhead);
          else expect(blob.sealed.length).toBeLessThanOrEqual(d.length + 1 + sealOverhead);
          const back = openBlob(k.repositoryId, k.keys, ObjectKind.data, id, blob.sealed, d.length);
          expect(back.equals(d)).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("refuses a wrong raw length, a wrong id, a wrong kind and another repository", () => {
    fc.assert(
      fc.property(
        keysArb,
        blobKindArb,
        dataArb,
        fc.integer({ min: 1, max: 1000 }),
        key32,
        (k, kind, { d }, delta, other) => {
          const { id, blob } = sealed(k, kind, d);
          const open2 = (
            repoId: Buffer,
            kd: BlobKind,
            i: Buffer,
            raw: number,
            s: Buffer = blob.sealed,
          ) => openBlob(repoId, k.keys, kd, i, s, raw);
          expectIntegrityError(
            () => open2(k.repositoryId, kind, id, d.length + delta),
            /index says/,
          );
          if (d.length >= delta) {
            expectIntegrityError(
              () => open2(k.repositoryId, kind, id, d.length - delta),
              /index says/,
            );
          }
          fc.pre(!other.equals(id) && !other.equals(k.repositoryId));
          expectIntegrityError(() => open2(k.repositoryId, kind, other, d.length));
          expectIntegrityError(() => open2(other, kind, id, d.length));
          const otherKind = kind === ObjectKind.data ? ObjectKind.tree : ObjectKind.data;
          expectIntegrityError(() => open2(k.repositoryId, otherKind, id, d.length));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("any single bit flip of a sealed blob fails with IntegrityError", () => {
    fc.assert(
      fc.property(keysArb, blobKindArb, dataArb, fc.nat(), (k, kind, { d }, n) => {
        const { id, blob } = sealed(k, kind, d);
        const damaged = flip(blob.sealed, n % (blob.sealed.length * 8));
        // As a reader does: the generation in the clear picks the keys. Generation 0 is
        // never issued (Repository.keysForSealed refuses it); any other one opens nothing.
        const g = sealedGeneration(damaged);
        if (g === 0) return;
        const keys = deriveKeys(k.secret, k.repositoryId, g);
        expectIntegrityError(() => openBlob(k.repositoryId, keys, kind, id, damaged, d.length));
      }),
      { numRuns: 300 },
    );
  });

  it("re-checks the id after decryption: a blob sealed under an id its plaintext does not have fails", () => {
    const keys = deriveKeys(randomBytes(32), randomBytes(32), 1);
    const repositoryId = randomBytes(32);
    const plaintext = randomBytes(1000);
    const forgedId = blobId(keys.id, Buffer.from("something else"));
    const blob = sealBlob(repositoryId, keys, ObjectKind.data, forgedId, plaintext);
    expectIntegrityError(
      () => openBlob(repositoryId, keys, ObjectKind.data, forgedId, blob.sealed, 1000),
      /does not match its id/,
    );
  });

  it("refuses an unknown compression flag and a payload that does not decompress", () => {
    const keys = deriveKeys(randomBytes(32), randomBytes(32), 1);
    const repositoryId = randomBytes(32);
    const plaintext = Buffer.from("payload");
    const id = blobId(keys.id, plaintext);
    const sealWith = (body: Buffer) =>
      seal(blobKey(keys.data, id), associatedData(repositoryId, ObjectKind.data, id, 1), 1, body);
    const bad = sealWith(Buffer.concat([Buffer.from([7]), plaintext]));
    expectIntegrityError(
      () => openBlob(repositoryId, keys, ObjectKind.data, id, bad, plaintext.length),
      /compression flag/,
    );
    const notZstd = sealWith(Buffer.concat([Buffer.from([1]), plaintext]));
    expectIntegrityError(
      () => openBlob(repositoryId, keys, ObjectKind.data, id, notZstd, plaintext.length),
      /decompress/,
    );
  });
});

describe("key derivation", () => {
  it("gives a distinct 32-byte key per label, per secret and per repository, deterministically", () => {
    fc.assert(
      fc.property(key32, key32, key32, (secret, repositoryId, other) => {
        fc.pre(!other.equals(secret) && !other.equals(repositoryId));
        const k = deriveKeys(secret, repositoryId, 1);
        const labels = [k.chunker, k.id, k.data, k.metadata, k.config];
        for (const l of labels) expect(l.length).toBe(32);
        expect(new Set(labels.map((l) => l.toString("hex"))).size).toBe(labels.length);
        expect(labels).not.toContainEqual(secret);
        const again = deriveKeys(Buffer.from(secret), Buffer.from(repositoryId), 1);
        expect([again.chunker, again.id, again.data, again.metadata, again.config]).toEqual(labels);
        const otherSecret = deriveKeys(other, repositoryId, 1);
        const otherRepo = deriveKeys(secret, other, 1);
        for (const [i, l] of labels.entries()) {
          const a = [otherSecret, otherRepo].map(
            (o) => [o.chunker, o.id, o.data, o.metadata, o.config][i] as Buffer,
          );
          for (const x of a) expect(x.equals(l)).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("refuses a secret that is not 32 bytes", () => {
    expect(() => deriveKeys(randomBytes(31), randomBytes(32), 1)).toThrow();
  });

  it("per-blob keys differ per blob id and per data key", () => {
    fc.assert(
      fc.property(key32, key32, key32, (dataKey, id1, id2) => {
        fc.pre(!id1.equals(id2));
        expect(blobKey(dataKey, id1).equals(blobKey(dataKey, id2))).toBe(false);
        expect(blobKey(dataKey, id1).equals(blobKey(id2, id1))).toBe(id2.equals(dataKey));
      }),
    );
  });
});

describe("key records and envelopes", () => {
  it("a key record round-trips; a wrong magic or length is a KeyError", () => {
    fc.assert(
      fc.property(key32, key32, fc.integer({ min: 1, max: 0xffffffff }), (rid, secret, g) => {
        const enc = encodeKeyRecord({ repositoryId: rid, generation: g, secret });
        expect(decodeKeyRecord(enc)).toMatchObject({
          repositoryId: rid,
          generation: g,
          secret,
          older: [],
        });
        const bad = Buffer.from(enc);
        bad[0] = (bad[0] as number) ^ 1;
        expect(() => decodeKeyRecord(bad)).toThrow(KeyError);
        expect(() => decodeKeyRecord(enc.subarray(0, enc.length - 1))).toThrow(KeyError);
      }),
    );
  });

  it("an envelope opens with its passphrase only", async () => {
    const record = { repositoryId: randomBytes(32), generation: 3, secret: randomBytes(32) };
    const binding = { repositoryId: record.repositoryId, envelopeId: "ab".repeat(32) };
    const envelope = await wrapKeyRecord(
      record,
      new PassphraseProvider("right", 10),
      "ab".repeat(32),
    );
    expect(
      await unwrapKeyRecord(envelope, [new PassphraseProvider("right", 10)], binding),
    ).toMatchObject(record);
    expect(
      await unwrapKeyRecord(envelope, [new PassphraseProvider("wrong", 10)], binding),
    ).toBeNull();
    // A damaged envelope that a passphrase stanza matches is a KeyError, never a silent null.
    const damaged = Buffer.from(envelope);
    damaged[damaged.length - 5] = (damaged[damaged.length - 5] as number) ^ 0x10;
    await expect(
      unwrapKeyRecord(damaged, [new PassphraseProvider("right", 10)], binding),
    ).rejects.toThrow(KeyError);
  });
});
