import { Decompressor } from "zstd-napi";
import zstd from "zstd-napi/binding.js";
import { blobId, sameId } from "../crypto/blob-id.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { ObjectKind } from "../crypto/seal.js";
import { associatedData, blobKey, open, seal } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";

// A blob's plaintext before sealing is one flag byte and the payload (docs/FORMAT.md §Blobs):
// the flag says whether the payload is zstd-compressed. Compression that does not shrink
// the chunk is skipped.

export type BlobKind = typeof ObjectKind.data | typeof ObjectKind.tree;

const uncompressed = 0;
const zstdCompressed = 1;
export const zstdLevel = 3;
const flagNone = Buffer.from([uncompressed]);
const flagZstd = Buffer.from([zstdCompressed]);

// One compression and one decompression context per thread: creating a zstd context per
// blob costs more than compressing a small blob.
let cctx: zstd.CCtx | null = null;
let decompressor: Decompressor | null = null;
/**
 * Compression output, reused: the compressed bytes are encrypted into the sealed blob
 * right away, so a fresh compressBound-sized buffer per blob (zstd-napi's Compressor, plus
 * a trimmed copy) was only garbage: up to twice the plaintext for every blob sealed.
 */
let compressScratch = Buffer.alloc(0);

/**
 * Already-compressed data (archives, images, packed binaries) costs a full zstd pass for
 * nothing. A chunk whose first 64 KiB shrinks by less than 3% is stored as it is. The
 * probe is the first block of the real compression (flushed, so its size is known), not a
 * separate pass: compressible chunks are not compressed 64 KiB twice.
 */
const probeLength = 64 * 1024;

/**
 * Compresses b, or returns null when its first 64 KiB show it does not compress. The
 * result is a view of scratch memory, valid until the next call.
 */
function zstdCompress(b: Buffer): Buffer | null {
  if (cctx === null) {
    cctx = new zstd.CCtx();
    cctx.setParameter(zstd.CParameter.compressionLevel, zstdLevel);
  }
  // Room for one more block header than compressBound counts: the probe's flush ends a block.
  const bound = zstd.compressBound(b.length) + 64;
  if (compressScratch.length < bound) compressScratch = Buffer.allocUnsafe(bound);
  const dst = compressScratch;
  if (b.length <= 2 * probeLength) return dst.subarray(0, cctx.compress2(dst, b));
  // The pledged size goes into the frame header and tunes the parameters as compress2 does.
  cctx.setPledgedSrcSize(b.length);
  let produced = streamInto(cctx, dst, 0, b.subarray(0, probeLength), zstd.EndDirective.flush);
  if (produced > probeLength * 0.97) {
    cctx.reset(zstd.ResetDirective.sessionOnly);
    return null;
  }
  produced = streamInto(cctx, dst, produced, b.subarray(probeLength), zstd.EndDirective.end);
  return dst.subarray(0, produced);
}

/** Feeds all of src to the frame in progress and flushes or ends it; returns dst's new end. */
function streamInto(
  c: zstd.CCtx,
  dst: Buffer,
  at: number,
  src: Buffer,
  op: zstd.EndDirective,
): number {
  let consumedAll = 0;
  for (;;) {
    const [left, produced, consumed] = c.compressStream2(
      dst.subarray(at),
      src.subarray(consumedAll),
      op,
    );
    at += produced;
    consumedAll += consumed;
    if (left === 0 && consumedAll === src.length) return at;
    if (produced === 0 && consumed === 0) {
      c.reset(zstd.ResetDirective.sessionOnly);
      throw new Error("zstd: internal error: output buffer too small");
    }
  }
}

function zstdDecompress(b: Buffer): Buffer {
  decompressor ??= new Decompressor();
  return decompressor.decompress(b);
}

export interface SealedBlob {
  id: Buffer;
  kind: BlobKind;
  rawLength: number;
  sealed: Buffer;
}

/** Compresses (when it helps) and seals a blob whose id is already known. */
export function sealBlob(
  repositoryId: Buffer,
  keys: RepositoryKeys,
  kind: BlobKind,
  id: Buffer,
  plaintext: Buffer,
): SealedBlob {
  const packed = zstdCompress(plaintext);
  const useZstd = packed !== null && packed.length < plaintext.length;
  const payload = useZstd ? packed : plaintext;
  const flag = useZstd ? flagZstd : flagNone;
  const aad = associatedData(repositoryId, kind, id, keys.generation);
  const sealed = seal(blobKey(keys.data, id), aad, keys.generation, [flag, payload]);
  return { id, kind, rawLength: plaintext.length, sealed };
}

/**
 * Opens a sealed blob: checks the tag (which binds repository, kind, id and generation),
 * decompresses, then recomputes the keyed id over the plaintext.
 */
export function openBlob(
  repositoryId: Buffer,
  keys: RepositoryKeys,
  kind: BlobKind,
  id: Buffer,
  sealed: Buffer,
  rawLength: number,
): Buffer {
  const what = `${kind === 2 ? "tree" : "data"} blob ${id.toString("hex")}`;
  const aad = associatedData(repositoryId, kind, id, keys.generation);
  const body = open(blobKey(keys.data, id), aad, sealed, what);
  let plaintext: Buffer;
  if (body[0] === uncompressed) plaintext = body.subarray(1);
  else if (body[0] === zstdCompressed) {
    try {
      plaintext = zstdDecompress(body.subarray(1));
    } catch {
      throw new IntegrityError(`${what} does not decompress`);
    }
  } else throw new IntegrityError(`${what} has an unknown compression flag ${body[0]}`);
  if (plaintext.length !== rawLength) {
    throw new IntegrityError(`${what} has ${plaintext.length} bytes, the index says ${rawLength}`);
  }
  if (!sameId(blobId(keys.id, plaintext), id)) {
    throw new IntegrityError(`${what} does not match its id`);
  }
  return plaintext;
}
