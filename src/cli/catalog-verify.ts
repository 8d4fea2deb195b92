// `osimg catalog verify PATH`: probes every entry's image (bounded parallelism) and prints a table.
import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { buildCatalog } from "../catalog/catalog.ts";
import { FetchPolicy } from "../images/fetch-policy.ts";
import { type EntryCheck, verifyEntries } from "../images/verify.ts";
import { formatBytes } from "../units/quantity.ts";
import { formatFinding } from "./catalog.ts";
import { renderTable } from "./table.ts";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a whole number of 1 or more");
  return n;
}

export function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("a number of seconds above 0");
  return n;
}

function checksumCell(c: EntryCheck["checksum"]): string {
  if (c.status === "verified") return `verified (${c.algorithm})`;
  if (c.status === "mismatch") return "MISMATCH";
  if (c.expected) return `published (${c.algorithm}), not hashed`;
  return "none found";
}

function reachableCell(c: EntryCheck): string {
  if (c.reachable) return "yes";
  const why = c.problems.find((p) => p.code === "unreachable" || p.code === "no_url")?.message ?? "";
  return `no: ${why.replace(/^unreachable: /, "")}`;
}

export function renderChecks(checks: readonly EntryCheck[]): string {
  const rows = checks.map((c) => [
    c.entry,
    reachableCell(c),
    c.format ? `${c.format}${c.compression ? `+${c.compression}` : ""}` : "",
    c.virtualSize !== undefined ? formatBytes(c.virtualSize) : "",
    c.minStorage !== undefined
      ? `${formatBytes(c.minStorage)}${c.sizeCheck === "too_small" ? " TOO SMALL" : ""}`
      : "",
    c.reachable ? checksumCell(c.checksum) : "",
    c.safety ? (c.safety.safe ? "safe" : "UNSAFE") : "",
    `${(c.ms / 1000).toFixed(1)}s`,
  ]);
  return renderTable(
    ["ENTRY", "REACHABLE", "FORMAT", "VIRTUAL", "MIN_STORAGE", "CHECKSUM", "SAFETY", "TIME"],
    rows,
  );
}

export function registerCatalogVerify(catalog: Command): void {
  catalog
    .command("verify")
    .description("probe every entry's image: reachable, format, size vs MIN_STORAGE, checksum, safety")
    .argument("<path>", "an images.yaml file or ConfigMap manifest")
    .option("--json", "print the results as JSON")
    .option("--concurrency <n>", "entries probed at once", positiveInt, 4)
    .option("--timeout <seconds>", "per request, until the server answers", seconds, 10)
    .option("--hash", "download every image whole to compare its checksum (slow)")
    .action(
      async (
        path: string,
        options: { json?: boolean; concurrency: number; timeout: number; hash?: boolean },
      ) => {
        let text: string;
        try {
          text = await readFile(path, "utf8");
        } catch (error) {
          process.stderr.write(`osimg: cannot read ${path}: ${(error as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        const catalog = buildCatalog(text, { kind: "file", location: path });
        for (const f of catalog.findings.filter((x) => x.severity === "error"))
          process.stderr.write(`${formatFinding(path, f)}\n`);
        const entries = catalog.entries.filter((e) => e.spec.imageUrl);
        let done = 0;
        const checks = await verifyEntries(entries, {
          policy: FetchPolicy.open(),
          concurrency: options.concurrency,
          timeoutMs: options.timeout * 1000,
          hash: options.hash ?? false,
          onResult: (c) => {
            done++;
            if (!options.json && process.stderr.isTTY)
              process.stderr.write(`\r${done}/${entries.length} checked (${c.entry})\x1b[K`);
          },
        });
        if (!options.json && process.stderr.isTTY) process.stderr.write("\r\x1b[K");
        if (options.json) {
          process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
        } else {
          process.stdout.write(`${renderChecks(checks)}\n`);
          for (const c of checks)
            for (const p of c.problems) process.stdout.write(`${c.entry}: ${p.severity}: ${p.message}\n`);
          const bad = checks.filter((c) => !c.ok).length;
          const unreachable = checks.filter((c) => !c.reachable).length;
          process.stderr.write(
            `${checks.length} entries: ${checks.length - bad} ok, ${bad} with errors (${unreachable} unreachable)\n`,
          );
        }
        process.exitCode = checks.some((c) => !c.ok) ? 1 : 0;
      },
    );
}
