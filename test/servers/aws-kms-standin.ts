// A local stand-in for AWS KMS (test only): AWS JSON 1.1 over node:http, the operations
// coffer uses (TrentService.Encrypt, TrentService.Decrypt), with the SigV4 signature of
// every request recomputed from the known test secret and refused with AWS's error shape
// when it does not match. Real AES-256-GCM inside; key versions (rotation), disabled keys,
// per-credential permissions, throttling and internal errors on demand.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  randomUUID,
  timingSafeEqual,
} from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "./loopback-server.js";

export const awsRegion = "eu-central-1";
export const awsAccount = "111122223333";

interface Credential {
  secret: string;
  /** An IAM-style condition: kms:EncryptionContext:<key> must equal the value. */
  context?: Record<string, string>;
  /** Operations this access key may call ("Encrypt", "Decrypt"). */
  allow: Set<string>;
}

interface StandInKey {
  id: string;
  arn: string;
  aliases: string[];
  versions: Buffer[];
  enabled: boolean;
}

class KmsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function sha256Hex(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

export class AwsKmsStandIn extends LoopbackServer {
  readonly #keys = new Map<string, StandInKey>();
  readonly #creds = new Map<string, Credential>();
  /** Targets of the requests received, in order (for assertions). */
  readonly calls: string[] = [];
  #throttleNext = 0;
  #failNext = 0;

  addCredential(
    accessKeyId: string,
    secret: string,
    allow: string[],
    context?: Record<string, string>,
  ): void {
    this.#creds.set(accessKeyId, { secret, allow: new Set(allow), context });
  }

  createKey(alias: string): StandInKey {
    const id = randomUUID();
    const key: StandInKey = {
      id,
      arn: `arn:aws:kms:${awsRegion}:${awsAccount}:key/${id}`,
      aliases: [`alias/${alias}`],
      versions: [randomBytes(32)],
      enabled: true,
    };
    this.#keys.set(id, key);
    return key;
  }

  keyByAlias(alias: string): StandInKey {
    return this.#resolve(alias);
  }

  /** Automatic key rotation: new backing key material; old ciphertexts still decrypt. */
  rotate(key: StandInKey): void {
    key.versions.push(randomBytes(32));
  }

  setEnabled(key: StandInKey, enabled: boolean): void {
    key.enabled = enabled;
  }

  throttleNext(n: number): void {
    this.#throttleNext = n;
  }

  failNext(n: number): void {
    this.#failNext = n;
  }

  #resolve(ref: string | undefined): StandInKey {
    for (const k of this.#keys.values()) {
      if (
        ref === k.id ||
        ref === k.arn ||
        k.aliases.includes(ref ?? "") ||
        k.aliases.some((a) => ref === `arn:aws:kms:${awsRegion}:${awsAccount}:${a}`)
      ) {
        return k;
      }
    }
    throw new KmsFault("NotFoundException", `Key '${ref}' does not exist`);
  }

  /** Recomputes the SigV4 signature; returns the access key id on success. */
  #checkSignature(req: IncomingMessage, body: Buffer): string {
    const auth = req.headers.authorization ?? "";
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m)
      throw new KmsFault(
        "IncompleteSignature",
        "Authorization header requires Credential, SignedHeaders and Signature",
      );
    const [, akid, date, region, service, signedHeaders, signature] = m as unknown as string[];
    const cred = this.#creds.get(akid as string);
    if (!cred)
      throw new KmsFault(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
      );
    const amzDate = String(req.headers["x-amz-date"] ?? "");
    const names = (signedHeaders as string).split(";");
    if (
      !names.includes("host") ||
      !names.includes("x-amz-date") ||
      !amzDate.startsWith(date as string)
    ) {
      throw new KmsFault("IncompleteSignature", "host and x-amz-date must be signed");
    }
    const canonicalHeaders = names
      .map(
        (n) =>
          `${n}:${String(req.headers[n] ?? "")
            .trim()
            .replace(/\s+/g, " ")}\n`,
      )
      .join("");
    const canonicalRequest = [
      req.method,
      req.url?.split("?")[0] ?? "/",
      "",
      canonicalHeaders,
      signedHeaders,
      sha256Hex(body),
    ].join("\n");
    const scope = `${date}/${region}/${service}/aws4_request`;
    const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join(
      "\n",
    );
    const kDate = hmac(`AWS4${cred.secret}`, date as string);
    const kSigning = hmac(hmac(hmac(kDate, region as string), service as string), "aws4_request");
    const want = createHmac("sha256", kSigning).update(stringToSign).digest();
    const got = Buffer.from(signature as string, "hex");
    if (service !== "kms" || region !== awsRegion || !timingSafeEqual(want, got)) {
      throw new KmsFault(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
      );
    }
    return akid as string;
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const target = String(req.headers["x-amz-target"] ?? "");
      this.calls.push(target);
      let status = 200;
      let out: unknown;
      try {
        const akid = this.#checkSignature(req, body);
        if (this.#throttleNext > 0) {
          this.#throttleNext--;
          throw new KmsFault("ThrottlingException", "Rate exceeded");
        }
        if (this.#failNext > 0) {
          this.#failNext--;
          throw new KmsFault("KMSInternalException", "internal error", 500);
        }
        const op = target.replace(/^TrentService\./, "");
        const input = JSON.parse(body.toString("utf8") || "{}");
        const cred = this.#creds.get(akid);
        const ctx = (input.EncryptionContext ?? {}) as Record<string, string>;
        const conditionMet = Object.entries(cred?.context ?? {}).every(([k, v]) => ctx[k] === v);
        if (!(cred?.allow.has(op) ?? false) || !conditionMet) {
          throw new KmsFault(
            "AccessDeniedException",
            `User: arn:aws:iam::${awsAccount}:user/${akid} is not authorized to perform: kms:${op}`,
          );
        }
        out = this.#operation(op, input);
      } catch (err) {
        const f =
          err instanceof KmsFault ? err : new KmsFault("KMSInternalException", String(err), 500);
        status = f.status;
        out = { __type: f.type, message: f.message };
        res.setHeader("x-amzn-ErrorType", f.type);
      }
      const payload = Buffer.from(JSON.stringify(out));
      res.writeHead(status, {
        "Content-Type": "application/x-amz-json-1.1",
        "Content-Length": payload.length,
        "x-amzn-RequestId": randomUUID(),
      });
      res.end(payload);
    });
  }

  #operation(op: string, input: Record<string, unknown>): unknown {
    const context = (input.EncryptionContext ?? {}) as Record<string, string>;
    const aad = Buffer.from(
      JSON.stringify(
        Object.keys(context)
          .sort()
          .map((k) => [k, context[k]]),
      ),
    );
    switch (op) {
      case "Encrypt": {
        const key = this.#resolve(String(input.KeyId));
        if (!key.enabled) throw new KmsFault("DisabledException", `${key.arn} is disabled.`);
        const version = key.versions.length - 1;
        const iv = randomBytes(12);
        const c = createCipheriv("aes-256-gcm", key.versions[version] as Buffer, iv);
        c.setAAD(aad);
        const ct = Buffer.concat([
          c.update(Buffer.from(String(input.Plaintext), "base64")),
          c.final(),
          c.getAuthTag(),
        ]);
        const head = Buffer.alloc(36 + 4);
        head.write(key.id, 0, "ascii");
        head.writeUInt32LE(version, 36);
        return {
          CiphertextBlob: Buffer.concat([head, iv, ct]).toString("base64"),
          KeyId: key.arn,
          EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        };
      }
      case "Decrypt": {
        const blob = Buffer.from(String(input.CiphertextBlob), "base64");
        if (blob.length < 40 + 12 + 16) throw new KmsFault("InvalidCiphertextException", "");
        const key = this.#keys.get(blob.subarray(0, 36).toString("ascii"));
        if (!key) throw new KmsFault("InvalidCiphertextException", "");
        if (input.KeyId !== undefined && this.#resolve(String(input.KeyId)) !== key) {
          throw new KmsFault(
            "IncorrectKeyException",
            "The key ID in the request does not identify a CMK that can perform this operation.",
          );
        }
        if (!key.enabled) throw new KmsFault("DisabledException", `${key.arn} is disabled.`);
        const material = key.versions[blob.readUInt32LE(36)];
        if (!material) throw new KmsFault("InvalidCiphertextException", "");
        const iv = blob.subarray(40, 52);
        const d = createDecipheriv("aes-256-gcm", material, iv);
        d.setAAD(aad);
        d.setAuthTag(blob.subarray(blob.length - 16));
        try {
          const pt = Buffer.concat([d.update(blob.subarray(52, blob.length - 16)), d.final()]);
          return {
            Plaintext: pt.toString("base64"),
            KeyId: key.arn,
            EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
          };
        } catch {
          throw new KmsFault("InvalidCiphertextException", "");
        }
      }
    }
    throw new KmsFault("UnknownOperationException", `unknown operation ${op}`);
  }
}
