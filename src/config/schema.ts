import { z } from "zod";

// The schema of coffer.yaml (README §Config file). Every object is strict: a misspelt key
// is an error, not a setting silently ignored at 03:00. Messages say what is expected;
// src/config/load.ts prefixes them with file, line and key.

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: "expected a name of letters, digits, _ . -" });

const text = (what: string) =>
  z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}, not empty` });

const absolutePath = (what: string) =>
  text(what).refine((p) => p.startsWith("/"), { error: `expected ${what} as an absolute path` });

const count = (what: string) =>
  z
    .number({ error: `expected ${what}, a whole number` })
    .int({ error: `expected ${what}, a whole number` })
    .min(0, { error: `expected ${what}, a whole number >= 0` });

const flag = z.boolean({ error: "expected true or false" });

const list = <T extends z.ZodType>(item: T, what: string) =>
  z.array(item, { error: `expected a list of ${what}` });

/** A command as an argument list: run without a shell, so nothing is re-parsed. */
const argv = z
  .array(z.string({ error: "expected each argument as text" }), {
    error:
      "expected a command as a list, e.g. [systemctl, stop, app] (for a shell line: [sh, -c, '...'])",
  })
  .min(1, { error: "expected a command as a non-empty list of arguments" });

/** A URL that carries a password would put a secret in the config file and in logs. */
function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    return false;
  }
}

const repository = z
  .strictObject({
    path: absolutePath("the repository directory").optional(),
    url: text("an s3://bucket/prefix URL")
      .refine((u) => /^s3:\/\/[^/]+/.test(u), {
        error: "expected an s3://bucket/prefix URL (a local repository is given with path:)",
      })
      .optional(),
    passphrase_file: absolutePath("a file holding the passphrase (mode 0600)").optional(),
    passphrase_env: text("the name of an environment variable holding the passphrase")
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "expected an environment variable name" })
      .optional(),
    identity_file: absolutePath("an age identity file (mode 0600)").optional(),
    kms: text("a KMS key spec, as for --kms").optional(),
    s3_endpoint: text("an https:// endpoint URL").optional(),
    s3_region: text("an S3 region name").optional(),
    s3_path_style: flag.optional(),
    ca_file: absolutePath("a PEM file of CA certificates").optional(),
    insecure_http: flag.optional(),
    retry_lock: count("seconds to wait for a locked repository").optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.path === undefined) === (r.url === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "expected exactly one of path: (a directory) or url: (s3://bucket/prefix)",
      });
    }
  });

const dbUrl = (what: string) =>
  text(`a ${what} connection URL`).refine((u) => !hasPassword(u), {
    error: `a password in the URL is a secret: leave it out and use ${what === "PostgreSQL" ? "~/.pgpass or PGPASSFILE" : "an option file (~/.my.cnf)"}`,
  });

const sourceKinds = ["paths", "postgres", "mysql", "command"] as const;

const source = z
  .strictObject({
    paths: list(absolutePath("a path to back up"), "absolute paths")
      .min(1, { error: "expected at least one path" })
      .optional(),
    exclude: list(text("a glob"), "globs").optional(),
    postgres: dbUrl("PostgreSQL").optional(),
    mysql: dbUrl("MySQL").optional(),
    command: argv.optional(),
    stdin_name: text("a file name for the stream")
      .refine((n) => !n.includes("/") && n !== "." && n !== "..", {
        error: "expected a file name without '/'",
      })
      .optional(),
    pg_format: text("a pg_dump format").optional(),
    all_databases: flag.optional(),
  })
  .superRefine((s, ctx) => {
    const kinds = sourceKinds.filter((k) => s[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `expected exactly one of ${sourceKinds.map((k) => `${k}:`).join(", ")}${kinds.length > 1 ? ` (found ${kinds.join(", ")})` : ""}`,
      });
      return;
    }
    const only = (key: keyof typeof s, kinds: readonly string[]) => {
      if (s[key] !== undefined && !kinds.some((k) => s[k as keyof typeof s] !== undefined)) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `only goes with ${kinds.map((k) => `${k}:`).join(" or ")}`,
        });
      }
    };
    only("exclude", ["paths"]);
    only("pg_format", ["postgres"]);
    only("all_databases", ["postgres", "mysql"]);
    only("stdin_name", ["command", "postgres", "mysql"]);
    if (s.command !== undefined && s.stdin_name === undefined) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "expected stdin_name: (the file name the command's output is stored under)",
      });
    }
  });

const retention = z
  .strictObject({
    keep_last: count("a number of snapshots").optional(),
    keep_hourly: count("a number of hours").optional(),
    keep_daily: count("a number of days").optional(),
    keep_weekly: count("a number of weeks").optional(),
    keep_monthly: count("a number of months").optional(),
    keep_yearly: count("a number of years").optional(),
    keep_tag: list(text("a tag"), "tags").optional(),
  })
  .superRefine((r, ctx) => {
    const { keep_tag, ...counts } = r;
    if (!Object.values(counts).some((n) => (n ?? 0) > 0) && (keep_tag ?? []).length === 0) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "expected at least one keep_* rule above 0 (an empty policy would remove all)",
      });
    }
  });

const job = z.strictObject({
  repository: text("the name of a repository under repositories:"),
  sources: list(source, "sources").min(1, { error: "expected at least one source" }),
  tags: list(
    text("a tag").refine((t) => !t.includes(","), { error: "expected a tag without ','" }),
    "tags",
  ).optional(),
  host: text("a host name").optional(),
  retention: retention.optional(),
  prune: z
    .strictObject({
      max_unused: z
        .number({ error: "expected a percentage from 0 to 100" })
        .min(0, { error: "expected a percentage from 0 to 100" })
        .max(100, { error: "expected a percentage from 0 to 100" })
        .optional(),
    })
    .optional(),
  verify: z
    .strictObject({
      read_data_subset: text('a subset such as "5%" or "2/7"').regex(/^(\d+\/\d+|\d+(\.\d+)?%)$/, {
        error: 'expected a subset such as "5%" or "2/7"',
      }),
    })
    .optional(),
  hooks: z
    .strictObject({
      before: list(argv, "commands").optional(),
      after: list(argv, "commands").optional(),
    })
    .optional(),
});

export const configSchema = z.strictObject({
  log_file: absolutePath("a log file").optional(),
  metrics_file: absolutePath("a metrics file (*.prom)").optional(),
  repositories: z.record(name, repository, { error: "expected a mapping of repository names" }),
  jobs: z.record(name, job, { error: "expected a mapping of job names" }),
});

export type CofferConfig = z.infer<typeof configSchema>;
export type RepositoryConfig = z.infer<typeof repository>;
export type JobConfig = z.infer<typeof job>;
export type SourceConfig = z.infer<typeof source>;

/** Keys that would hold a secret inline: rejected with a pointer to the reference keys. */
export const inlineSecretKeys = new Set([
  "passphrase",
  "password",
  "secret",
  "token",
  "secret_access_key",
  "access_key",
  "private_key",
  "identity",
]);
