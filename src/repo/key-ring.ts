import { Encrypter } from "age-encryption";
import type { Backend } from "../backend/backend.js";
import type { KeyRecord } from "../crypto/envelope.js";
import {
  envelopeStanzas,
  newSecret,
  unwrapKeyRecord,
  wipeKeyRecord,
  wrapKeyRecord,
} from "../crypto/envelope.js";
import { deriveKeys } from "../crypto/keys.js";
import {
  encodeWriterRecord,
  readerIdentity,
  readerRecipient,
  sessionFileName,
  unwrapSession,
} from "../crypto/writer-keys.js";
import { KeyError, UserError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "../kms/provider.js";
import type { RemoteKeyProvider } from "../kms/remote-key.js";
import { providerForStanza } from "../kms/spec.js";
import type { RepoConfig } from "./config.js";
import { authenticateConfig, encodeConfig, parseConfig } from "./config.js";
import { randomId } from "./repository.js";

// Key management on keys/ (coffer key ...): every envelope, opened where the given keys
// can. Changes are ordered so that a crash at any point leaves a repository that opens
// with the keys that opened it before: new envelopes are written before old ones are
// removed, and the config is rewritten only once the new generation's envelopes exist.

export interface EnvelopeEntry {
  name: string;
  /** age stanzas as [type, ...args]: the provider and key reference, readable without a key. */
  stanzas: string[][];
  /** The record, when one of the given keys opened the envelope. */
  record: KeyRecord | null;
  /** A writer session's key file (found with the reader identity): never removable. */
  session?: boolean;
}

/** How users see an envelope's wrapper: provider kind and key reference. */
export function describeStanzas(stanzas: string[][]): {
  provider: string;
  reference: string;
  version?: string;
} {
  const first = stanzas[0] ?? [];
  const [type, ref, version] = first;
  switch (type) {
    case "scrypt":
      return { provider: "passphrase", reference: `scrypt 2^${first[2]}` };
    case "X25519":
      return { provider: "age", reference: `${stanzas.length} X25519 recipient(s)` };
    case "mlkem768x25519":
      return { provider: "age-pq", reference: `${stanzas.length} ML-KEM-768+X25519 recipient(s)` };
    case "coffer-aws-kms":
      return { provider: "aws-kms", reference: ref ?? "?" };
    case "coffer-vault":
      return { provider: "vault", reference: ref ?? "?", version };
    case "coffer-gcp-kms":
      return { provider: "gcp-kms", reference: ref ?? "?", version };
    case "coffer-pkcs11":
      return { provider: "pkcs11", reference: ref ?? "?" };
  }
  return { provider: type ?? "?", reference: "" };
}

export class KeyRing {
  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    readonly repositoryId: Buffer,
    readonly entries: EnvelopeEntry[],
    /** A record of the config's generation: it holds every secret. */
    readonly current: KeyRecord,
  ) {}

  /** Reads every envelope and opens those the keys can; needs one of the current generation. */
  static async open(backend: Backend, unwrappers: readonly KeyUnwrapper[]): Promise<KeyRing> {
    const raw = parseConfig(await backend.load({ type: "config", name: "" }), backend.location);
    const repositoryId = Buffer.from(raw.id, "hex");
    const entries: EnvelopeEntry[] = [];
    let current: KeyRecord | null = null;
    let config: RepoConfig | null = null;
    let refused: KeyError | null = null;
    for await (const info of backend.list("key")) {
      const envelope = await backend.load({ type: "key", name: info.name });
      let record: KeyRecord | null = null;
      try {
        record = await unwrapKeyRecord(envelope, unwrappers, {
          repositoryId,
          envelopeId: info.name,
        });
      } catch (err) {
        // Another role's envelope (access denied at the service): listed, not opened.
        if (!(err instanceof KeyError)) throw err;
        refused ??= err;
      }
      if (record !== null && !record.repositoryId.equals(repositoryId)) {
        wipeKeyRecord(record);
        record = null;
      }
      if (record !== null && record.generation === raw.macGeneration && config === null) {
        config = authenticateConfig(
          raw,
          deriveKeys(record.secret, repositoryId, record.generation).config,
        );
        current = record;
      }
      entries.push({ name: info.name, stanzas: envelopeStanzas(envelope), record });
    }
    if (current === null || config === null) {
      for (const e of entries) if (e.record) wipeKeyRecord(e.record);
      if (refused !== null) throw refused;
      throw new KeyError(
        `none of the ${entries.length} key envelope(s) in keys/ opens with the given keys at the current key generation ${raw.macGeneration}`,
      );
    }
    const all = [
      ...(current.older ?? []),
      { generation: current.generation, secret: current.secret },
    ];
    const identities = all.map((g) => readerIdentity(g.secret, repositoryId));
    for (const e of entries) {
      if (e.record !== null || e.stanzas.length !== 1 || e.stanzas[0]?.[0] !== "X25519") continue;
      const file = await backend.load({ type: "key", name: e.name });
      const s = await unwrapSession(file, identities, repositoryId);
      if (s !== null && e.name === sessionFileName(s.generation)) {
        e.session = true;
        s.data.fill(0);
      }
    }
    return new KeyRing(backend, config, repositoryId, entries, current);
  }

  wipe(): void {
    for (const e of this.entries) if (e.record) wipeKeyRecord(e.record);
  }

  /** Finds an envelope by its name or a unique prefix of it (as `key list` shows). */
  find(prefix: string): EnvelopeEntry {
    const hits = this.entries.filter((e) => e.name.startsWith(prefix.toLowerCase()));
    if (prefix.length < 4 || hits.length === 0) {
      throw new UserError(`no key envelope ${prefix}: see coffer key list`);
    }
    if (hits.length > 1) throw new UserError(`key id ${prefix} is ambiguous: give more digits`);
    return hits[0] as EnvelopeEntry;
  }

  /** Writes a new envelope holding the current record for wrapper; returns its name. */
  async add(wrapper: KeyWrapper): Promise<string> {
    const name = randomId();
    const record: KeyRecord = { ...this.current, created: new Date() };
    await this.backend.save({ type: "key", name }, await wrapKeyRecord(record, wrapper, name));
    return name;
  }

  /**
   * Writes a writer-only envelope for wrapper: the current generation's chunker, id,
   * metadata and config keys and the reader recipient, without the repository secret.
   */
  async addWriter(wrapper: KeyWrapper): Promise<string> {
    const name = randomId();
    const k = deriveKeys(this.current.secret, this.repositoryId, this.current.generation);
    const plain = encodeWriterRecord({
      repositoryId: this.repositoryId,
      generation: this.current.generation,
      chunker: k.chunker,
      id: k.id,
      metadata: k.metadata,
      config: k.config,
      recipient: await readerRecipient(this.current.secret, this.repositoryId),
    });
    try {
      const e = new Encrypter();
      await wrapper.configureEncrypter(e, { repositoryId: this.repositoryId, envelopeId: name });
      await this.backend.save({ type: "key", name }, Buffer.from(await e.encrypt(plain)));
    } finally {
      plain.fill(0);
      k.chunker.fill(0);
      k.id.fill(0);
      k.data.fill(0);
      k.metadata.fill(0);
      k.config.fill(0);
    }
    return name;
  }

  /** Removes an envelope, unless it is the last one the given keys open at the current generation. */
  async remove(prefix: string): Promise<string> {
    const target = this.find(prefix);
    if (target.session) {
      throw new UserError(
        `refusing to remove keys/${target.name.slice(0, 12)}: it holds the data key of a writer-only backup session; without it that session's backups cannot be read`,
      );
    }
    const others = this.entries.filter(
      (e) => e !== target && e.record?.generation === this.current.generation,
    );
    if (others.length === 0) {
      throw new UserError(
        `refusing to remove keys/${target.name.slice(0, 12)}: no other envelope opened with the given keys holds the current key generation; give a key that opens another envelope (--kms, --identity, passphrase) or add one first`,
      );
    }
    await this.backend.remove({ type: "key", name: target.name });
    return target.name;
  }

  /**
   * Re-wraps every key-service envelope the given keys opened at the current generation
   * with its provider's newest key version: the new envelope is written first, the old
   * one removed after. Returns [old, new] names.
   */
  async rotate(given: readonly RemoteKeyProvider[]): Promise<Array<[string, string]>> {
    const done: Array<[string, string]> = [];
    for (const e of this.entries) {
      if (e.record?.generation !== this.current.generation) continue;
      const stanza = e.stanzas[0];
      const provider = stanza && e.stanzas.length === 1 ? providerForStanza(stanza, given) : null;
      if (provider === null) continue;
      if (
        given.length > 0 &&
        !given.some((g) => g.service.stanzaType === stanza?.[0] && g.reference === stanza?.[1])
      ) {
        continue;
      }
      const name = await this.add(provider);
      await this.backend.remove({ type: "key", name: e.name });
      done.push([e.name, name]);
    }
    return done;
  }

  /**
   * Starts key generation N+1: a new secret for all new data, with every older secret
   * carried in the new records so old data stays readable. Each envelope the given keys
   * opened is replaced by one for the same wrapper (wrappers maps envelope name to it);
   * then the config is re-authenticated under the new generation; then the replaced
   * envelopes are removed. Returns the new generation and the envelopes left behind.
   */
  async newGeneration(
    wrappers: Map<string, KeyWrapper>,
  ): Promise<{ generation: number; replaced: number; left: string[] }> {
    if (wrappers.size === 0)
      throw new KeyError("no envelope to carry the new key generation: give the keys that open it");
    const secret = newSecret();
    const generation = this.current.generation + 1;
    const record: KeyRecord = {
      repositoryId: this.repositoryId,
      generation,
      secret,
      older: [
        ...(this.current.older ?? []),
        { generation: this.current.generation, secret: this.current.secret },
      ],
    };
    const config: RepoConfig = { ...this.config, macGeneration: generation };
    try {
      for (const [, wrapper] of wrappers) {
        const name = randomId();
        const r = { ...record, created: new Date() };
        await this.backend.save({ type: "key", name }, await wrapKeyRecord(r, wrapper, name));
      }
      const keys = deriveKeys(secret, this.repositoryId, generation);
      await this.backend.save({ type: "config", name: "" }, encodeConfig(config, keys.config));
    } finally {
      secret.fill(0);
    }
    for (const name of wrappers.keys()) await this.backend.remove({ type: "key", name });
    // Session files keep their base generation on purpose: they are read with the older
    // secrets every new record carries.
    const left = this.entries.filter((e) => !wrappers.has(e.name) && !e.session).map((e) => e.name);
    return { generation, replaced: wrappers.size, left };
  }
}
