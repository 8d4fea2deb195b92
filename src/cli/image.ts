// `osimg image inspect|pull|list|rm`: the image intake from the terminal. The CLI fetches whatever URL
// its user names (FetchPolicy.open); the server's fetches are the guarded ones.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { buildCatalog } from "../catalog/catalog.ts";
import type { CatalogEntry } from "../catalog/model.ts";
import { BUILTIN_CATALOG, defaultDataDir } from "../config/paths.ts";
import { pinnedDigest } from "../images/checksums.ts";
import { FetchPolicy } from "../images/fetch-policy.ts";
import { type Declared, parseDeclaredFormat, verdictSummary } from "../images/policy.ts";
import { isUrl, type ProbeReport, probe } from "../images/probe.ts";
import { ImageStore, PullError, type PullProgress } from "../images/store.ts";
import { formatBytes } from "../units/quantity.ts";
import { localVmsOnImage } from "../vms/providers/qemu/provider.ts";
import { seconds } from "./catalog-verify.ts";
import { renderTable } from "./table.ts";

function sized(bytes: number | undefined): string {
  return bytes === undefined ? "unknown" : `${formatBytes(bytes)} (${bytes} bytes)`;
}

function describeFormat(r: ProbeReport): string {
  const disk = r.inspection?.inner ?? r.inspection;
  if (!disk) return "unknown";
  const d = disk.details;
  const parts: string[] = [disk.format];
  if (disk.format === "qcow2" && d.version)
    parts.push(
      `v${d.version as number} (compat ${d.compat as string}), compression ${d.compressionType as string}`,
    );
  if (disk.format === "vmdk" && d.createType) parts.push(String(d.createType));
  if (disk.format === "vhd" && d.diskType) parts.push(String(d.diskType));
  if (disk.format === "vdi" && d.imageType) parts.push(String(d.imageType));
  if (disk.format === "iso" && d.volumeId !== undefined)
    parts.push(`volume "${d.volumeId as string}"${d.bootable ? ", bootable" : ""}`);
  if (disk.clusterSize) parts.push(`cluster ${formatBytes(disk.clusterSize)}`);
  if (disk.partitions && disk.partitions.scheme !== "none")
    parts.push(
      `${disk.partitions.scheme.toUpperCase()} with ${disk.partitions.partitions.length} partition(s)`,
    );
  const text = parts.join(", ");
  return r.compression ? `${text} inside ${r.compression}` : text;
}

export function renderProbe(r: ProbeReport): string {
  const lines: [string, string][] = [["image", r.target]];
  if (r.kind === "url") {
    const h = r.http;
    lines.push([
      "reachable",
      !r.reachable
        ? `no: ${r.error ?? ""}`
        : `yes (HTTP ${h?.status}${h?.rangeSupported ? ", Range supported" : ", no Range support: streamed prefix"}${h?.redirects.length ? `, ${h.redirects.length} redirect(s) to ${h.finalUrl}` : ""})`,
    ]);
    if (h?.etag) lines.push(["etag", h.etag]);
    if (h?.lastModified) lines.push(["modified", h.lastModified]);
  } else if (!r.reachable) lines.push(["readable", `no: ${r.error ?? ""}`]);
  if (r.reachable) {
    if (r.error) lines.push(["error", r.error]);
    lines.push(["format", describeFormat(r)]);
    if (r.declared)
      lines.push([
        "declared",
        `${[r.declared.format, r.declared.compression].filter(Boolean).join(" in ")} by ${r.declared.by}`,
      ]);
    lines.push(["virtual size", sized(r.virtualSize)]);
    lines.push(["file size", sized(r.size)]);
    if (r.safety) {
      lines.push(["safety", r.safety.safe ? "safe" : "UNSAFE"]);
      for (const reason of r.safety.reasons)
        lines.push(["", `${reason.severity}: ${reason.message} [${reason.code}]`]);
    }
    const c = r.checksum;
    lines.push([
      "checksum",
      c.status === "verified"
        ? `verified: ${c.algorithm} ${c.actual} (${c.source})`
        : c.status === "mismatch"
          ? `MISMATCH: ${c.reason}`
          : `unverified: ${c.reason}${c.expected ? `\n${"".padEnd(14)}expected ${c.algorithm} ${c.expected} (${c.source})` : ""}`,
    ]);
    for (const note of [...(r.inspection?.notes ?? []), ...(r.inspection?.inner?.notes ?? [])])
      lines.push(["note", note]);
  }
  lines.push([
    "read",
    `${r.bytesRead} bytes to classify${r.bytesHashed !== undefined ? `, ${r.bytesHashed} hashed` : ""}, in ${r.ms} ms`,
  ]);
  return lines.map(([k, v]) => `${k.padEnd(13)} ${v}`).join("\n");
}

