// The OS image catalog model: each entry keeps the values as the user wrote them (served unchanged on the
// Kube-DC API) and, beside them, the parsed form that the rest of osimg works with.
import { z } from "zod";
import { BOOT_DEVICES, FEATURES, FIRMWARES } from "./fields.ts";
import { Finding } from "./findings.ts";

export const EntrySpec = z.object({
  name: z.string().optional(),
  cloudUser: z.string().optional(),
  imageUrl: z.string().optional(),
  minMemoryBytes: z.number().int().optional(),
  minVcpu: z.number().int().optional(),
  minStorageBytes: z.number().int().optional(),
  firmware: z.enum(FIRMWARES),
  machineType: z.string().optional(),
  features: z.array(z.enum(FEATURES)),
  cloudInit: z.string().optional(),
  bootOrder: z.array(z.enum(BOOT_DEVICES)),
  additionalDisks: z.array(z.string()),
  upstreamUrl: z.string().optional(),
  mirrorPath: z.string().optional(),
  sha256: z.string().optional(),
  containerDisk: z.object({ repo: z.string(), tag: z.string().optional() }).optional(),
  discovery: z.record(z.string(), z.unknown()).optional(),
  familyId: z.string().optional(),
});
export type EntrySpec = z.infer<typeof EntrySpec>;

export const CatalogEntry = z.object({
  /** A stable, URL-safe identifier derived from OS_NAME ("Ubuntu 24.04" -> "ubuntu-24.04"). */
  id: z.string(),
  /** Position in the images list (0-based). */
  index: z.number().int(),
  line: z.number().int(),
  column: z.number().int(),
  /** The entry exactly as the catalog holds it: UPPER_SNAKE keys, values as written. */
  values: z.record(z.string(), z.unknown()),
  spec: EntrySpec,
  findings: z.array(Finding),
  /** True when the entry has no error findings. */
  valid: z.boolean(),
});
export type CatalogEntry = z.infer<typeof CatalogEntry>;

export const CatalogFormat = z.enum(["images.yaml", "configmap"]);
export type CatalogFormat = z.infer<typeof CatalogFormat>;

/** A catalog document as parsed: entries and every finding, errors included. */
export interface ParsedCatalog {
  format: CatalogFormat;
  entries: CatalogEntry[];
  findings: Finding[];
}

export function entryId(name: string | undefined, index: number): string {
  const slug = (name ?? "")
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 63)
    .replace(/[-.]+$/, "");
  return slug === "" ? `entry-${index}` : slug;
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === "error");
}
