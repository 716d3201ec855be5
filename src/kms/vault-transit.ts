import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { KeyError } from "../errors.js";
import type { EnvelopeBinding } from "./provider.js";
import { envelopeAssociatedData } from "./provider.js";
import type { RemoteKeyService } from "./remote-key.js";
import { checkStanzaArg } from "./remote-key.js";
import { isNetworkError, networkCause, withRetry } from "./retry.js";

// HashiCorp Vault (or OpenBao) Transit: POST /v1/<mount>/encrypt/<key> and /decrypt/<key>
// with the file key as `plaintext` and the envelope binding as `associated_data` (AAD of
// the AES-GCM / ChaCha20 key types, Vault ≥ 1.13). The server from VAULT_ADDR; the token
// from VAULT_TOKEN, else COFFER_VAULT_TOKEN_FILE, else ~/.vault-token; VAULT_NAMESPACE and
// VAULT_CACERT as the vault CLI reads them. The key version is in the stanza args.

class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(`HTTP ${status}: ${errors.join("; ")}`);
  }
}

function vaultCause(err: unknown): string {
  if (err instanceof VaultHttpError) {
    const detail = err.errors.join("; ").slice(0, 200);
    if (err.status === 403)
      return `permission denied (check the Vault policy on this key)${detail && detail !== "permission denied" ? `: ${detail}` : ""}`;
    if (err.status === 429) return "rate limited by Vault (gave up after retries)";
    if (err.status === 503) return "Vault is sealed or in standby (gave up after retries)";
    return `${err.message.slice(0, 240)}`;
  }
  if (isNetworkError(err)) return networkCause(err);
  return (err as Error)?.message ?? String(err);
}

let cachedToken: string | undefined;

/** Read once; VAULT_TOKEN is then removed so dump commands and hooks do not inherit it. */
function readToken(): string {
  if (cachedToken) return cachedToken;
  const fromEnv = process.env.VAULT_TOKEN;
  delete process.env.VAULT_TOKEN;
  if (fromEnv) {
    cachedToken = fromEnv;
    return fromEnv;
  }
  const file = process.env.COFFER_VAULT_TOKEN_FILE || join(homedir(), ".vault-token");
  try {
    const t = readFileSync(file, "utf8").trim();
    if (t) {
      cachedToken = t;
      return t;
    }
  } catch {
    // fall through to the error below
  }
  throw new KeyError(
    "vault: no token: set VAULT_TOKEN, COFFER_VAULT_TOKEN_FILE, or log in (~/.vault-token)",
  );
}

export class VaultTransitService implements RemoteKeyService {
  readonly kind = "vault";
  readonly stanzaType = "coffer-vault";
  /** "<mount>/keys/<name>", as in Vault's own paths. */
  readonly reference: string;
  readonly #mount: string;
  readonly #key: string;

  /** spec: NAME (mount "transit") or MOUNT/keys/NAME. */
  constructor(spec: string) {
    const m = /^(?:([\w.-]+(?:\/[\w.-]+)*)\/keys\/)?([\w.-]+)$/.exec(spec);
    if (!m)
      throw new KeyError(`vault: "${spec}" is not a transit key: use NAME or MOUNT/keys/NAME`);
    this.#mount = m[1] ?? "transit";
    this.#key = m[2] as string;
    this.reference = checkStanzaArg(`${this.#mount}/keys/${this.#key}`, "vault key");
  }

  private async call(op: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const addr = process.env.VAULT_ADDR;
    if (!addr) throw new KeyError(`vault ${this.reference}: VAULT_ADDR is not set`);
    const token = readToken();
    let ca: Buffer | undefined;
    if (process.env.VAULT_CACERT) {
      try {
        ca = readFileSync(process.env.VAULT_CACERT);
      } catch (err) {
        throw new KeyError(
          `vault: cannot read VAULT_CACERT ${process.env.VAULT_CACERT}: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
    }
    const url = new URL(`/v1/${this.#mount}/${op}/${this.#key}`, addr);
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      "X-Vault-Token": token,
      "Content-Type": "application/json",
      "Content-Length": payload.length,
    };
    if (process.env.VAULT_NAMESPACE) headers["X-Vault-Namespace"] = process.env.VAULT_NAMESPACE;
    const once = () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(
          url,
          { method: "POST", headers, ca, timeout: 30_000 },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("error", reject);
            res.on("end", () => {
              let json: { data?: Record<string, unknown>; errors?: string[] } = {};
              try {
                json = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
              } catch {
                // a proxy's HTML error page: the status says enough
              }
              const status = res.statusCode ?? 0;
              if (status >= 200 && status < 300 && json.data) resolve(json.data);
              else reject(new VaultHttpError(status, json.errors ?? []));
            });
          },
        );
        req.on("timeout", () =>
          req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })),
        );
        req.on("error", reject);
        req.end(payload);
      });
    try {
      return await withRetry(
        once,
        (err) =>
          isNetworkError(err) ||
          (err instanceof VaultHttpError && (err.status === 429 || err.status >= 500)),
      );
    } catch (err) {
      throw new KeyError(`vault ${this.reference}: ${op} failed: ${vaultCause(err)}`);
    }
  }

  async encrypt(
    plaintext: Buffer,
    binding: EnvelopeBinding,
  ): Promise<{ ciphertext: Buffer; version: string }> {
    const data = await this.call("encrypt", {
      plaintext: plaintext.toString("base64"),
      associated_data: envelopeAssociatedData(binding).toString("base64"),
    });
    const m = /^vault:v(\d+):([A-Za-z0-9+/=]+)$/.exec(String(data.ciphertext));
    if (!m) throw new KeyError(`vault ${this.reference}: encrypt returned no vault:vN: ciphertext`);
    return { ciphertext: Buffer.from(m[2] as string, "base64"), version: m[1] as string };
  }

  async decrypt(
    ciphertext: Buffer,
    version: string | undefined,
    binding: EnvelopeBinding,
  ): Promise<Buffer> {
    if (version === undefined || !/^\d+$/.test(version)) {
      throw new KeyError(`invalid coffer-vault stanza: no key version`);
    }
    const data = await this.call("decrypt", {
      ciphertext: `vault:v${version}:${ciphertext.toString("base64")}`,
      associated_data: envelopeAssociatedData(binding).toString("base64"),
    });
    if (typeof data.plaintext !== "string") {
      throw new KeyError(`vault ${this.reference}: decrypt returned no plaintext`);
    }
    return Buffer.from(data.plaintext, "base64");
  }
}
