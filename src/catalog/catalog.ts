// A catalog ready to serve: parsed entries, findings, a content version, and the precomputed body of the
// Kube-DC response (built once per reload, so serving it costs no JSON work per request).
import { createHash } from "node:crypto";
import { z } from "zod";
import { countBySeverity, type Finding } from "./findings.ts";
import type { CatalogEntry, CatalogFormat } from "./model.ts";
import { parseCatalog } from "./parse.ts";

export const CatalogSource = z.object({
  kind: z.enum(["file", "builtin", "configmap", "last-good"]),
  /** A file path, or namespace/name of a ConfigMap. */
  location: z.string(),
});
export type CatalogSource = z.infer<typeof CatalogSource>;

export interface Catalog {
  /** sha256 of the source text: equal text, equal version, on every replica. */
  version: string;
  source: CatalogSource;
  format: CatalogFormat;
  entries: CatalogEntry[];
  findings: Finding[];
  text: string;
}

export interface ServedCatalog {
  catalog: Catalog;
  /** GET /api/create-vm/{namespace}/os-images: the entries exactly as the catalog holds them. */
  kubeDcBody: Buffer;
  kubeDcEtag: string;
}

export function catalogVersion(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function buildCatalog(text: string, source: CatalogSource): Catalog {
  const parsed = parseCatalog(text);
  const version = catalogVersion(text);
  return { version, source, format: parsed.format, entries: parsed.entries, findings: parsed.findings, text };
}

export function isServable(catalog: Catalog): boolean {
  return countBySeverity(catalog.findings).error === 0;
}

export function serve(catalog: Catalog): ServedCatalog {
  const kubeDcBody = Buffer.from(JSON.stringify(catalog.entries.map((e) => e.values)));
  const kubeDcEtag = `"${createHash("sha256").update(kubeDcBody).digest("base64url").slice(0, 27)}"`;
  return { catalog, kubeDcBody, kubeDcEtag };
}

/** A catalog that could not be read at all: no entries, one finding that says why. */
export function unreadableCatalog(source: CatalogSource, message: string): Catalog {
  return {
    version: "",
    source,
    format: "images.yaml",
    entries: [],
    findings: [{ severity: "error", code: "source.unreadable", path: "", line: 1, column: 1, message }],
    text: "",
  };
}
