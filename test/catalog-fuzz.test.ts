// The parser meets thousands of mutated real catalogs and hostile inputs: it never throws, every finding
// has a position inside the input, and each input is handled in bounded time (a hang detector with a wide
// margin, not a performance target — the benchmark measures speed).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCatalog } from "../src/catalog/parse.ts";
import { BUILTIN_CATALOG_TEXT, configMapYaml, fixture } from "./support/catalogs.ts";

const SEEDS = [
  BUILTIN_CATALOG_TEXT,
  configMapYaml(BUILTIN_CATALOG_TEXT),
  fixture("kube-dc/os-images-configmap.yaml"),
  fixture("kube-dc/document-examples.yaml"),
  fixture("kube-dc/configmap-from-cluster.yaml"),
  JSON.stringify(
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      data: { "images.yaml": fixture("kube-dc/document-examples.yaml") },
    },
    null,
    2,
  ),
];

const HANG_LIMIT_MS = 10_000;

function checkInvariants(text: string): void {
  const started = performance.now();
  const result = parseCatalog(text);
  const elapsed = performance.now() - started;
  expect(elapsed).toBeLessThan(HANG_LIMIT_MS);
  const lines = text.split("\n");
  for (const f of result.findings) {
    expect(
      Number.isInteger(f.line) && f.line >= 1 && f.line <= lines.length,
      `line ${f.line} of ${lines.length}`,
    ).toBe(true);
    const length = (lines[f.line - 1] as string).length;
    expect(
      Number.isInteger(f.column) && f.column >= 1 && f.column <= length + 1,
      `column ${f.column} of ${length}`,
    ).toBe(true);
    expect(f.message.length).toBeGreaterThan(0);
  }
  for (const entry of result.entries)
    expect(entry.valid).toBe(!entry.findings.some((f) => f.severity === "error"));
}

type Mutation = (lines: string[]) => string[];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((n) => (lines: string[]) => lines.filter((_, i) => i !== n % lines.length)),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(
    ([n, shift]) =>
      (lines: string[]) =>
        lines.map((l, i) =>
          i === n % lines.length ? (shift >= 0 ? " ".repeat(shift) + l : l.slice(-shift)) : l,
        ),
  ),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (lines: string[]) => {
    const copy = [...lines];
    copy.splice(b % (copy.length + 1), 0, lines[a % lines.length] as string);
    return copy;
  }),
  fc.tuple(fc.nat(), fc.nat(), fc.string({ unit: "binary", maxLength: 8 })).map(
    ([n, at, junk]) =>
      (lines: string[]) =>
        lines.map((l, i) =>
          i === n % lines.length ? l.slice(0, at % (l.length + 1)) + junk + l.slice(at % (l.length + 1)) : l,
        ),
  ),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom(
        "x".repeat(100_000),
        "9".repeat(400),
        "[[[[{{{{",
        "&a [*a, *a]",
        "\u0000\u0001",
        "'''\"\"\"",
        "|\n|-\n>+",
      ),
    )
    .map(
      ([n, value]) =>
        (lines: string[]) =>
          lines.map((l, i) => (i === n % lines.length ? l.replace(/:\s.*$/, `: ${value}`) : l)),
    ),
  fc.tuple(fc.nat(), fc.nat({ max: 20 })).map(
    ([n, count]) =>
      (lines: string[]) =>
        lines.map((l, i) => (i === n % lines.length ? l.replace(/"/g, "").repeat(count) : l)),
  ),
);

describe("parser robustness", () => {
  it("never throws and keeps positions valid on thousands of mutated real catalogs", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SEEDS),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (seed, mutations) => {
          const lines = mutations.reduce((acc, m) => m(acc), seed.split("\n"));
          checkInvariants(lines.join("\n"));
        },
      ),
      { numRuns: 2500 },
    );
  });

  it("handles random bytes", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 2000 }), (text) => checkInvariants(text)),
      { numRuns: 500 },
    );
  });

  it("handles random YAML-ish token soup", () => {
    const token = fc.constantFrom(
      "images:",
      "- ",
      "OS_NAME:",
      " ",
      "\n",
      "  ",
      "|",
      ">",
      '"',
      "'",
      "[",
      "]",
      "{",
      "}",
      ",",
      "#",
      "&a",
      "*a",
      "!!str",
      "---",
      "...",
      ":",
      "?",
      "%YAML 1.2",
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 300 }), (tokens) => checkInvariants(tokens.join(""))),
      { numRuns: 1000 },
    );
  });

  it.each([
    ["deep flow nesting", `images: ${"[".repeat(20_000)}${"]".repeat(20_000)}\n`],
    [
      "deep block nesting",
      `images:\n${Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i)}- `).join("\n")}x\n`,
    ],
    ["deep map nesting", Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n")],
    [
      "an alias bomb",
      `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nimages:\n  - OS_NAME: *d\n    CLOUD_USER: u\n    OS_IMAGE_URL: https://x/y\n`,
    ],
    ["a 10 MB catalog", `images:\n${"  - OS_NAME: x\n".repeat(700_000)}`],
    ["a 10 MB single line", `images: "${"x".repeat(10 * 1024 * 1024)}"`],
    [
      "a huge CLOUD_INIT",
      `images:\n  - OS_NAME: x\n    CLOUD_USER: u\n    OS_IMAGE_URL: https://x/y\n    CLOUD_INIT: |\n      #cloud-config\n${"      a: b\n".repeat(200_000)}`,
    ],
    ["CRLF line ends", BUILTIN_CATALOG_TEXT.replace(/\n/g, "\r\n")],
    ["a byte-order mark", `\uFEFF${BUILTIN_CATALOG_TEXT}`],
    ["tabs for indentation", BUILTIN_CATALOG_TEXT.replace(/^ {4}/gm, "\t")],
  ])("handles %s", (_name, text) => {
    checkInvariants(text);
  });

  it("refuses inputs over the size limit before parsing, with a finding", () => {
    const result = parseCatalog(`images:\n${"  - OS_NAME: x\n".repeat(700_000)}`);
    expect(result.findings.map((f) => f.code)).toEqual(["catalog.too_large"]);
  });
});
