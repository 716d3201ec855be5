import { readFile } from "node:fs/promises";
import type { Argv } from "yargs";
import { UserError } from "../../src/errors.js";
import { AgeIdentityProvider, AgeRecipientProvider } from "../../src/kms/age-identity.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import type { KeyUnwrapper, KeyWrapper } from "../../src/kms/provider.js";
import { RemoteKeyProvider } from "../../src/kms/remote-key.js";
import { providerForStanza } from "../../src/kms/spec.js";
import { describeStanzas, KeyRing } from "../../src/repo/key-ring.js";
import type { KeyArgs } from "../key-options.js";
import { kmsProviders, unwrappers } from "../key-options.js";
import { printJson, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { backendFor } from "../session.js";

// coffer key list|add|remove|rotate: manage the envelopes in keys/ (docs/KEYS.md).

type KeyCmdArgs = RepoArgs & {
  json?: boolean;
  quiet?: boolean;
  recipient?: string[];
  "new-passphrase-file"?: string;
  "new-generation"?: boolean;
  "writer-only"?: boolean;
  id?: string;
};

async function withRing<T>(
  args: KeyCmdArgs,
  keys: KeyUnwrapper[],
  fn: (ring: KeyRing) => Promise<T>,
): Promise<T> {
  const ring = await KeyRing.open(await backendFor(args), keys);
  try {
    return await fn(ring);
  } finally {
    ring.wipe();
  }
}

function say(args: KeyCmdArgs, text: string): void {
  if (!args.quiet && !args.json) process.stdout.write(`${text}\n`);
}

const list = {
  command: "list",
  describe: "list the key envelopes: id, provider, key reference, created, generation",
  handler: async (args: KeyCmdArgs) =>
    withRing(args, await unwrappers(args), async (ring) => {
      const rows = ring.entries.map((e) => {
        const d = e.session
          ? { provider: "session", reference: "writer-only backup session", version: undefined }
          : describeStanzas(e.stanzas);
        return {
          id: e.name,
          provider: d.provider,
          reference: d.reference,
          keyVersion: d.version ?? null,
          created: e.record?.created?.toISOString() ?? null,
          generation: e.record?.generation ?? null,
          opened: e.record !== null,
        };
      });
      if (args.json) {
        printJson({ generation: ring.current.generation, keys: rows });
        return;
      }
      for (const r of rows) {
        const ref = r.keyVersion ? `${r.reference} (v${r.keyVersion})` : r.reference;
        process.stdout.write(
          `${r.id.slice(0, 12)}  ${r.provider.padEnd(10)}  ${(r.created ?? "-").replace(/\.\d+Z$/, "Z").padEnd(20)}  gen ${r.generation ?? "?"}  ${ref}\n`,
        );
      }
      process.stdout.write(
        `${rows.length} key envelope(s); current key generation ${ring.current.generation}; "?" = not opened by the given keys\n`,
      );
    }),
};

const add = {
  command: "add",
  describe:
    "add an envelope (--kms SPEC, --recipient AGE1..., --new-passphrase-file FILE); needs a key that opens one",
  builder: (y: Argv) =>
    y
      .option("recipient", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "age recipient (age1... or age1pq1...)",
      })
      .option("new-passphrase-file", {
        type: "string",
        describe: "wrap for the passphrase in FILE",
      })
      .option("scrypt-work-factor", {
        type: "number",
        describe: "log2 of scrypt's cost for --new-passphrase-file (10-20)",
      })
      .option("writer-only", {
        type: "boolean",
        describe: "the new envelope can back up but not read old data (docs/KEYS.md)",
      }),
  handler: async (args: KeyCmdArgs) => {
    // --kms names the new wrappers here; the opening key comes from the other options
    // (or COFFER_KMS).
    const newWrappers: KeyWrapper[] = [...kmsProviders(args)];
    for (const r of args.recipient ?? []) newWrappers.push(new AgeRecipientProvider(r));
    if (args["new-passphrase-file"]) {
      const text = (await readFile(args["new-passphrase-file"], "utf8")).replace(/\r?\n$/, "");
      newWrappers.push(new PassphraseProvider(text, (args as KeyArgs)["scrypt-work-factor"]));
    }
    if (newWrappers.length === 0) {
      throw new UserError(
        "key add: give --kms SPEC, --recipient AGE1... or --new-passphrase-file FILE",
      );
    }
    const openers = await unwrappers({ ...args, kms: [] });
    await withRing(args, openers, async (ring) => {
      const added: string[] = [];
      for (const w of newWrappers) {
        const name = args["writer-only"] ? await ring.addWriter(w) : await ring.add(w);
        added.push(name);
        say(
          args,
          `added ${args["writer-only"] ? "writer-only " : ""}key ${name.slice(0, 12)} (${w.kind} ${w.reference}) at generation ${ring.current.generation}`,
        );
      }
      if (args.json) printJson({ added });
    });
  },
};

