import { randomBytes, randomInt } from "node:crypto";
import type { Backend } from "../backend/backend.js";
import { envelopeStanzas } from "../crypto/envelope.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { WriterRecord } from "../crypto/writer-keys.js";
import {
  firstSessionGeneration,
  sessionFileName,
  sessionKeys,
  unwrapSession,
  wrapSession,
} from "../crypto/writer-keys.js";

// Writer sessions (docs/FORMAT.md §Writer records and sessions): a writer-only host seals
// its blobs under a fresh data key per run and leaves that key, wrapped to the reader
// recipient, in keys/. Full keys find every session at open.

/**
 * Starts a session for a writer: picks an unused session generation, stores its session
 * file, and returns the keys to seal new blobs with.
 */
export async function beginWriterSession(
  backend: Backend,
  writer: WriterRecord,
  base: RepositoryKeys,
): Promise<RepositoryKeys> {
  for (;;) {
    const generation = randomInt(firstSessionGeneration, 2 ** 32 - 1);
    const name = sessionFileName(generation);
    if ((await backend.stat({ type: "key", name })) !== null) continue;
    const data = randomBytes(32);
    const file = await wrapSession(
      writer.repositoryId,
      generation,
      writer.generation,
      data,
      writer.recipient,
    );
    await backend.save({ type: "key", name }, file);
    return sessionKeys(base, generation, data);
  }
}

/**
 * Every writer session of the repository, opened with the reader identities (one per
 * generation the opener holds). Only single-X25519-stanza files are tried.
 */
export async function loadWriterSessions(
  backend: Backend,
  repositoryId: Buffer,
  identities: readonly string[],
  keys: Map<number, RepositoryKeys>,
): Promise<RepositoryKeys[]> {
  const out: RepositoryKeys[] = [];
  for await (const info of backend.list("key")) {
    const file = await backend.load({ type: "key", name: info.name });
    const stanzas = envelopeStanzas(file);
    if (stanzas.length !== 1 || stanzas[0]?.[0] !== "X25519") continue;
    const s = await unwrapSession(file, identities, repositoryId);
    if (s === null || info.name !== sessionFileName(s.generation)) continue;
    const base = keys.get(s.baseGeneration);
    if (base === undefined) continue;
    out.push(sessionKeys(base, s.generation, s.data));
  }
  return out;
}