export async function loadCatalogEntries(
  path: string | undefined,
  dataDir: string,
): Promise<{ entries: CatalogEntry[]; path: string }> {
  const seeded = join(dataDir, "images.yaml");
  const file = path ?? (existsSync(seeded) ? seeded : BUILTIN_CATALOG);
  const catalog = buildCatalog(await readFile(file, "utf8"), { kind: "file", location: file });
  return { entries: catalog.entries, path: file };
}

export function progressReporter(): { onProgress: (p: PullProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    let lastPhase = "";
    return {
      onProgress: (p) => {
        if (p.phase !== lastPhase && p.phase !== "download" && p.phase !== "done")
          process.stderr.write(`${p.phase}…\n`);
        if (p.phase === "download" && lastPhase !== "download" && p.resumedFrom)
          process.stderr.write(`resuming at ${formatBytes(p.resumedFrom)}\n`);
        lastPhase = p.phase;
      },
      stop: () => undefined,
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "{phase} [{bar}] {percentage}% | {got} / {size} | {speed}",
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const t0 = Date.now();
  return {
    onProgress: (p) => {
      const total = p.total ?? Math.max(p.received, 1);
      const payload = {
        phase: p.phase.padEnd(8),
        got: formatBytes(p.received),
        size: p.total !== undefined ? formatBytes(p.total) : "?",
        speed: `${formatBytes(((p.received - (p.resumedFrom ?? 0)) / Math.max(1, Date.now() - t0)) * 1000)}/s`,
      };
      if (!started) {
        bar.start(total, p.received, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(p.received, payload);
      }
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

export function registerImageCommands(program: Command): Command {
  const image = program
    .command("image")
    .description("inspect, pull and list OS images (the local image store)");

  image
    .command("inspect")
    .description("what an image is, read cheaply (HTTP Range): format, sizes, safety verdict, checksum")
    .argument("<url|path>", "an http(s) URL or a local file")
    .option("--json", "print the report as JSON")
    .option("--format <format>", "the format the image is declared to be (default: from its name)")
    .option("--sha256 <hex>", "the expected sha256 (like OS_IMAGE_SHA256)")
    .option("--hash", "download (or read) the whole image to compute its digests (local files: always)")
    .option("--no-discover", "do not look for SHA256SUMS & co. beside the image")
    .option("--timeout <seconds>", "until the server answers", seconds, 15)
    .action(
      async (
        target: string,
        options: {
          json?: boolean;
          format?: string;
          sha256?: string;
          hash?: boolean;
          discover: boolean;
          timeout: number;
        },
      ) => {
        let declared: Declared | undefined;
        try {
          declared = options.format ? parseDeclaredFormat(options.format) : undefined;
        } catch (error) {
          process.stderr.write(`osimg: --format: ${(error as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        const pinned = pinnedDigest(options.sha256);
        if (options.sha256 && !pinned) {
          process.stderr.write(`osimg: --sha256 "${options.sha256}" is not 64 hex digits\n`);
          process.exitCode = 2;
          return;
        }
        const report = await probe(target, {
          policy: FetchPolicy.open(),
          ...(declared ? { declared } : {}),
          ...(pinned ? { pinned } : {}),
          ...(options.hash ? { hash: true } : {}),
          discover: options.discover,
          timeoutMs: options.timeout * 1000,
        });
        process.stdout.write(
          options.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderProbe(report)}\n`,
        );
        process.exitCode =
          !report.reachable || report.error
            ? 2
            : !report.safety?.safe || report.checksum.status === "mismatch"
              ? 1
              : 0;
      },
    );

  image
    .command("pull")
    .description("download an image into the store: verified, resumable, atomic")
    .argument("<id|url>", "a catalog entry id (see `osimg catalog show`), an http(s) URL or a local file")
    .option(
      "--catalog <path>",
      "catalog to find entry ids in (default: the data directory's, else the built-in one)",
    )
    .option("--data-dir <dir>", "where osimg keeps its data", defaultDataDir())
    .option("--format <format>", "the format the image is declared to be (default: from its name)")
    .option(
      "--sha256 <hex>",
      "the expected sha256 (default: the entry's OS_IMAGE_SHA256, else a published checksum)",
    )
    .option("--require-checksum", "refuse an image that has no checksum to verify against")
    .option("--timeout <seconds>", "until the server answers", seconds, 15)
    .option("--json", "print the stored image's record as JSON")
    .action(
      async (
        target: string,
        options: {
          catalog?: string;
          dataDir: string;
          format?: string;
          sha256?: string;
          requireChecksum?: boolean;
          timeout: number;
          json?: boolean;
        },
      ) => {
        let source = target;
        let entry: CatalogEntry | undefined;
        if (!isUrl(target) && !existsSync(target)) {
          const { entries, path } = await loadCatalogEntries(options.catalog, options.dataDir);
          entry = entries.find((e) => e.id === target);
          if (!entry?.spec.imageUrl) {
            process.stderr.write(
              `osimg: "${target}" is neither a URL, a file, nor an entry of ${path}` +
                `${entry ? " with an OS_IMAGE_URL" : ""}; entries: ${entries.map((e) => e.id).join(", ")}\n`,
            );
            process.exitCode = 2;
            return;
          }
          source = entry.spec.imageUrl;
        }
        let declared: Declared | undefined;
        try {
          declared = options.format ? parseDeclaredFormat(options.format) : undefined;
        } catch (error) {
          process.stderr.write(`osimg: --format: ${(error as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        const store = ImageStore.forDataDir(options.dataDir, {
          policy: FetchPolicy.open(),
          timeoutMs: options.timeout * 1000,
        });
        const progress = progressReporter();
        const abort = new AbortController();
        const onSignal = () => abort.abort();
        process.once("SIGINT", onSignal);
        try {
          const sha = options.sha256 ?? entry?.spec.sha256;
          const record = await store.pull(source, {
            onProgress: progress.onProgress,
            ...(sha ? { pinnedSha256: sha } : {}),
            ...(declared ? { declared } : {}),
            ...(entry ? { catalogEntry: entry.id } : {}),
            ...(options.requireChecksum ? { requireChecksum: true } : {}),
            signal: abort.signal,
          });
          progress.stop();
          if (options.json) process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
          else {
            process.stdout.write(
              `stored ${record.sha256}\n  ${record.format}, virtual size ${formatBytes(record.virtualSize)}, ${formatBytes(record.size)} on disk` +
                `${record.compression ? ` (downloaded ${formatBytes(record.download.size)} ${record.compression})` : ""}\n` +
                `  checksum ${record.checksum.status}${record.checksum.source ? ` (${record.checksum.source})` : record.checksum.reason ? `: ${record.checksum.reason}` : ""}\n` +
                `  ${store.pathOf(record.sha256)}\n`,
            );
          }
        } catch (error) {
          progress.stop();
          const e = error as Error;
          process.stderr.write(`osimg: pull failed: ${e.message}\n`);
          if (error instanceof PullError && error.verdict && !error.verdict.safe)
            process.stderr.write(`  ${verdictSummary(error.verdict)}\n`);
          process.exitCode = error instanceof PullError && error.code === "interrupted" ? 3 : 1;
        } finally {
          process.off("SIGINT", onSignal);
        }
      },
    );

  image
    .command("list")
    .description("list the images in the store")
    .option("--data-dir <dir>", "where osimg keeps its data", defaultDataDir())
    .option("--json", "print the records as JSON")
    .action(async (options: { dataDir: string; json?: boolean }) => {
      const store = ImageStore.forDataDir(options.dataDir);
      const records = await store.list();
      if (options.json) {
        process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
        return;
      }
      const rows = records.map((r) => [
        r.sha256.slice(0, 12),
        r.format,
        formatBytes(r.virtualSize),
        formatBytes(r.size),
        r.checksum.status,
        r.fetchedAt.replace(/\.\d+Z$/, "Z"),
        r.catalogEntry ?? "",
        r.sourceUrl,
      ]);
      process.stdout.write(
        `${renderTable(["ID", "FORMAT", "VIRTUAL", "SIZE", "CHECKSUM", "FETCHED", "ENTRY", "SOURCE"], rows)}\n`,
      );
    });

  image
    .command("rm")
    .description("remove images from the store")
    .argument("<ids...>", "sha256 digests or unique prefixes (6+ digits) from `osimg image list`")
    .option("--data-dir <dir>", "where osimg keeps its data", defaultDataDir())
    .action(async (ids: string[], options: { dataDir: string }) => {
      const store = ImageStore.forDataDir(options.dataDir, {
        usersOf: (sha256) => localVmsOnImage(options.dataDir, sha256),
      });
      let missing = 0;
      for (const id of ids) {
        try {
          const removed = await store.remove(id);
          if (removed) process.stdout.write(`removed ${removed.sha256} (${removed.sourceUrl})\n`);
          else {
            process.stderr.write(`osimg: no stored image "${id}"\n`);
            missing++;
          }
        } catch (error) {
          process.stderr.write(`osimg: ${(error as Error).message}\n`);
          missing++;
        }
      }
      process.exitCode = missing > 0 ? 1 : 0;
    });
  return image;
}
