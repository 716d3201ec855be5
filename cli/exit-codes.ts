import type { ErrorKind } from "../src/errors.js";

/** The exit codes are a contract (README, `coffer --help`); scripts and cron rely on them. */
export const ExitCode = {
  ok: 0,
  fatal: 1,
  incomplete: 3,
  repoNotFound: 10,
  locked: 11,
  key: 12,
  integrity: 20,
} as const;

export function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case "user":
      return ExitCode.fatal;
    case "repo-not-found":
      return ExitCode.repoNotFound;
    case "lock":
      return ExitCode.locked;
    case "key":
      return ExitCode.key;
    case "integrity":
      return ExitCode.integrity;
  }
}

export const exitCodeHelp = `Exit codes:
  0   success
  1   fatal error (bad usage, unreadable input, I/O failure)
  3   backup finished, but some files could not be read (each named on stderr)
  10  repository not found
  11  repository is locked by another process
  12  wrong passphrase or key
  20  integrity error: stored data is damaged, missing or forged
coffer run exits with the worst code of its steps and jobs: 20 > 12 > 11 > 10 > 1 > 3 > 0`;

/**
 * The order `coffer run` combines the codes of its steps and jobs in, worst first: damaged
 * data outranks everything, then what stops every later run (a wrong key, a lock held
 * too long, a missing repository), then other failures, then a partial backup.
 */
const severity: readonly number[] = [
  ExitCode.integrity,
  ExitCode.key,
  ExitCode.locked,
  ExitCode.repoNotFound,
  ExitCode.fatal,
  ExitCode.incomplete,
  ExitCode.ok,
];

export function worstExitCode(codes: readonly number[]): number {
  const rank = (c: number) => {
    const i = severity.indexOf(c);
    return i === -1 ? severity.indexOf(ExitCode.fatal) : i;
  };
  return codes.reduce((worst, c) => (rank(c) < rank(worst) ? c : worst), ExitCode.ok as number);
}
