import { UserError } from "../errors.js";
import { AwsKmsService } from "./aws-kms.js";
import { GcpKmsService } from "./gcp-kms.js";
import type { Pkcs11Spec } from "./pkcs11.js";
import { Pkcs11Service } from "./pkcs11.js";
import { RemoteKeyProvider } from "./remote-key.js";
import { VaultTransitService } from "./vault-transit.js";

// The --kms SPEC syntax (docs/KEYS.md §Key services):
//   aws-kms:KEY          KEY = key id, alias/NAME, or key/alias ARN
//   vault:NAME | vault:MOUNT/keys/NAME          (server from VAULT_ADDR)
//   gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K
//   pkcs11:token=LABEL;key=LABEL[;module=/path/to/module.so]   (or slot=N for token=)
// The module defaults to COFFER_PKCS11_MODULE.

export const kmsSpecHelp =
  "aws-kms:alias/NAME, vault:NAME, gcp-kms:projects/.../cryptoKeys/K or pkcs11:token=T;key=K;module=/path.so";

function parsePkcs11(rest: string): Pkcs11Spec {
  const fields = new Map<string, string>();
  for (const part of rest.split(";")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = eq < 0 ? "" : part.slice(0, eq);
    if (!["token", "slot", "key", "module"].includes(name) || fields.has(name)) {
      throw new UserError(
        `pkcs11 SPEC: unknown or repeated field "${part}": use token=, slot=, key=, module=`,
      );
    }
    fields.set(name, decodeURIComponent(part.slice(eq + 1)));
  }
  const module = fields.get("module") ?? process.env.COFFER_PKCS11_MODULE;
  const key = fields.get("key");
  const token = fields.get("token");
  const slot = fields.get("slot");
  if (!module)
    throw new UserError("pkcs11 SPEC: give module=/path/to/pkcs11.so or set COFFER_PKCS11_MODULE");
  if (!key) throw new UserError("pkcs11 SPEC: give key=LABEL (the secret key's CKA_LABEL)");
  if ((token === undefined) === (slot === undefined)) {
    throw new UserError("pkcs11 SPEC: give exactly one of token=LABEL or slot=N");
  }
  if (slot !== undefined && !/^\d+$/.test(slot))
    throw new UserError("pkcs11 SPEC: slot= takes a number");
  return { module, key, token, slot: slot === undefined ? undefined : Number(slot) };
}

/** Parses one --kms SPEC. Throws UserError naming the problem. */
export function parseKmsSpec(spec: string): RemoteKeyProvider {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? "" : spec.slice(colon + 1);
  if (rest === "") throw new UserError(`--kms ${spec}: expected ${kmsSpecHelp}`);
  switch (kind) {
    case "aws-kms":
      return new RemoteKeyProvider(new AwsKmsService(rest));
    case "vault":
      return new RemoteKeyProvider(new VaultTransitService(rest));
    case "gcp-kms":
      return new RemoteKeyProvider(new GcpKmsService(rest));
    case "pkcs11":
      return new RemoteKeyProvider(new Pkcs11Service(parsePkcs11(rest)));
  }
  throw new UserError(`--kms ${spec}: unknown key service "${kind}": expected ${kmsSpecHelp}`);
}

/**
 * The provider that made a stanza, rebuilt from its args (key rotate re-wraps with it).
 * PKCS#11 stanzas do not record the module path: it comes from a matching --kms SPEC or
 * COFFER_PKCS11_MODULE. Returns null for stanzas that are not a key service's.
 */
export function providerForStanza(
  args: readonly string[],
  given: readonly RemoteKeyProvider[],
): RemoteKeyProvider | null {
  const [type, reference] = args;
  const same = given.find((g) => g.service.stanzaType === type && g.reference === reference);
  if (same) return same;
  if (reference === undefined) return null;
  switch (type) {
    case "coffer-aws-kms":
      return parseKmsSpec(`aws-kms:${reference}`);
    case "coffer-vault":
      return parseKmsSpec(`vault:${reference}`);
    case "coffer-gcp-kms":
      return parseKmsSpec(`gcp-kms:${reference}`);
    case "coffer-pkcs11":
      return process.env.COFFER_PKCS11_MODULE ? parseKmsSpec(`pkcs11:${reference}`) : null;
  }
  return null;
}
