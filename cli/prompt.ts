import { UserError } from "../src/errors.js";

/** Reads a line from the terminal without echoing it. */
export async function readPassphraseFromTerminal(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new UserError("no passphrase given and no terminal to ask on");
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let line = "";
  try {
    for await (const data of stdin) {
      for (const ch of (data as Buffer).toString("utf8")) {
        if (ch === "\r" || ch === "\n") return line;
        if (ch === "\u0003") throw new UserError("interrupted");
        if (ch === "\u007f" || ch === "\b") line = line.slice(0, -1);
        else line += ch;
      }
    }
    return line;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}
