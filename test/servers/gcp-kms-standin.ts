// A local stand-in for Google Cloud KMS's REST API (test only), over node:http: POST
// /v1/{cryptoKey}:encrypt and :decrypt with additionalAuthenticatedData, as
// @google-cloud/kms sends them in its HTTP/1 fallback mode. The bearer token is the
// service account's self-signed JWT: its RS256 signature is verified against the
// account's public key. Key versions with a primary, rotation, disabled versions,
// per-account permissions. Real AES-256-GCM inside.
import {
  createCipheriv,
  createDecipheriv,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  verify,
} from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "./loopback-server.js";

interface CryptoKey {
  versions: Array<{ material: Buffer; state: "ENABLED" | "DISABLED" }>;
  primary: number;
}

class GcpFault extends Error {
  constructor(
    readonly http: number,
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

export class GcpKmsStandIn extends LoopbackServer {
  readonly #keys = new Map<string, CryptoKey>();
  /** service account email -> public key and allowed methods ("encrypt", "decrypt"). */
  readonly #accounts = new Map<string, { publicKey: KeyObject; allow: Set<string> }>();
  readonly calls: string[] = [];

  /** Registers a service account; returns its key file (GOOGLE_APPLICATION_CREDENTIALS). */
  addServiceAccount(email: string, allow: string[]): string {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#accounts.set(email, { publicKey, allow: new Set(allow) });
    return JSON.stringify({
      type: "service_account",
      project_id: "coffer-test",
      private_key_id: "test-key-1",
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
      client_email: email,
      client_id: "1",
      // Never used: the client signs its own JWT; a token exchange would fail loudly.
      token_uri: "http://127.0.0.1:9/token",
    });
  }

  createKey(name: string): void {
    this.#keys.set(name, {
      versions: [{ material: randomBytes(32), state: "ENABLED" }],
      primary: 1,
    });
  }

  /** A new primary version; older versions still decrypt while enabled. */
  rotate(name: string): void {
    const k = this.#keys.get(name) as CryptoKey;
    k.versions.push({ material: randomBytes(32), state: "ENABLED" });
    k.primary = k.versions.length;
  }

  setVersionState(name: string, version: number, state: "ENABLED" | "DISABLED"): void {
    const v = this.#keys.get(name)?.versions[version - 1];
    if (v) v.state = state;
  }

  #authenticate(req: IncomingMessage): string {
    const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(String(req.headers.authorization ?? ""));
    if (!m)
      throw new GcpFault(
        401,
        "UNAUTHENTICATED",
        "Request is missing required authentication credential.",
      );
    const claims = JSON.parse(Buffer.from(m[2] as string, "base64url").toString("utf8"));
    const account = this.#accounts.get(String(claims.iss));
    const signed = Buffer.from(`${m[1]}.${m[2]}`);
    if (
      !account ||
      !verify("RSA-SHA256", signed, account.publicKey, Buffer.from(m[3] as string, "base64url"))
    ) {
      throw new GcpFault(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    }
    if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) {
      throw new GcpFault(401, "UNAUTHENTICATED", "The access token expired.");
    }
    return String(claims.iss);
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let status = 200;
      let out: unknown;
      try {
        const m = /^\/v1\/(projects\/[^:?]+):(encrypt|decrypt)(\?.*)?$/.exec(req.url ?? "");
        if (!m || req.method !== "POST") throw new GcpFault(404, "NOT_FOUND", "unsupported path");
        const [, name, method] = m as unknown as string[];
        this.calls.push(`${method} ${name}`);
        const who = this.#authenticate(req);
        if (!this.#accounts.get(who)?.allow.has(method as string)) {
          throw new GcpFault(
            403,
            "PERMISSION_DENIED",
            `Permission 'cloudkms.cryptoKeyVersions.use${method === "encrypt" ? "ToEncrypt" : "ToDecrypt"}' denied on resource '${name}' (or it may not exist).`,
          );
        }
        const key = this.#keys.get(name as string);
        if (!key)
          throw new GcpFault(
            403,
            "PERMISSION_DENIED",
            `Permission denied on resource '${name}' (or it may not exist).`,
          );
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
        const aad = Buffer.from(String(body.additionalAuthenticatedData ?? ""), "base64");
        out =
          method === "encrypt"
            ? this.#encrypt(name as string, key, body, aad)
            : this.#decrypt(name as string, key, body, aad);
      } catch (err) {
        const f = err instanceof GcpFault ? err : new GcpFault(500, "INTERNAL", String(err));
        status = f.http;
        out = { error: { code: f.http, message: f.message, status: f.status } };
      }
      const payload = Buffer.from(JSON.stringify(out));
      res.writeHead(status, {
        "Content-Type": "application/json; charset=UTF-8",
        "Content-Length": payload.length,
      });
      res.end(payload);
    });
  }

  #encrypt(name: string, key: CryptoKey, body: Record<string, unknown>, aad: Buffer): unknown {
    const v = key.versions[key.primary - 1] as CryptoKey["versions"][number];
    if (v.state !== "ENABLED") {
      throw new GcpFault(
        400,
        "FAILED_PRECONDITION",
        `${name}/cryptoKeyVersions/${key.primary} is not enabled, current state is: ${v.state}.`,
      );
    }
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", v.material, iv);
    c.setAAD(aad);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(key.primary);
    const ct = Buffer.concat([
      head,
      iv,
      c.update(Buffer.from(String(body.plaintext), "base64")),
      c.final(),
      c.getAuthTag(),
    ]);
    return {
      name: `${name}/cryptoKeyVersions/${key.primary}`,
      ciphertext: ct.toString("base64"),
      protectionLevel: 1,
    };
  }

  #decrypt(name: string, key: CryptoKey, body: Record<string, unknown>, aad: Buffer): unknown {
    const ct = Buffer.from(String(body.ciphertext), "base64");
    const invalid = new GcpFault(
      400,
      "INVALID_ARGUMENT",
      "Decryption failed: the ciphertext is invalid.",
    );
    if (ct.length < 4 + 12 + 16) throw invalid;
    const version = ct.readUInt32LE(0);
    const v = key.versions[version - 1];
    if (!v) throw invalid;
    if (v.state !== "ENABLED") {
      throw new GcpFault(
        400,
        "FAILED_PRECONDITION",
        `${name}/cryptoKeyVersions/${version} is not enabled, current state is: ${v.state}.`,
      );
    }
    const d = createDecipheriv("aes-256-gcm", v.material, ct.subarray(4, 16));
    d.setAAD(aad);
    d.setAuthTag(ct.subarray(ct.length - 16));
    try {
      const pt = Buffer.concat([d.update(ct.subarray(16, ct.length - 16)), d.final()]);
      return {
        plaintext: pt.toString("base64"),
        usedPrimary: version === key.primary,
        protectionLevel: 1,
      };
    } catch {
      throw invalid;
    }
  }
}
