import type { Backend, Handle, ObjectWriter } from "./backend.js";

/**
 * Backend.openWriter for a backend that only takes whole objects (save): the pieces are
 * gathered in memory and saved as one object at commit. Local disk and S3 have writers of
 * their own; this keeps one way of writing packs for any other Backend.
 */
export function openWriterOf(backend: Backend, h: Handle): Promise<ObjectWriter> {
  if (backend.openWriter !== undefined) return backend.openWriter(h);
  return Promise.resolve(new BufferedWriter(backend, h));
}

class BufferedWriter implements ObjectWriter {
  readonly #backend: Backend;
  readonly #handle: Handle;
  #buf = Buffer.alloc(0);
  #size = 0;

  constructor(backend: Backend, h: Handle) {
    this.#backend = backend;
    this.#handle = h;
  }

  async write(data: Buffer, offset: number): Promise<void> {
    const end = offset + data.length;
    if (end > this.#buf.length) {
      const bigger = Buffer.alloc(Math.max(end, 2 * this.#buf.length));
      this.#buf.copy(bigger, 0, 0, this.#size);
      this.#buf = bigger;
    }
    data.copy(this.#buf, offset);
    this.#size = Math.max(this.#size, end);
  }

  async commit(): Promise<void> {
    await this.#backend.save(this.#handle, this.#buf.subarray(0, this.#size));
    this.#buf = Buffer.alloc(0);
  }

  async abort(): Promise<void> {
    this.#buf = Buffer.alloc(0);
  }
}
