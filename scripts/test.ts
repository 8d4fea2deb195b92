// The project's test command (`npm test`): system packages, lint, type check, then the test suite.
// Ends with one plain line "N passed, N failed" that CI reads.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureSystemPackages } from "./system-deps.ts";

let passed = 0;
let failed = 0;

function step(name: string, command: string, args: string[]): boolean {
  process.stdout.write(`\n== ${name}: ${command} ${args.join(" ")}\n`);
  const result = spawnSync(command, args, { stdio: "inherit" });
  const ok = result.status === 0;
  process.stdout.write(`== ${name}: ${ok ? "ok" : "FAILED"}\n`);
  return ok;
}

const bin = (name: string) => join("node_modules", ".bin", name);

for (const [name, command, args] of [
  ["lint", bin("biome"), ["check", "."]],
  ["typecheck", bin("tsc"), ["-p", "."]],
  // The web UI: browser code without Node types, then its build script and component tests.
  ["typecheck web", bin("tsc"), ["-p", "web"]],
  ["typecheck web tests", bin("tsc"), ["-p", join("web", "tsconfig.node.json")]],
] as const) {
  if (step(name, command, [...args])) passed++;
  else failed++;
}

if (!ensureSystemPackages("test")) failed++;

const reportDir = mkdtempSync(join(tmpdir(), "osimg-test-"));
const report = join(reportDir, "vitest.json");
const extra = process.argv.slice(2);
step("tests", process.execPath, [
  bin("vitest"),
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${report}`,
  ...extra,
]);
try {
  const results = JSON.parse(readFileSync(report, "utf8")) as {
    numPassedTests: number;
    numFailedTests: number;
    testResults: { status: string; assertionResults: unknown[] }[];
  };
  // A file that fails before running any test (an import error) counts as one failure.
  const brokenFiles = results.testResults.filter(
    (f) => f.status === "failed" && f.assertionResults.length === 0,
  ).length;
  passed += results.numPassedTests;
  failed += results.numFailedTests + brokenFiles;
} catch {
  process.stdout.write("the test runner wrote no report\n");
  failed++;
}
rmSync(reportDir, { recursive: true, force: true });
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
