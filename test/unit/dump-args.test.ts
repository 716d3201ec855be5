import { describe, expect, it } from "vitest";
import { UserError } from "../../src/errors.js";
import { splitCommand } from "../../src/source/command.js";
import { parseDbUrl, redactUrl } from "../../src/source/db-url.js";
import { tarPathParts } from "../../src/source/tar-source.js";

describe("--command splitting (no shell)", () => {
  it("splits on blanks; quotes group; nothing else is special", () => {
    expect(splitCommand("pg_dump -Fc  mydb")).toEqual(["pg_dump", "-Fc", "mydb"]);
    expect(splitCommand(`a 'b c' "d \\"e\\" \\\\" f\\ g`)).toEqual(["a", "b c", 'd "e" \\', "f g"]);
    expect(splitCommand("echo $HOME * | > ;")).toEqual(["echo", "$HOME", "*", "|", ">", ";"]);
    expect(splitCommand(`x''y "" z`)).toEqual(["xy", "", "z"]);
    expect(splitCommand('["a b", "c"]')).toEqual(["a b", "c"]);
  });
  it("refuses what it cannot split", () => {
    for (const bad of ["", "   ", "a 'b", 'a "b', "a\\", "[1,2]", "[]", "[nope"]) {
      expect(() => splitCommand(bad), bad).toThrow(UserError);
    }
  });
});

describe("database URLs", () => {
  it("takes a URL apart and never shows its password", () => {
    const u = parseDbUrl("postgres://me:p%40ss:w@db.example:6543/shop?sslmode=require", "postgres");
    expect(u).toMatchObject({
      user: "me",
      password: "p@ss:w",
      host: "db.example",
      port: "6543",
      database: "shop",
    });
    expect(u.params.get("sslmode")).toBe("require");
    expect(redactUrl("mysql://root:hunter2@h/db")).toBe("mysql://root:***@h/db");
    expect(redactUrl("mysql://root@h/db")).toBe("mysql://root@h/db");
    try {
      parseDbUrl("mysql://root:hunter2@h/db", "postgres");
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain("hunter2");
    }
  });
});

describe("tar entry names", () => {
  it("drops leading / and ./, keeps .. only as a literal name", () => {
    expect(tarPathParts("./a/b/")).toEqual({ parts: ["a", "b"], renamed: false });
    expect(tarPathParts("/etc/passwd")).toEqual({ parts: ["etc", "passwd"], renamed: false });
    expect(tarPathParts("a/../../x")).toEqual({
      parts: ["a", "%2E%2E", "%2E%2E", "x"],
      renamed: true,
    });
  });
});
