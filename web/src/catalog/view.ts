// What the catalog table shows and how it sorts and filters: pure functions over catalog entries. Values
// are shown as written in the catalog; sizes sort by their parsed value ("2Gi" after "1G").
import type { Finding } from "../../../src/catalog/findings.ts";
import type { CatalogEntry } from "../../../src/catalog/model.ts";

/** A value as the catalog holds it, or "" when the entry does not set it. */
export function written(entry: CatalogEntry, key: string): string {
  const value = entry.values[key];
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export type StatusLevel = "valid" | "warning" | "error";

export interface EntryStatus {
  level: StatusLevel;
  errors: Finding[];
  warnings: Finding[];
}

export function entryStatus(entry: CatalogEntry): EntryStatus {
  const errors = entry.findings.filter((f) => f.severity === "error");
  const warnings = entry.findings.filter((f) => f.severity === "warning");
  const level: StatusLevel = errors.length > 0 ? "error" : warnings.length > 0 ? "warning" : "valid";
  return { level, errors, warnings };
}

export const SORT_KEYS = [
  "name",
  "cloudUser",
  "vcpu",
  "memory",
  "storage",
  "firmware",
  "machine",
  "status",
] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDirection = "asc" | "desc";

const STATUS_RANK: Record<StatusLevel, number> = { error: 0, warning: 1, valid: 2 };

function sortValue(entry: CatalogEntry, key: SortKey): string | number | undefined {
  switch (key) {
    case "name":
      return written(entry, "OS_NAME");
    case "cloudUser":
      return written(entry, "CLOUD_USER");
    case "vcpu":
      return entry.spec.minVcpu;
    case "memory":
      return entry.spec.minMemoryBytes;
    case "storage":
      return entry.spec.minStorageBytes;
    case "firmware":
      return entry.spec.firmware;
    case "machine":
      return written(entry, "MACHINE_TYPE");
    case "status":
      return STATUS_RANK[entryStatus(entry).level];
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** A sorted copy; entries without a value go last in either direction, ties keep catalog order. */
export function sortEntries(
  entries: readonly CatalogEntry[],
  key: SortKey,
  direction: SortDirection,
): CatalogEntry[] {
  const sign = direction === "asc" ? 1 : -1;
  return entries
    .map((entry) => ({ entry, value: sortValue(entry, key) }))
    .sort((a, b) => {
      const missingA = a.value === undefined || a.value === "";
      const missingB = b.value === undefined || b.value === "";
      if (missingA || missingB)
        return missingA === missingB ? a.entry.index - b.entry.index : missingA ? 1 : -1;
      const order =
        typeof a.value === "number" && typeof b.value === "number"
          ? a.value - b.value
          : collator.compare(String(a.value), String(b.value));
      return order * sign || a.entry.index - b.entry.index;
    })
    .map((x) => x.entry);
}

// Cloud-init is long and matches nearly any word; it is not searched.
const UNSEARCHED = new Set(["CLOUD_INIT"]);

/** Entries with every word of the query in one of their written values (case-insensitive). */
export function filterEntries(entries: readonly CatalogEntry[], query: string): CatalogEntry[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...entries];
  return entries.filter((entry) => {
    const haystack = [
      entry.id,
      ...Object.keys(entry.values)
        .filter((k) => !UNSEARCHED.has(k))
        .map((k) => written(entry, k)),
    ]
      .join("\n")
      .toLowerCase();
    return words.every((w) => haystack.includes(w));
  });
}

/** "3:7" */
export function position(f: Pick<Finding, "line" | "column">): string {
  return `${f.line}:${f.column}`;
}
