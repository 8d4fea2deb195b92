// Catalog verification: each entry's image probed (reachable, format, safety, checksum) and its virtual
// size held against MIN_STORAGE. Shared by `osimg catalog verify` and the server's background verifier.
import type { CatalogEntry } from "../catalog/model.ts";
import { formatBytes } from "../units/quantity.ts";
import type { ChecksumResult } from "./checksums.ts";
import { pinnedDigest } from "./checksums.ts";
import { FetchPolicy } from "./fetch-policy.ts";
import type { Reason, Verdict } from "./policy.ts";
import { probe } from "./probe.ts";

export interface EntryCheck {
  entry: string;
  name?: string;
  url?: string;
  reachable: boolean;
  format?: string;
  compression?: string;
  virtualSize?: number;
  minStorage?: number;
  /** "too_small" when MIN_STORAGE is below the virtual size: the import will fail. */
  sizeCheck: "ok" | "too_small" | "unknown";
  checksum: ChecksumResult;
  safety?: Verdict;
  contentLength?: number;
  etag?: string;
  lastModified?: string;
  finalUrl?: string;
  /** Everything wrong or worth knowing, errors first. */
  problems: Reason[];
  /** True when nothing is an error. */
  ok: boolean;
  bytesRead: number;
  ms: number;
  checkedAt: string;
}

export interface VerifyOptions {
  policy?: FetchPolicy;
  timeoutMs?: number;
  /** Download each image whole to compare its digest (slow; default false). */
  hash?: boolean;
  signal?: AbortSignal;
}

export async function verifyEntry(entry: CatalogEntry, options: VerifyOptions = {}): Promise<EntryCheck> {
  const started = Date.now();
  const url = entry.spec.imageUrl;
  const base = {
    entry: entry.id,
    ...(entry.spec.name ? { name: entry.spec.name } : {}),
    ...(url ? { url } : {}),
    ...(entry.spec.minStorageBytes !== undefined ? { minStorage: entry.spec.minStorageBytes } : {}),
    checkedAt: new Date().toISOString(),
  };
  if (!url) {
    const problems: Reason[] = [
      { code: "no_url", severity: "error", message: "the entry has no OS_IMAGE_URL" },
    ];
    return {
      ...base,
      reachable: false,
      sizeCheck: "unknown",
      checksum: { status: "unverified", reason: "no image URL" },
      problems,
      ok: false,
      bytesRead: 0,
      ms: 0,
    };
  }
  const pinned = pinnedDigest(entry.spec.sha256);
  const report = await probe(url, {
    policy: options.policy ?? FetchPolicy.open(),
    ...(pinned ? { pinned } : {}),
    hash: options.hash ?? false,
    timeoutMs: options.timeoutMs ?? 10_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const problems: Reason[] = [];
  if (!report.reachable)
    problems.push({ code: "unreachable", severity: "error", message: report.error ?? "unreachable" });
  else if (report.error) problems.push({ code: "not_inspectable", severity: "error", message: report.error });
  for (const r of report.safety?.reasons ?? []) if (r.severity !== "info") problems.push(r);
  let sizeCheck: EntryCheck["sizeCheck"] = "unknown";
  if (report.virtualSize !== undefined && entry.spec.minStorageBytes !== undefined) {
    sizeCheck = entry.spec.minStorageBytes >= report.virtualSize ? "ok" : "too_small";
    if (sizeCheck === "too_small")
      problems.push({
        code: "min_storage_too_small",
        severity: "error",
        message: `MIN_STORAGE ${String(entry.values.MIN_STORAGE)} (${formatBytes(entry.spec.minStorageBytes)}) is smaller than the image's virtual size ${formatBytes(report.virtualSize)}: import will fail`,
      });
  }
  if (report.checksum.status === "mismatch")
    problems.push({
      code: "checksum_mismatch",
      severity: "error",
      message: report.checksum.reason ?? "checksum mismatch",
    });
  else if (report.reachable && report.checksum.status === "unverified" && !report.checksum.expected)
    problems.push({
      code: "no_checksum",
      severity: "warning",
      message: report.checksum.reason ?? "no checksum",
    });
  problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1));
  const http = report.http;
  return {
    ...base,
    reachable: report.reachable,
    ...(report.format ? { format: report.format } : {}),
    ...(report.compression ? { compression: report.compression } : {}),
    ...(report.virtualSize !== undefined ? { virtualSize: report.virtualSize } : {}),
    sizeCheck,
    checksum: report.checksum,
    ...(report.safety ? { safety: report.safety } : {}),
    ...(report.size !== undefined ? { contentLength: report.size } : {}),
    ...(http?.etag ? { etag: http.etag } : {}),
    ...(http?.lastModified ? { lastModified: http.lastModified } : {}),
    ...(http && http.finalUrl !== url ? { finalUrl: http.finalUrl } : {}),
    problems,
    ok: !problems.some((p) => p.severity === "error"),
    bytesRead: report.bytesRead + (report.bytesHashed ?? 0),
    ms: Date.now() - started,
  };
}

/** Runs `task` over `items` with at most `concurrency` at once, in order of the results' arrival. */
export async function mapLimited<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return results;
}

export async function verifyEntries(
  entries: readonly CatalogEntry[],
  options: VerifyOptions & { concurrency?: number; onResult?: (check: EntryCheck) => void } = {},
): Promise<EntryCheck[]> {
  return mapLimited(entries, options.concurrency ?? 4, async (entry) => {
    const check = await verifyEntry(entry, options);
    options.onResult?.(check);
    return check;
  });
}
