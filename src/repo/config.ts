import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ChunkerParams } from "../chunker/fastcdc.js";
import { defaultChunkerParams } from "../chunker/fastcdc.js";
import { formatVersion } from "../crypto/seal.js";
import { IntegrityError, RepoNotFoundError } from "../errors.js";

/**
 * The repository config: public parameters, stored as JSON so a reader can find the
 * repository id before any key is unwrapped, and authenticated by an HMAC under the
 * config key once one is (docs/FORMAT.md §Config).
 */
export interface RepoConfig {
  version: number;
  id: string;
  chunker: ChunkerParams;
  packSize: number;
  created: string;
  /** The key generation whose config key made `mac`. */
  macGeneration: number;
}

export const defaultPackSize = 16 * 1024 * 1024;

export function newConfig(): RepoConfig {
  return {
    version: formatVersion,
    id: randomBytes(32).toString("hex"),
    chunker: { ...defaultChunkerParams },
    packSize: defaultPackSize,
    created: new Date().toISOString(),
    macGeneration: 1,
  };
}

/** Fixed field order, so the MAC does not depend on how a JSON library orders keys. */
function canonical(c: RepoConfig): string {
  return JSON.stringify([
    "coffer-config",
    c.version,
    c.id,
    c.chunker.min,
    c.chunker.avg,
    c.chunker.max,
    c.packSize,
    c.created,
    c.macGeneration,
  ]);
}

function mac(c: RepoConfig, configKey: Buffer): Buffer {
  return createHmac("sha256", configKey).update(canonical(c)).digest();
}

export function encodeConfig(c: RepoConfig, configKey: Buffer): Buffer {
  return Buffer.from(
    `${JSON.stringify({ ...c, mac: mac(c, configKey).toString("hex") }, null, 2)}\n`,
  );
}

/** Parses the config without authenticating it; call authenticateConfig once keys are known. */
export function parseConfig(raw: Buffer, location: string): RepoConfig & { mac: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new IntegrityError(
      `${location}/config is not valid JSON: the repository config is damaged`,
    );
  }
  const c = v as Partial<RepoConfig & { mac: string }>;
  const ok =
    typeof c === "object" &&
    c !== null &&
    typeof c.version === "number" &&
    typeof c.id === "string" &&
    /^[0-9a-f]{64}$/.test(c.id) &&
    typeof c.chunker?.min === "number" &&
    typeof c.chunker?.avg === "number" &&
    typeof c.chunker?.max === "number" &&
    typeof c.packSize === "number" &&
    typeof c.created === "string" &&
    typeof c.macGeneration === "number" &&
    typeof c.mac === "string" &&
    /^[0-9a-f]{64}$/.test(c.mac);
  if (!ok)
    throw new IntegrityError(`${location}/config is malformed: the repository config is damaged`);
  if (c.version !== formatVersion) {
    throw new RepoNotFoundError(
      `${location} uses repository format ${c.version}; this coffer reads format ${formatVersion}`,
    );
  }
  return c as RepoConfig & { mac: string };
}

export function authenticateConfig(c: RepoConfig & { mac: string }, configKey: Buffer): RepoConfig {
  const want = mac(c, configKey);
  const got = Buffer.from(c.mac, "hex");
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw new IntegrityError("the repository config failed authentication: it was modified");
  }
  const { mac: _mac, ...config } = c;
  return config;
}
