import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import * as fs from "node:fs/promises";
import { PassThrough, Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { Encrypter } from "age-encryption";
import { CompressStream } from "zstd-napi";
import { UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { type TarCounters, writeTar } from "./tar-writer.js";

export type ExportFormat = "tar" | "tar.zst" | "tar.age" | "tar.zst.age";
export const exportFormats: readonly ExportFormat[] = ["tar", "tar.zst", "tar.age", "tar.zst.age"];

/**
 * Writes a snapshot as a self-contained archive that standard tools open without coffer:
 * tar, optionally zstd-compressed (one zstd frame stream, `zstd -d`), optionally encrypted
 * to age recipients (`age -d -i key.txt`). The file appears only when complete: written
 * to a fresh 0600 temp name beside it, fsynced, then renamed.
 */
export async function exportArchive(
  store: BlobStore,
  root: TreeNode,
  prefix: string[],
  opts: { format: ExportFormat; recipients: string[]; output: string },
  onWarning?: (path: string, message: string) => void,
): Promise<TarCounters> {
  const encrypt = opts.format.endsWith(".age");
  if (encrypt && opts.recipients.length === 0) {
    throw new UserError(`--format ${opts.format} needs at least one --recipient age1...`);
  }
  if (!encrypt && opts.recipients.length > 0) {
    throw new UserError("--recipient goes with an encrypted format (tar.age, tar.zst.age)");
  }
  const encrypter = new Encrypter();
  for (const r of opts.recipients) {
    try {
      encrypter.addRecipient(r);
    } catch {
      throw new UserError(`--recipient ${r} is not an age recipient (age1...)`);
    }
  }
  const tmp = `${opts.output}.coffer-tmp-${randomBytes(6).toString("hex")}`;
  const file = createWriteStream(tmp, { flags: "wx", mode: 0o600 });
  try {
    const head: Transform = opts.format.includes(".zst")
      ? new CompressStream({ compressionLevel: 3 })
      : new PassThrough();
    let body: Readable = head;
    if (encrypt) {
      const web = Readable.toWeb(head) as unknown as ReadableStream<Uint8Array>;
      const sealed = await encrypter.encrypt(web);
      body = Readable.fromWeb(sealed as unknown as WebReadableStream<Uint8Array>);
    }
    const [counters] = await Promise.all([
      writeTar(store, root, prefix, head, onWarning),
      pipeline(body, file),
    ]);
    const fh = await fs.open(tmp, "r+");
    await fh.sync().finally(() => fh.close());
    await fs.rename(tmp, opts.output);
    return counters;
  } catch (err) {
    file.destroy();
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
