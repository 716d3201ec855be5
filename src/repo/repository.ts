import { randomBytes } from "node:crypto";
import type { Backend, FileType } from "../backend/backend.js";
import { FastCDC } from "../chunker/fastcdc.js";
import { gearTable } from "../chunker/gear.js";
import type { KeyRecord } from "../crypto/envelope.js";
import { newSecret, unwrapKeyRecord, wipeKeyRecord, wrapKeyRecord } from "../crypto/envelope.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import { deriveKeys, wipe } from "../crypto/keys.js";
import type { ObjectKind } from "../crypto/seal.js";
import { associatedData, open, seal, sealedGeneration } from "../crypto/seal.js";
import { IntegrityError, KeyError, RepoNotFoundError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "../kms/provider.js";
import type { RepoConfig } from "./config.js";
import { authenticateConfig, encodeConfig, newConfig, parseConfig } from "./config.js";

/**
 * An opened repository: its authenticated config and unwrapped keys, and the sealing of
 * metadata objects (index deltas, snapshots, locks). Blob storage is in BlobStore.
 */
export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfig;
  readonly id: Buffer;
  readonly #keys: Map<number, RepositoryKeys>;
  readonly current: RepositoryKeys;

  private constructor(backend: Backend, config: RepoConfig, keys: RepositoryKeys[]) {
    this.backend = backend;
    this.config = config;
    this.id = Buffer.from(config.id, "hex");
    this.#keys = new Map(keys.map((k) => [k.generation, k]));
    const newest = keys.reduce((a, b) => (b.generation > a.generation ? b : a));
    this.current = newest;
  }

  /** Creates a repository: config plus one key envelope per wrapper, all sharing one secret. */
  static async init(backend: Backend, wrappers: readonly KeyWrapper[]): Promise<Repository> {
    if (wrappers.length === 0) throw new KeyError("init needs a passphrase, identity or recipient");
    const config = newConfig();
    const record: KeyRecord = {
      repositoryId: Buffer.from(config.id, "hex"),
      generation: 1,
      secret: newSecret(),
      created: new Date(),
    };
    const keys = deriveKeys(record.secret, record.repositoryId, record.generation);
    // Wrap before anything is written: a key service that refuses leaves no directory.
    const envelopes: Array<[string, Buffer]> = [];
    try {
      for (const w of wrappers) {
        const name = randomId();
        envelopes.push([name, await wrapKeyRecord(record, w, name)]);
      }
    } finally {
      wipe(record.secret);
    }
    await backend.create();
    // Envelopes first: a config without a usable key would be a repository nobody opens.
    for (const [name, envelope] of envelopes) await backend.save({ type: "key", name }, envelope);
    await backend.save({ type: "config", name: "" }, encodeConfig(config, keys.config));
    return new Repository(backend, config, [keys]);
  }

  static async open(backend: Backend, unwrappers: readonly KeyUnwrapper[]): Promise<Repository> {
    if (!(await backend.exists())) {
      throw new RepoNotFoundError(
        `no coffer repository at ${backend.location}: check --repo or COFFER_REPO, or run coffer init`,
      );
    }
    const raw = parseConfig(await backend.load({ type: "config", name: "" }), backend.location);
    const repositoryId = Buffer.from(raw.id, "hex");
    if (unwrappers.length === 0) {
      throw new KeyError(
        "no key given: set COFFER_PASSPHRASE, --passphrase-file or --identity to open the repository",
      );
    }
    let envelopes = 0;
    let foreign: string | null = null;
    let stale: number | null = null;
    for await (const info of backend.list("key")) {
      envelopes++;
      const envelope = await backend.load({ type: "key", name: info.name });
      const record = await unwrapKeyRecord(envelope, unwrappers, {
        repositoryId,
        envelopeId: info.name,
      });
      if (record === null) continue;
      try {
        if (!record.repositoryId.equals(repositoryId)) {
          foreign = info.name;
          continue;
        }
        // Only an envelope of the config's generation holds every secret (FORMAT §Key
        // generations); an older one is left over from before key rotate --new-generation.
        if (record.generation !== raw.macGeneration) {
          stale = record.generation;
          continue;
        }
        const keys = [
          ...(record.older ?? []).map((g) => deriveKeys(g.secret, repositoryId, g.generation)),
          deriveKeys(record.secret, repositoryId, record.generation),
        ];
        const current = keys.at(-1) as RepositoryKeys;
        const config = authenticateConfig(raw, current.config);
        return new Repository(backend, config, keys);
      } finally {
        wipeKeyRecord(record);
      }
    }
    if (stale !== null) {
      throw new KeyError(
        `this key opens only key generation ${stale}; the repository is at generation ${raw.macGeneration}: ask for a key added after the rotation (coffer key add)`,
      );
    }
    if (foreign !== null) {
      throw new KeyError(
        `key envelope keys/${foreign} belongs to another repository: it was not made for this one`,
      );
    }
    if (envelopes === 0) throw new KeyError(`${backend.location} has no key envelopes in keys/`);
    throw new KeyError(
      `wrong passphrase or key: none of the ${envelopes} key envelope(s) in keys/ opens with it`,
    );
  }

  keys(generation: number): RepositoryKeys {
    const k = this.#keys.get(generation);
    if (k === undefined) {
      throw new KeyError(
        `no key for key generation ${generation}: unwrap it with a key of that generation`,
      );
    }
    return k;
  }

  /**
   * Keys for a sealed object's claimed generation. A generation no key envelope ever had
   * can only come from damage or forgery; an older one we lack is a key problem.
   */
  keysForSealed(sealed: Buffer, what: string): RepositoryKeys {
    const generation = sealedGeneration(sealed);
    if (generation === 0 || generation > this.current.generation) {
      throw new IntegrityError(
        `${what} claims key generation ${generation}: it is damaged or forged`,
      );
    }
    return this.keys(generation);
  }

  chunker(): FastCDC {
    return new FastCDC(gearTable(this.current.chunker), this.config.chunker);
  }

  /** Seals a metadata object (index delta, snapshot, lock) under the metadata key. */
  sealMetadata(kind: ObjectKind, id: Buffer, plaintext: Buffer): Buffer {
    const k = this.current;
    return seal(
      k.metadata,
      associatedData(this.id, kind, id, k.generation),
      k.generation,
      plaintext,
    );
  }

  openMetadata(kind: ObjectKind, id: Buffer, sealed: Buffer, what: string): Buffer {
    const k = this.keysForSealed(sealed, what);
    return open(k.metadata, associatedData(this.id, kind, id, k.generation), sealed, what);
  }

  /** Lists ids of one object type, checking names so that a stray file cannot confuse us. */
  async listIds(type: FileType): Promise<string[]> {
    const ids: string[] = [];
    for await (const o of this.backend.list(type)) ids.push(o.name);
    return ids;
  }

  async loadMetadata(type: FileType, kind: ObjectKind, name: string): Promise<Buffer> {
    let sealed: Buffer;
    try {
      sealed = await this.backend.load({ type, name });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new IntegrityError(`${type} ${name} is missing`);
      }
      throw err;
    }
    return this.openMetadata(kind, Buffer.from(name, "hex"), sealed, `${type} ${name}`);
  }
}

export function randomId(): string {
  return randomBytes(32).toString("hex");
}
