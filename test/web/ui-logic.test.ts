// The UI's pure parts: reading image checks leniently, positions in the editor's text, line marks.
import { describe, expect, it } from "vitest";
import type { Finding } from "../../src/catalog/findings.ts";
import { type EntryVerification, entryChecks } from "../../web/src/catalog/verification.ts";
import { lineMarks, offsetAt, positionAt } from "../../web/src/editor/text.ts";

const check = (over: Partial<NonNullable<EntryVerification["check"]>> = {}): EntryVerification["check"] => ({
  entry: "debian-13",
  reachable: true,
  format: "qcow2",
  sizeCheck: "ok",
  checksum: { status: "verified", algorithm: "sha512", source: "https://cloud.debian.org/SHA512SUMS" },
  safety: { safe: true, reasons: [] },
  problems: [],
  ok: true,
  bytesRead: 65536,
  ms: 120,
  checkedAt: "2026-05-01T10:00:00.000Z",
  ...over,
});
const statuses = (result: ReturnType<typeof entryChecks>) => result.checks.map((c) => [c.id, c.status]);

describe("image checks", () => {
  it("reads the verifier's result: reachable, checksum, safe format; the boot test is not checked yet", () => {
    const result = entryChecks(
      { "debian-13": { entry: "debian-13", state: "done", check: check() } },
      "debian-13",
    );
    expect(statuses(result)).toEqual([
      ["reachable", "pass"],
      ["checksum", "pass"],
      ["safeFormat", "pass"],
      ["bootTest", "not-checked"],
    ]);
    expect(result.checks[1]?.detail).toBe("sha512 from https://cloud.debian.org/SHA512SUMS");
    expect(result.checkedAt).toBe("2026-05-01T10:00:00.000Z");
  });

  it("says why a check failed, and what could not be checked", () => {
    const unsafe = check({
      checksum: { status: "mismatch", expected: "aa", actual: "bb" },
      safety: {
        safe: false,
        reasons: [
          { code: "qcow2.backing", severity: "error", message: "has a backing file: /etc/passwd" },
          { code: "qcow2.v3", severity: "info", message: "qcow2 v3" },
        ],
      },
      problems: [{ code: "size.small", severity: "error", message: "MIN_STORAGE is smaller than the image" }],
    });
    const result = entryChecks({ x: { entry: "x", state: "done", check: unsafe } }, "x");
    expect(result.checks.map((c) => [c.status, c.detail])).toEqual([
      ["pass", undefined],
      ["fail", "expected aa, got bb"],
      ["fail", "has a backing file: /etc/passwd"],
      ["not-checked", undefined],
    ]);
    expect(result.problems).toEqual([
      { severity: "error", message: "MIN_STORAGE is smaller than the image" },
    ]);

    const unreachable = check({
      reachable: false,
      safety: undefined,
      checksum: { status: "unverified", reason: "no checksum file found" },
      problems: [{ code: "fetch.status", severity: "error", message: "HTTP 404 from the server" }],
    });
    expect(
      entryChecks({ x: { entry: "x", state: "done", check: unreachable } }, "x").checks.map((c) => [
        c.status,
        c.detail,
      ]),
    ).toEqual([
      ["fail", "HTTP 404 from the server"],
      ["unknown", "no checksum file found"],
      ["not-checked", "the image was not inspected"],
      ["not-checked", undefined],
    ]);
  });

  it("shows a first check under way as pending, and no report as not checked", () => {
    expect(statuses(entryChecks({ x: { entry: "x", state: "running" } }, "x")).map((s) => s[1])).toEqual([
      "pending",
      "pending",
      "pending",
      "not-checked",
    ]);
    const none = entryChecks({ other: { entry: "other", state: "done" } }, "x");
    expect(none.state).toBeUndefined();
    expect(none.checks.every((c) => c.status === "not-checked")).toBe(true);
    expect(entryChecks(undefined, "x").state).toBeUndefined();
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
