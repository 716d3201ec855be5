import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { UserError } from "../errors.js";
import type { CofferConfig } from "./schema.js";
import { configSchema, inlineSecretKeys } from "./schema.js";
import { describeValue, lineOf, valueAt } from "./yaml-location.js";

/** A config file that does not validate: one line per problem, each "file:line: key: ...". */
export class ConfigError extends UserError {
  readonly problems: string[];
  constructor(problems: string[]) {
    // main.ts prints "coffer: " before the message: give every line the same prefix.
    super(problems.join("\ncoffer: "));
    this.problems = problems;
  }
}

export interface LoadedConfig {
  file: string;
  config: CofferConfig;
  /** "file:line: key" for a key path, for problems found after loading (an unset variable). */
  where(keyPath: readonly PropertyKey[]): string;
}

/**
 * The config file to read: --config, else COFFER_CONFIG, else the first of
 * /etc/coffer/coffer.yaml and $XDG_CONFIG_HOME/coffer/coffer.yaml (~/.config) that exists.
 */
export async function findConfigFile(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (explicit !== undefined && explicit !== "") return explicit;
  if (env.COFFER_CONFIG) return env.COFFER_CONFIG;
  const candidates = [
    "/etc/coffer/coffer.yaml",
    path.join(
      env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), ".config"),
      "coffer/coffer.yaml",
    ),
  ];
  for (const c of candidates) {
    try {
      await stat(c);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new UserError(
    `no config file: give --config FILE, set COFFER_CONFIG, or create ${candidates.join(" or ")}`,
  );
}

export function keyPathText(keyPath: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of keyPath) {
    out += typeof seg === "number" ? `[${seg}]` : `${out === "" ? "" : "."}${String(seg)}`;
  }
  return out;
}

interface ZodDefLike {
  type: string;
  shape?: Record<string, { _zod: { def: ZodDefLike } }>;
  innerType?: { _zod: { def: ZodDefLike } };
  valueType?: { _zod: { def: ZodDefLike } };
  element?: { _zod: { def: ZodDefLike } };
}

/** The keys the schema allows at a key path, for "unknown key: expected one of ...". */
function allowedKeys(keyPath: readonly PropertyKey[]): string[] {
  let def = (configSchema as unknown as { _zod: { def: ZodDefLike } })._zod.def;
  const unwrap = () => {
    while (def.type === "optional" && def.innerType) def = def.innerType._zod.def;
  };
  unwrap();
  for (const seg of keyPath) {
    const next =
      def.type === "object"
        ? def.shape?.[String(seg)]
        : def.type === "record"
          ? def.valueType
          : def.type === "array"
            ? def.element
            : undefined;
    if (next === undefined) return [];
    def = next._zod.def;
    unwrap();
  }
  return def.type === "object" ? Object.keys(def.shape ?? {}) : [];
}

const secretMessage =
  "secrets are not written in the config file: use passphrase_file: FILE (mode 0600), passphrase_env: VARIABLE, identity_file: FILE or kms: SPEC";

/** Every key named like an inline secret, anywhere in the data. */
function inlineSecrets(data: unknown, at: PropertyKey[] = []): PropertyKey[][] {
  if (data === null || typeof data !== "object") return [];
  const out: PropertyKey[][] = [];
  for (const [k, v] of Object.entries(data)) {
    const p = [...at, Array.isArray(data) ? Number(k) : k];
    if (!Array.isArray(data) && inlineSecretKeys.has(k)) out.push(p);
    out.push(...inlineSecrets(v, p));
  }
  return out;
}

interface Problem {
  keyPath: PropertyKey[];
  message: string;
}

function problemsOf(issues: readonly z.core.$ZodIssue[], data: unknown): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const keyPath = issue.path as PropertyKey[];
    switch (issue.code) {
      case "unrecognized_keys":
        for (const key of issue.keys) {
          if (inlineSecretKeys.has(key)) continue; // reported by inlineSecrets
          const allowed = allowedKeys(keyPath);
          out.push({
            keyPath: [...keyPath, key],
            message: `unknown key: expected one of ${allowed.join(", ")}`,
          });
        }
        break;
      case "invalid_type": {
        const v = valueAt(data, keyPath);
        // zod's own wording ("Invalid input: ...") where the schema gives none.
        const expected = issue.message.startsWith("Invalid input")
          ? `expected ${issue.expected}`
          : issue.message;
        out.push({
          keyPath,
          message:
            v === undefined ? `missing: ${expected}` : `${expected}, got ${describeValue(v)}`,
        });
        break;
      }
      case "invalid_key":
        out.push({ keyPath, message: issue.issues[0]?.message ?? issue.message });
        break;
      default:
        out.push({ keyPath, message: issue.message });
    }
  }
  return out;
}

/** References to files that must exist: secrets and the CA bundle. */
async function missingFiles(config: CofferConfig): Promise<Problem[]> {
  const out: Problem[] = [];
  for (const [name, repo] of Object.entries(config.repositories)) {
    for (const key of ["passphrase_file", "identity_file", "ca_file"] as const) {
      const file = repo[key];
      if (file === undefined) continue;
      try {
        await access(file, constants.R_OK);
      } catch (err) {
        out.push({
          keyPath: ["repositories", name, key],
          message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code}): expected a readable file`,
        });
      }
    }
  }
  return out;
}

export interface LoadOptions {
  /** Check that referenced files exist (off to validate a sample written for another host). */
  checkFiles?: boolean;
  warn?: (message: string) => void;
}

/** Reads, parses and validates a config file; throws ConfigError naming every problem. */
export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UserError(
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const line = e.linePos?.[0]?.line ?? 1;
        const first = (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
        return `${file}:${line}: invalid YAML: ${first}`;
      }),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const where = (keyPath: readonly PropertyKey[]) => {
    const key = keyPathText(keyPath);
    return `${file}:${lineOf(doc, lines, keyPath) ?? 1}${key === "" ? "" : `: ${key}`}`;
  };
  const fail = (problems: Problem[]) =>
    new ConfigError(problems.map((p) => `${where(p.keyPath)}: ${p.message}`));

  const problems: Problem[] = inlineSecrets(data).map((keyPath) => ({
    keyPath,
    message: secretMessage,
  }));
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) problems.push(...problemsOf(parsed.error.issues, data));
  if (problems.length > 0 || !parsed.success) throw fail(problems);
  const config = parsed.data;

  for (const [name, job] of Object.entries(config.jobs)) {
    if (config.repositories[job.repository] === undefined) {
      const known = Object.keys(config.repositories).join(", ") || "none defined";
      problems.push({
        keyPath: ["jobs", name, "repository"],
        message: `no repository named ${job.repository}: expected one of repositories: (${known})`,
      });
    }
  }
  if (opts.checkFiles !== false) problems.push(...(await missingFiles(config)));
  if (problems.length > 0) throw fail(problems);

  const namesSecretFiles = Object.values(config.repositories).some(
    (r) => r.passphrase_file !== undefined || r.identity_file !== undefined,
  );
  const st = await stat(file);
  if (namesSecretFiles && (st.mode & 0o077) !== 0) {
    opts.warn?.(`${file} is readable by group or others and names secret files: chmod 600 ${file}`);
  }
  return { file, config, where };
}
