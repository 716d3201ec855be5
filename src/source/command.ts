import * as path from "node:path";
import { UserError } from "../errors.js";
import { ChildDump } from "./child-dump.js";
import type { PreparedDump } from "./dump-source.js";

/**
 * Splits --command into an argument array, without a shell. Either a JSON array of
 * strings (`["pg_dump","-Fc","my db"]`), or words separated by blanks where
 * '...' keeps everything literally, "..." keeps blanks and takes \" and \\ as escapes,
 * and a backslash outside quotes escapes the next character. Nothing else is special:
 * no variables, globs, pipes or redirections.
 */
export function splitCommand(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    let v: unknown;
    try {
      v = JSON.parse(trimmed);
    } catch {
      throw new UserError("--command starts with '[' but is not a JSON array of strings");
    }
    if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === "string")) {
      throw new UserError("--command as JSON must be a non-empty array of strings");
    }
    return v as string[];
  }
  const words: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === " " || c === "\t" || c === "\n") {
      if (cur !== null) words.push(cur);
      cur = null;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new UserError("--command has an unclosed ' quote");
      cur = (cur ?? "") + text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      cur = cur ?? "";
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && (text[j + 1] === '"' || text[j + 1] === "\\")) j++;
        cur += text[j];
      }
      if (j >= text.length) throw new UserError('--command has an unclosed " quote');
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new UserError("--command ends with a backslash");
      cur = (cur ?? "") + text[++i];
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (cur !== null) words.push(cur);
  if (words.length === 0) throw new UserError("--command is empty");
  return words;
}

/** Starts an arbitrary dump command; only its program name is recorded (argv may hold secrets). */
export function prepareCommand(text: string, fileName: string): PreparedDump {
  const [command, ...args] = splitCommand(text);
  const tool = path.basename(command as string);
  return {
    fileName,
    label: `command:${tool}`,
    source: { kind: "command", tool },
    dump: new ChildDump({ label: tool, command: command as string, args }),
    cleanup: async () => {},
  };
}
