import { KeyError } from "../errors.js";
import type { EnvelopeBinding } from "./provider.js";
import { envelopeAssociatedData } from "./provider.js";
import type { RemoteKeyService } from "./remote-key.js";
import { checkStanzaArg } from "./remote-key.js";
import { isNetworkError, networkCause, withRetry } from "./retry.js";

// Google Cloud KMS: Encrypt / Decrypt on a symmetric CryptoKey with the envelope binding as
// additionalAuthenticatedData, through @google-cloud/kms in its HTTP/1 REST mode
// (`fallback: true`: no gRPC dependency at run time). Credentials from Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server); the endpoint from
// COFFER_GCP_KMS_ENDPOINT (e.g. a regional or private endpoint, or a test stand-in). The
// primary version that encrypted is written to the stanza; Decrypt finds it by itself.

type KmsClient = import("@google-cloud/kms").KeyManagementServiceClient;

const grpcCodes: Record<number, string> = {
  3: "the wrapped key does not decrypt: made for another repository or envelope, or damaged",
  5: "no such key (NOT_FOUND)",
  7: "permission denied (check roles/cloudkms.cryptoKeyEncrypter / Decrypter on this key)",
  8: "rate limited (RESOURCE_EXHAUSTED; gave up after retries)",
  9: "the key version is disabled or destroyed (FAILED_PRECONDITION)",
  14: "service unavailable (gave up after retries)",
  16: "credentials refused (UNAUTHENTICATED)",
};

const statusCodes: Record<string, number> = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
};
const httpCodes: Record<number, number> = { 401: 16, 403: 7, 404: 5, 429: 8, 503: 14 };

/**
 * The gRPC status code of a failed call. The REST fallback reports it as a GoogleError
 * code, or only as an HTTP status with Google's JSON error body as the message.
 */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number | string; message?: string };
  try {
    const body = JSON.parse(e?.message ?? "");
    const status = statusCodes[String(body?.error?.status)];
    if (status !== undefined) return status;
  } catch {
    // not a JSON body
  }
  if (typeof e?.code === "number") return e.code < 100 ? e.code : httpCodes[e.code];
  return undefined;
}

function gcpCause(err: unknown): string {
  const e = err as { code?: number | string; message?: string };
  const code = statusOf(err);
  if (code !== undefined && grpcCodes[code]) return grpcCodes[code] as string;
  if (isNetworkError(err)) return networkCause(err);
  if (/Could not load the default credentials/.test(e?.message ?? "")) {
    return "no Google credentials (set GOOGLE_APPLICATION_CREDENTIALS or run gcloud auth application-default login)";
  }
  return (e?.message ?? String(err)).split("\n")[0]?.slice(0, 240) ?? "error";
}

export class GcpKmsService implements RemoteKeyService {
  readonly kind = "gcp-kms";
  readonly stanzaType = "coffer-gcp-kms";
  readonly reference: string;
  #client: KmsClient | undefined;

  constructor(keyName: string) {
    if (
      !/^projects\/[\w.:-]+\/locations\/[\w-]+\/keyRings\/[\w-]+\/cryptoKeys\/[\w-]+$/.test(keyName)
    ) {
      throw new KeyError(
        `gcp-kms: "${keyName}" is not a key name: use projects/P/locations/L/keyRings/R/cryptoKeys/K`,
      );
    }
    this.reference = checkStanzaArg(keyName, "gcp-kms key name");
  }

  private async client(): Promise<KmsClient> {
    if (this.#client) return this.#client;
    const { KeyManagementServiceClient } = await import("@google-cloud/kms");
    const opts: Record<string, string | number | boolean> = { fallback: true };
    const endpoint = process.env.COFFER_GCP_KMS_ENDPOINT;
    if (endpoint) {
      const u = new URL(endpoint);
      opts.apiEndpoint = u.hostname;
      opts.protocol = u.protocol.replace(":", "");
      if (u.port) opts.port = Number(u.port);
    }
    this.#client = new KeyManagementServiceClient(opts);
    return this.#client;
  }

  private async call<T>(op: string, fn: (c: KmsClient) => Promise<T>): Promise<T> {
    try {
      const c = await this.client();
      return await withRetry(
        () => fn(c),
        (err) => {
          const code = statusOf(err);
          return isNetworkError(err) || code === 8 || code === 14 || code === 4 || code === 13;
        },
      );
    } catch (err) {
      throw new KeyError(`gcp-kms ${this.reference}: ${op} failed: ${gcpCause(err)}`);
    }
  }

  async encrypt(
    plaintext: Buffer,
    binding: EnvelopeBinding,
  ): Promise<{ ciphertext: Buffer; version?: string }> {
    const [out] = await this.call("encrypt", (c) =>
      c.encrypt({
        name: this.reference,
        plaintext,
        additionalAuthenticatedData: envelopeAssociatedData(binding),
      }),
    );
    if (!out.ciphertext)
      throw new KeyError(`gcp-kms ${this.reference}: encrypt returned no ciphertext`);
    const version = /\/cryptoKeyVersions\/(\d+)$/.exec(out.name ?? "")?.[1];
    return { ciphertext: Buffer.from(out.ciphertext as Uint8Array), version };
  }

  async decrypt(
    ciphertext: Buffer,
    _version: string | undefined,
    binding: EnvelopeBinding,
  ): Promise<Buffer> {
    const [out] = await this.call("decrypt", (c) =>
      c.decrypt({
        name: this.reference,
        ciphertext,
        additionalAuthenticatedData: envelopeAssociatedData(binding),
      }),
    );
    if (!out.plaintext)
      throw new KeyError(`gcp-kms ${this.reference}: decrypt returned no plaintext`);
    const key = Buffer.from(out.plaintext as Uint8Array);
    if (typeof out.plaintext !== "string") (out.plaintext as Uint8Array).fill(0);
    return key;
  }
}
