// The catalog as the UI reads and writes it: GET /api/v1/catalog (polled with If-None-Match, so that an
// edit of the catalog file shows within a second or two, at the cost of a 304 otherwise), the Kube-DC
// list of OS images for the Create VM dialog, and the catalog source (GET/PUT /api/v1/catalog/source)
// for the YAML editor, with optimistic concurrency through If-Match.
import { queryOptions, useQuery } from "@tanstack/react-query";
import type { Finding } from "../../../src/catalog/findings.ts";
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import type { EntryVerification } from "../catalog/verification.ts";
import { getRevalidated, HttpError, requestJson } from "./http.ts";

export interface SeverityCounts {
  error: number;
  warning: number;
  info: number;
}

export interface CatalogSourceRef {
  kind: "file" | "builtin" | "configmap" | "last-good";
  location: string;
}

export interface CatalogReload {
  at: string;
  ok: boolean;
  version: string;
  source: CatalogSourceRef;
  counts: SeverityCounts;
  findings: Finding[];
}

/** GET /api/v1/catalog (CatalogResponse in src/server/routes/catalog.ts). */
export interface CatalogResponse {
  version: string;
  source: CatalogSourceRef;
  format: "images.yaml" | "configmap";
  servingLastGood: boolean;
  lastReload: CatalogReload | null;
  counts: SeverityCounts & { entries: number };
  entries: CatalogEntry[];
  findings: Finding[];
  /** The image checks per entry id, when the server verifies images. */
  verification?: Record<string, EntryVerification>;
}

/** How often the catalog is asked for: an edit of the file shows within about this long. */
export const CATALOG_POLL_MS = 1000;

export const catalogQuery = queryOptions({
  queryKey: ["catalog"],
  // Revalidated: an unchanged catalog is a 304 and the same object, so nothing renders again.
  queryFn: ({ signal }) => getRevalidated<CatalogResponse>("/api/v1/catalog", signal),
  refetchInterval: CATALOG_POLL_MS,
});

export function useCatalog() {
  return useQuery(catalogQuery);
}

export interface CatalogSourceText {
  text: string;
  /** Opaque; sent back in If-Match so that a save never overwrites someone else's. */
  version: string;
}

export const catalogSourceQuery = queryOptions({
  queryKey: ["catalog", "source"],
  queryFn: ({ signal }) => requestJson<CatalogSourceText>("/api/v1/catalog/source", { signal }),
  // The editor holds the user's text; a background refetch must not replace it.
  staleTime: Number.POSITIVE_INFINITY,
  refetchOnWindowFocus: false,
});

export type SaveOutcome =
  | { kind: "saved"; version: string }
  | { kind: "conflict"; message: string }
  | { kind: "invalid"; message: string; findings: Finding[] };

/** Saves the catalog text if the source is still at `version`; refusals are outcomes, not errors. */
export async function saveCatalogSource(text: string, version: string): Promise<SaveOutcome> {
  try {
    const saved = await requestJson<{ version: string }>("/api/v1/catalog/source", {
      method: "PUT",
      headers: { "if-match": `"${version}"` },
      body: JSON.stringify({ text }),
    });
    return { kind: "saved", version: saved.version };
  } catch (error) {
    // 409 is also a read-only source ("read_only"): that is a failure to show, not a conflict to resolve.
    if (error instanceof HttpError && error.status === 409 && error.body.error === "conflict")
      return { kind: "conflict", message: error.body.message };
    if (error instanceof HttpError && error.status === 422)
      return { kind: "invalid", message: error.body.message, findings: error.body.findings ?? [] };
    throw error;
  }
}

/** An entry of GET /api/create-vm/{namespace}/os-images: the catalog's keys and values as written. */
export type OsImage = Record<string, unknown> & { OS_NAME?: string };

/** The Kube-DC Create VM dialog's list of operating systems (the same call its UI makes). */
export function osImagesQuery(namespace: string) {
  return queryOptions({
    queryKey: ["os-images", namespace],
    queryFn: ({ signal }) =>
      getRevalidated<OsImage[]>(`/api/create-vm/${encodeURIComponent(namespace)}/os-images`, signal),
  });
}
