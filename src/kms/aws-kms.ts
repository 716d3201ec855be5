import type { KMSClient } from "@aws-sdk/client-kms";
import { KeyError } from "../errors.js";
import type { EnvelopeBinding } from "./provider.js";
import { envelopeContext } from "./provider.js";
import type { RemoteKeyService } from "./remote-key.js";
import { checkStanzaArg } from "./remote-key.js";
import { isNetworkError, networkCause } from "./retry.js";

// AWS KMS: the file key is encrypted with Encrypt under a symmetric KMS key (id, alias or
// ARN) and an encryption context naming the repository and envelope; Decrypt must be given
// the same context. Region, endpoint (AWS_ENDPOINT_URL_KMS) and credentials come from the
// SDK's usual chain: environment, shared profile, instance or task role.

/** Why a KMS call failed, in words, from the service's error name. */
function awsCause(err: unknown): string {
  const e = err as { name?: string; message?: string };
  switch (e?.name) {
    case "AccessDeniedException":
      return "access denied (check the IAM policy: kms:Encrypt / kms:Decrypt on this key)";
    case "DisabledException":
      return "the key is disabled";
    case "NotFoundException":
      return "no such key";
    case "KMSInvalidStateException":
      return "the key is not usable (pending deletion or import?)";
    case "InvalidCiphertextException":
      return "the wrapped key does not decrypt: it was made for another repository or envelope, or is damaged";
    case "IncorrectKeyException":
      return "the envelope was wrapped under another KMS key";
    case "ThrottlingException":
    case "LimitExceededException":
      return "throttled by KMS (gave up after retries)";
    case "CredentialsProviderError":
      return "no AWS credentials found (environment, profile or instance role)";
    case "InvalidSignatureException":
    case "UnrecognizedClientException":
    case "IncompleteSignature":
      return `credentials refused (${e.name})`;
  }
  if (isNetworkError(err)) return networkCause(err);
  return `${e?.name ?? "error"}: ${e?.message ?? String(err)}`;
}

export class AwsKmsService implements RemoteKeyService {
  readonly kind = "aws-kms";
  readonly stanzaType = "coffer-aws-kms";
  readonly reference: string;
  #client: KMSClient | undefined;

  constructor(keyId: string) {
    if (
      !/^(alias\/[\w/.-]+|arn:aws[\w-]*:kms:[\w-]+:\d{12}:(key|alias)\/[\w/.-]+|[0-9a-f-]{36}|mrk-[0-9a-f]{32})$/.test(
        keyId,
      )
    ) {
      throw new KeyError(`aws-kms: "${keyId}" is not a KMS key id, alias/NAME or key/alias ARN`);
    }
    this.reference = checkStanzaArg(keyId, "aws-kms key id");
  }

  /** Loaded on first use: the SDK costs startup time every other command need not pay. */
  private async client(): Promise<{
    client: KMSClient;
    sdk: typeof import("@aws-sdk/client-kms");
  }> {
    // The SDK's multi-line notice about Node 20 would land in every cron mail; the Node
    // support policy is the README's business.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    // The SDK retries throttling, 5xx and network errors itself (standard mode).
    const sdk = await import("@aws-sdk/client-kms");
    this.#client ??= new sdk.KMSClient({
      maxAttempts: Number(process.env.COFFER_KMS_ATTEMPTS ?? 5),
    });
    return { client: this.#client, sdk };
  }

  private fail(op: string, err: unknown): KeyError {
    return new KeyError(`aws-kms ${this.reference}: ${op} failed: ${awsCause(err)}`);
  }

  async encrypt(plaintext: Buffer, binding: EnvelopeBinding): Promise<{ ciphertext: Buffer }> {
    try {
      const { client, sdk } = await this.client();
      const out = await client.send(
        new sdk.EncryptCommand({
          KeyId: this.reference,
          Plaintext: plaintext,
          EncryptionContext: envelopeContext(binding),
        }),
      );
      if (!out.CiphertextBlob) throw new Error("empty reply");
      return { ciphertext: Buffer.from(out.CiphertextBlob) };
    } catch (err) {
      throw this.fail("Encrypt", err);
    }
  }

  async decrypt(
    ciphertext: Buffer,
    _version: string | undefined,
    binding: EnvelopeBinding,
  ): Promise<Buffer> {
    try {
      const { client, sdk } = await this.client();
      const out = await client.send(
        new sdk.DecryptCommand({
          KeyId: this.reference,
          CiphertextBlob: ciphertext,
          EncryptionContext: envelopeContext(binding),
        }),
      );
      if (!out.Plaintext) throw new Error("empty reply");
      const key = Buffer.from(out.Plaintext);
      out.Plaintext.fill(0);
      return key;
    } catch (err) {
      throw this.fail("Decrypt", err);
    }
  }
}
