// The storage contract every backend implements (local disk, S3) and every wrapper keeps
// (retry, cache). Objects are written once under fresh names and never modified.

export type FileType = "config" | "key" | "data" | "index" | "snapshot" | "lock";

export interface Handle {
  type: FileType;
  /** The object's name: a 64-hex-digit id, or "" for the config file. */
  name: string;
}

export interface ObjectInfo {
  name: string;
  size: number;
}

/** An object being written piece by piece (Backend.openWriter). */
export interface ObjectWriter {
  /**
   * Writes data at offset. Pieces may be written in any order and at once; data must not
   * change until the promise resolves.
   */
  write(data: Buffer, offset: number): Promise<void>;
  /** Makes the object durable and visible under its handle, whole: as save does. */
  commit(): Promise<void>;
  /** Drops the object: nothing of it is visible under the handle. Safe to call twice. */
  abort(): Promise<void>;
}

export interface Backend {
  /** Where the repository lives, for messages ("/srv/backup", "s3://bucket/prefix"). */
  readonly location: string;
  /**
   * Stores data under h atomically: after save resolves the whole object is durable;
   * after a crash either the whole object or nothing is visible under h. The caller may
   * reuse data's memory once save resolves: a backend must not keep a reference to it.
   */
  save(h: Handle, data: Buffer): Promise<void>;
  /**
   * Optional: an object written in pieces, with save's guarantees once committed. Packs
   * go this way where a backend can take them (a local file), so a pack being filled
   * costs a write buffer, not its whole size, in memory.
   */
  openWriter?(h: Handle): Promise<ObjectWriter>;
  /**
   * Reads length bytes from offset (the whole object when length is omitted). Throws
   * IntegrityError when the object is shorter than asked: a short read is never returned.
   */
  load(h: Handle, offset?: number, length?: number): Promise<Buffer>;
  /**
   * Optional: as load, into the caller's memory (into.length bytes from offset), for
   * readers that reuse their buffers (verify --read-data).
   */
  loadInto?(h: Handle, offset: number, into: Buffer): Promise<void>;
  /**
   * Optional: temp files of writes that never finished (a process killed while writing a
   * pack), untouched for `idleMs`: counted, and removed when `remove` is set. Only safe
   * while no other process writes: prune calls it under the exclusive lock.
   */
  sweepTempFiles?(remove: boolean, idleMs: number): Promise<{ files: number; bytes: number }>;
  /** Size of the object, or null when it does not exist. */
  stat(h: Handle): Promise<ObjectInfo | null>;
  /** Yields each object of the type exactly once, in no particular order. */
  list(type: FileType): AsyncIterable<ObjectInfo>;
  /** Removes the object; removing one that does not exist is not an error. */
  remove(h: Handle): Promise<void>;
  /** True when the repository's config object exists. */
  exists(): Promise<boolean>;
  /** Creates whatever the backend needs before the first save; refuses a non-empty location. */
  create(): Promise<void>;
}
