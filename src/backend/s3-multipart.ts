// A multipart upload for objects above the single-PUT threshold: each part carries its
// Content-MD5 and its ETag is checked, each part is retried on its own, and the finished
// object's size is checked with a HEAD. A failed upload is aborted (best effort: an
// upload left open only costs storage until a lifecycle rule ends it).
import { createHash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandInput,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { debugLog } from "./retry.js";
import { S3RequestError } from "./s3-errors.js";

export function md5(data: Buffer): Buffer {
  return createHash("md5").update(data).digest();
}

/** What the upload needs from its backend: the client and its checked, retried calls. */
export interface MultipartContext {
  client: S3Client;
  bucket: string;
  call<T>(what: string, op: () => Promise<T>): Promise<T>;
  checkEtag(what: string, etag: string | undefined, digest: Buffer): void;
  checkStored(what: string, key: string, size: number): Promise<void>;
}

export interface MultipartUpload {
  key: string;
  /** "PUT s3://bucket/prefix/data/xx/id", for messages. */
  what: string;
  size: number;
  /**
   * `length` bytes of the object from `offset`: one part in memory at a time, so an
   * upload costs a part's size whatever the object's (a spooled pack reads its file).
   */
  part(offset: number, length: number): Promise<Buffer>;
  partSize: number;
  /** SSE, storage class, Object Lock: set when the upload is created. */
  headers: Partial<CreateMultipartUploadCommandInput>;
}

export async function uploadMultipart(ctx: MultipartContext, u: MultipartUpload): Promise<void> {
  const { client, bucket } = ctx;
  const { key, what, size, partSize } = u;
  const created = await ctx.call(`${what} (start multipart)`, () =>
    client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...u.headers })),
  );
  const uploadId = created.UploadId;
  if (!uploadId) throw new S3RequestError(`${what}: the server gave no multipart upload id`);
  try {
    const parts: { ETag: string; PartNumber: number }[] = [];
    for (let off = 0, n = 1; off < size; off += partSize, n++) {
      const part = await u.part(off, Math.min(partSize, size - off));
      const digest = md5(part);
      const partWhat = `${what} (part ${n})`;
      const out = await ctx.call(partWhat, async () => {
        const r = await client.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: n,
            Body: part,
            ContentLength: part.length,
            ContentMD5: digest.toString("base64"),
          }),
        );
        ctx.checkEtag(partWhat, r.ETag, digest);
        return r;
      });
      parts.push({ ETag: out.ETag ?? "", PartNumber: n });
    }
    await ctx.call(`${what} (complete multipart)`, () =>
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      ),
    );
    await ctx.call(`${what} (check size)`, () => ctx.checkStored(what, key, size));
  } catch (err) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
      .catch((e: unknown) => debugLog(`${what}: abort multipart failed: ${String(e)}`));
    throw err;
  }
}
