#!/usr/bin/env node
// The coffer command. It starts a passphrase repository's key derivation first (see
// early-unlock.ts), then loads the rest of the program while scrypt runs.
import { startEarlyUnlock } from "./early-unlock.js";

startEarlyUnlock(process.argv.slice(2), process.env);
await import("./cli.js");
