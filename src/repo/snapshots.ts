import { ObjectKind } from "../crypto/seal.js";
import { UserError } from "../errors.js";
import type { Repository } from "./repository.js";
import { randomId } from "./repository.js";
import type { Snapshot, SnapshotWithId } from "./snapshot.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";

export async function saveSnapshot(repo: Repository, s: Snapshot): Promise<string> {
  const id = randomId();
  const sealed = repo.sealMetadata(ObjectKind.snapshot, Buffer.from(id, "hex"), encodeSnapshot(s));
  await repo.backend.save({ type: "snapshot", name: id }, sealed);
  return id;
}

export async function loadSnapshot(repo: Repository, id: string): Promise<SnapshotWithId> {
  const plain = await repo.loadMetadata("snapshot", ObjectKind.snapshot, id);
  return { id, ...decodeSnapshot(plain, id) };
}

/** Every snapshot, oldest first. A snapshot that fails to open throws IntegrityError. */
export async function listSnapshots(repo: Repository): Promise<SnapshotWithId[]> {
  const all: SnapshotWithId[] = [];
  for (const id of await repo.listIds("snapshot")) all.push(await loadSnapshot(repo, id));
  return all.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
}

/** Resolves "latest", a full id or a unique id prefix to a snapshot id. */
export async function resolveSnapshot(repo: Repository, ref: string): Promise<SnapshotWithId> {
  if (ref === "latest") {
    const all = await listSnapshots(repo);
    const last = all.at(-1);
    if (last === undefined) throw new UserError("the repository has no snapshots yet");
    return last;
  }
  if (!/^[0-9a-f]{1,64}$/.test(ref)) {
    throw new UserError(
      `"${ref}" is not a snapshot id: give an id, a unique id prefix or "latest"`,
    );
  }
  const matches = (await repo.listIds("snapshot")).filter((id) => id.startsWith(ref));
  const only = matches[0];
  if (only === undefined) throw new UserError(`no snapshot ${ref}: see coffer snapshots`);
  if (matches.length > 1)
    throw new UserError(`snapshot prefix ${ref} is ambiguous: give more digits`);
  return loadSnapshot(repo, only);
}