const remove = {
  command: "remove <id>",
  describe: "remove an envelope (refuses the last one the given keys open)",
  builder: (y: Argv) =>
    y.positional("id", { type: "string", describe: "key id (prefix) from key list" }),
  handler: async (args: KeyCmdArgs) =>
    withRing(args, await unwrappers(args), async (ring) => {
      const name = await ring.remove(String(args.id));
      say(args, `removed key ${name.slice(0, 12)}`);
      if (args.json) printJson({ removed: name });
    }),
};

/** The wrapper that re-creates an opened envelope for a new generation, or null. */
function wrapperFor(
  stanzas: string[][],
  given: KeyUnwrapper[],
  kms: RemoteKeyProvider[],
): KeyWrapper | null {
  const first = stanzas[0];
  if (first === undefined) return null;
  if (first[0] === "scrypt") {
    const pass = given.find((g) => g instanceof PassphraseProvider) as
      | PassphraseProvider
      | undefined;
    return pass?.withWorkFactor(Number(first[2])) ?? null;
  }
  if (stanzas.length === 1 && first[0] === "X25519") {
    return (
      (given.find((g) => g instanceof AgeIdentityProvider) as AgeIdentityProvider | undefined) ??
      null
    );
  }
  if (stanzas.length === 1) return providerForStanza(first, kms);
  return null;
}

const rotate = {
  command: "rotate",
  describe:
    "re-wrap key-service envelopes under the newest key version; --new-generation: a new repository secret for new data",
  builder: (y: Argv) =>
    y.option("new-generation", {
      type: "boolean",
      describe: "start a new key generation (old data stays readable; nothing is rewritten)",
    }),
  handler: async (args: KeyCmdArgs) => {
    const kms = kmsProviders(args);
    const openers = await unwrappers(args);
    await withRing(args, openers, async (ring) => {
      if (args["new-generation"]) {
        const wrappers = new Map<string, KeyWrapper>();
        for (const e of ring.entries) {
          if (e.record?.generation !== ring.current.generation) continue;
          const w = wrapperFor(e.stanzas, openers, kms);
          if (w) wrappers.set(e.name, w);
        }
        const r = await ring.newGeneration(wrappers);
        say(
          args,
          `key generation ${r.generation}: ${r.replaced} envelope(s) re-made; new data is sealed under the new secret`,
        );
        for (const name of r.left) {
          warn(
            `keys/${name.slice(0, 12)} still opens only older generations: re-add its owner with coffer key add, then key remove it`,
          );
        }
        if (args.json) printJson(r);
        return;
      }
      const done = await ring.rotate(kms.filter((k) => k instanceof RemoteKeyProvider));
      if (done.length === 0) {
        throw new UserError(
          "key rotate: no key-service envelope opened with the given keys: give --kms SPEC",
        );
      }
      for (const [from, to] of done)
        say(args, `re-wrapped key ${from.slice(0, 12)} as ${to.slice(0, 12)}`);
      if (args.json) printJson({ rotated: done.map(([from, to]) => ({ from, to })) });
    });
  },
};

export const keyCommand = {
  command: "key <command>",
  describe: "manage key envelopes: list, add, remove, rotate",
  builder: (y: Argv) =>
    y
      .command(list as never)
      .command(add as never)
      .command(remove as never)
      .command(rotate as never)
      .demandCommand(1, "give a key subcommand: list, add, remove or rotate"),
  handler: () => {},
};
