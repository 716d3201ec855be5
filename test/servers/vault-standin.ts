// A local stand-in for HashiCorp Vault's Transit engine (test only), over node:http: the
// X-Vault-Token header is checked against per-token policies; POST
// /v1/<mount>/encrypt|decrypt|rewrap/<key> with associated_data, /keys/<key>/rotate and
// /keys/<key>/config (min_decryption_version). Real AES-256-GCM; ciphertexts are
// "vault:v<N>:<base64(nonce || ciphertext || tag)>" like Vault's.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "./loopback-server.js";

interface TransitKey {
  versions: Buffer[];
  minDecryptionVersion: number;
}

class VaultFault extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class VaultStandIn extends LoopbackServer {
  readonly #keys = new Map<string, TransitKey>();
  /** token -> allowed "op:mount/key" strings ("*" for all). */
  readonly #tokens = new Map<string, Set<string>>();
  readonly calls: string[] = [];
  #failNext = 0;

  /** With tls, serves HTTPS with that certificate (as a Vault with its own CA would). */

  addToken(token: string, allow: string[]): void {
    this.#tokens.set(token, new Set(allow));
  }

  createKey(mount: string, name: string): void {
    this.#keys.set(`${mount}/${name}`, { versions: [randomBytes(32)], minDecryptionVersion: 1 });
  }

  /** Answers the next n requests with 503 (sealed / standby). */
  failNext(n: number): void {
    this.#failNext = n;
  }

  #key(path: string): TransitKey {
    const k = this.#keys.get(path);
    if (!k) throw new VaultFault(400, "encryption key not found");
    return k;
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let status = 200;
      let out: unknown = {};
      try {
        const m =
          /^\/v1\/([\w.-]+(?:\/[\w.-]+)*?)\/(encrypt|decrypt|rewrap|keys)\/([\w.-]+)(\/rotate|\/config)?$/.exec(
            req.url ?? "",
          );
        if (!m || req.method !== "POST") throw new VaultFault(404, "unsupported path");
        const [, mount, opName, name, sub] = m as unknown as string[];
        const op = sub ? sub.slice(1) : (opName as string);
        this.calls.push(`${op} ${mount}/${name}`);
        const allowed = this.#tokens.get(String(req.headers["x-vault-token"] ?? ""));
        if (!allowed || !(allowed.has("*") || allowed.has(`${op}:${mount}/${name}`))) {
          throw new VaultFault(403, "permission denied");
        }
        if (this.#failNext > 0) {
          this.#failNext--;
          throw new VaultFault(503, "Vault is sealed");
        }
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
        out = { data: this.#operation(op, this.#key(`${mount}/${name}`), body) };
      } catch (err) {
        const f = err instanceof VaultFault ? err : new VaultFault(500, String(err));
        status = f.status;
        out = { errors: [f.message] };
      }
      const payload = Buffer.from(JSON.stringify(out));
      res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": payload.length,
      });
      res.end(payload);
    });
  }

  #encrypt(key: TransitKey, plaintext: Buffer, aad: Buffer): Record<string, unknown> {
    const version = key.versions.length;
    const nonce = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", key.versions[version - 1] as Buffer, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
    return { ciphertext: `vault:v${version}:${ct.toString("base64")}`, key_version: version };
  }

  #decrypt(key: TransitKey, ciphertext: string, aad: Buffer): Buffer {
    const m = /^vault:v(\d+):([A-Za-z0-9+/=]+)$/.exec(ciphertext);
    if (!m) throw new VaultFault(400, "invalid ciphertext: no prefix");
    const version = Number(m[1]);
    if (version < key.minDecryptionVersion) {
      throw new VaultFault(
        400,
        "ciphertext or signature version is disallowed by policy (too old)",
      );
    }
    const material = key.versions[version - 1];
    if (!material) throw new VaultFault(400, "invalid key version");
    const raw = Buffer.from(m[2] as string, "base64");
    const d = createDecipheriv("aes-256-gcm", material, raw.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(raw.subarray(raw.length - 16));
    try {
      return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    } catch {
      throw new VaultFault(400, "cipher: message authentication failed");
    }
  }

  #operation(op: string, key: TransitKey, body: Record<string, unknown>): unknown {
    const aad = Buffer.from(String(body.associated_data ?? ""), "base64");
    switch (op) {
      case "encrypt":
        return this.#encrypt(key, Buffer.from(String(body.plaintext), "base64"), aad);
      case "decrypt":
        return { plaintext: this.#decrypt(key, String(body.ciphertext), aad).toString("base64") };
      case "rewrap":
        return this.#encrypt(key, this.#decrypt(key, String(body.ciphertext), aad), aad);
      case "rotate":
        key.versions.push(randomBytes(32));
        return { latest_version: key.versions.length };
      case "config":
        if (body.min_decryption_version !== undefined)
          key.minDecryptionVersion = Number(body.min_decryption_version);
        return { min_decryption_version: key.minDecryptionVersion };
    }
    throw new VaultFault(404, "unsupported operation");
  }
}
