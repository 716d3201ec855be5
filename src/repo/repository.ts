import { randomBytes } from "node:crypto";
import type { Backend, FileType } from "../backend/backend.js";
import { FastCDC } from "../chunker/fastcdc.js";
import { gearTable } from "../chunker/gear.js";
import type { KeyRecord } from "../crypto/envelope.js";
import {
  decodeKeyRecord,
  newSecret,
  unwrapEnvelope,
  wipeKeyRecord,
  wrapKeyRecord,
} from "../crypto/envelope.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import { deriveKeys, wipe } from "../crypto/keys.js";
import { associatedData, ObjectKind, open, seal, sealedGeneration } from "../crypto/seal.js";
import type { WriterRecord } from "../crypto/writer-keys.js";
import {
  decodeWriterRecord,
  isSessionGeneration,
  isSessionRecord,
  isWriterRecord,
  readerIdentity,
  writerBaseKeys,
} from "../crypto/writer-keys.js";
import { IntegrityError, KeyError, RepoNotFoundError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "../kms/provider.js";
import type { RepoConfig } from "./config.js";
import { authenticateConfig, encodeConfig, newConfig, parseConfig } from "./config.js";
import { beginWriterSession, loadWriterSessions } from "./writer-session.js";

/**
 * An opened repository: its authenticated config and unwrapped keys, and the sealing of
 * metadata objects (index deltas, snapshots, locks). Blob storage is in BlobStore.
 */
export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfig;
  readonly id: Buffer;
  readonly #keys: Map<number, RepositoryKeys>;
  #current: RepositoryKeys;
  /** Set when opened with a writer-only key (docs/KEYS.md §Writer-only backup hosts). */
  readonly writer: WriterRecord | null;

  private constructor(
    backend: Backend,
    config: RepoConfig,
    keys: RepositoryKeys[],
    current: RepositoryKeys,
    writer: WriterRecord | null = null,
  ) {
    this.backend = backend;
    this.config = config;
    this.id = Buffer.from(config.id, "hex");
    this.#keys = new Map(keys.map((k) => [k.generation, k]));
    this.#current = current;
    this.writer = writer;
  }

  /** The keys new objects are sealed under. */
  get current(): RepositoryKeys {
    return this.#current;
  }

  /**
   * A writer-only opener seals new blobs under a session of its own, stored (wrapped for
   * readers) before anything refers to it. Call before writing; a no-op for full keys.
   */
  async beginWrite(): Promise<void> {
    if (this.writer === null || isSessionGeneration(this.#current.generation)) return;
    const session = await beginWriterSession(this.backend, this.writer, this.#current);
    this.#keys.set(session.generation, session);
    this.#current = session;
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
    return new Repository(backend, config, [keys], keys);
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
    let refused: KeyError | null = null;
    let writer: WriterRecord | null = null;
    for await (const info of backend.list("key")) {
      envelopes++;
      const envelope = await backend.load({ type: "key", name: info.name });
      let plain: Buffer | null;
      try {
        plain = await unwrapEnvelope(envelope, unwrappers, { repositoryId, envelopeId: info.name });
      } catch (err) {
        // A key service that refuses this envelope (access denied: it is another role's)
        // may still open the next one; report the refusal only if none opens.
        if (!(err instanceof KeyError)) throw err;
        refused ??= err;
        continue;
      }
      if (plain === null || isSessionRecord(plain)) continue;
      if (isWriterRecord(plain)) {
        const w = decodeWriterRecord(plain);
        plain.fill(0);
        if (!w.repositoryId.equals(repositoryId)) {
          foreign = info.name;
          continue;
        }
        if (w.generation !== raw.macGeneration) {
          stale = w.generation;
          continue;
        }
        // A full envelope that the same keys open is preferred: keep looking.
        writer ??= w;
        continue;
      }
      const record = decodeKeyRecord(plain);
      plain.fill(0);
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
        const all = [
          ...(record.older ?? []),
          { generation: record.generation, secret: record.secret },
        ];
        const keys = all.map((g) => deriveKeys(g.secret, repositoryId, g.generation));
        const identities = all.map((g) => readerIdentity(g.secret, repositoryId));
        const current = keys.at(-1) as RepositoryKeys;
        const config = authenticateConfig(raw, current.config);
        const byGeneration = new Map(keys.map((k) => [k.generation, k]));
        const sessions = await loadWriterSessions(backend, repositoryId, identities, byGeneration);
        return new Repository(backend, config, [...keys, ...sessions], current);
      } finally {
        wipeKeyRecord(record);
      }
    }
    if (writer !== null) {
      const base = writerBaseKeys(writer);
      const config = authenticateConfig(raw, writer.config);
      return new Repository(backend, config, [base], base, writer);
    }
    if (refused !== null) throw refused;
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
    if (isSessionGeneration(generation) && !this.#keys.has(generation)) {
      throw new KeyError(
        this.writer !== null
          ? `this writer-only key cannot read ${what} (written in another backup session): use a full key`
          : `${what} names writer session ${generation}, whose key file is missing from keys/`,
      );
    }
    if (
      generation === 0 ||
      (generation > this.baseGeneration() && !isSessionGeneration(generation))
    ) {
      throw new IntegrityError(
        `${what} claims key generation ${generation}: it is damaged or forged`,
      );
    }
    return this.keys(generation);
  }

  /** The newest key generation (not a writer session). */
  baseGeneration(): number {
    return this.writer?.generation ?? this.config.macGeneration;
  }

  chunker(): FastCDC {
    return new FastCDC(gearTable(this.current.chunker), this.config.chunker);
  }

  /**
   * Seals a metadata object (index delta, snapshot, lock) under the metadata key. Index
   * deltas and locks always use the base generation, even in a writer session: every
   * writer must read them (dedup, lock checks). Snapshots use the current keys.
   */
  sealMetadata(kind: ObjectKind, id: Buffer, plaintext: Buffer): Buffer {
    const shared = kind === ObjectKind.index || kind === ObjectKind.lock;
    const k = shared ? this.keys(this.baseGeneration()) : this.current;
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
