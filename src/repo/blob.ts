import { Compressor, Decompressor } from "zstd-napi";
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

// One compression and one decompression context for the process: creating a zstd context
// per blob costs more than compressing a small blob.
let compressor: Compressor | null = null;
let decompressor: Decompressor | null = null;

function zstdCompress(b: Buffer): Buffer {
  if (compressor === null) {
    compressor = new Compressor();
    compressor.setParameters({ compressionLevel: zstdLevel });
  }
  return compressor.compress(b);
}

function zstdDecompress(b: Buffer): Buffer {
  decompressor ??= new Decompressor();
  return decompressor.decompress(b);
}

/**
 * Already-compressed data (archives, images, packed binaries) costs a full zstd pass for
 * nothing. A chunk whose first 64 KiB shrinks by less than 3% is stored as it is.
 */
const probeLength = 64 * 1024;

function looksIncompressible(b: Buffer): boolean {
  if (b.length <= 2 * probeLength) return false;
  return zstdCompress(b.subarray(0, probeLength)).length > probeLength * 0.97;
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
  const packed = looksIncompressible(plaintext) ? plaintext : zstdCompress(plaintext);
  const useZstd = packed.length < plaintext.length;
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
