// The UI's pure parts: reading image checks leniently, positions in the editor's text, line marks.
import { describe, expect, it } from "vitest";
import type { Finding } from "../../src/catalog/findings.ts";
import { entryChecks, isChecked, readCheck } from "../../web/src/catalog/verification.ts";
import { lineMarks, offsetAt, positionAt } from "../../web/src/editor/text.ts";

describe("image checks", () => {
  it("reads booleans, status words and objects, and says 'not checked' for the rest", () => {
    expect(readCheck(undefined)).toEqual({ status: "not-checked" });
    expect(readCheck(true)).toEqual({ status: "pass" });
    expect(readCheck(false)).toEqual({ status: "fail" });
    expect(readCheck("Verified")).toEqual({ status: "pass" });
    expect(readCheck("in progress")).toEqual({ status: "pending" });
    expect(readCheck("unverified")).toEqual({ status: "unknown" });
    expect(readCheck({ ok: false, reason: "HTTP 404" })).toEqual({ status: "fail", detail: "HTTP 404" });
    expect(readCheck({ status: "mismatch", message: "sha256 differs" })).toEqual({
      status: "fail",
      detail: "sha256 differs",
    });
    expect(readCheck({ verdict: "unsafe" })).toEqual({ status: "fail" });
    expect(readCheck(42)).toEqual({ status: "unknown" });
  });

  it("gives the four checks of an entry by id, in a fixed order", () => {
    const checks = entryChecks({ "debian-13": { boot: "passed", checksumVerified: true } }, "debian-13");
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ["reachable", "not-checked"],
      ["checksum", "pass"],
      ["safeFormat", "not-checked"],
      ["bootTest", "pass"],
    ]);
    expect(isChecked(checks)).toBe(true);
    expect(isChecked(entryChecks(undefined, "debian-13"))).toBe(false);
    expect(isChecked(entryChecks({ other: { reachable: true } }, "debian-13"))).toBe(false);
  });
});

describe("editor positions", () => {
  const text = "images:\n  - OS_NAME: a\n\nend";

  it("maps line:column to offsets and back", () => {
    for (const offset of [0, 7, 8, 12, 22, 23, text.length]) {
      const { line, column } = positionAt(text, offset);
      expect(offsetAt(text, line, column)).toBe(offset);
    }
    expect(positionAt(text, text.indexOf("OS_NAME"))).toEqual({ line: 2, column: 5 });
  });

  it("clamps positions past a line's end or the text's end", () => {
    expect(offsetAt(text, 1, 99)).toBe(text.indexOf("\n"));
    expect(offsetAt(text, 99, 1)).toBe(text.lastIndexOf("\n") + 1);
    expect(offsetAt(text, 0, 0)).toBe(0);
  });

  it("marks each line once, with its most severe finding", () => {
    const f = (line: number, severity: Finding["severity"]): Finding => ({
      severity,
      line,
      column: 1,
      code: "x",
      path: "",
      message: `${severity} on ${line}`,
    });
    const marks = lineMarks([f(5, "warning"), f(2, "info"), f(5, "error"), f(5, "warning")]);
    expect(marks.map((m) => [m.line, m.severity, m.findings.length])).toEqual([
      [2, "info", 1],
      [5, "error", 3],
    ]);
  });
});
