// The catalog on two APIs: Kube-DC's (entries exactly as written, byte for byte what Kube-DC answers)
// and osimg's own versioned one (parsed values, findings, reload state). A namespace with project
// overlays sees their entries after the global ones; their findings are on /api/v1/catalog (all
// overlays) and /api/v1/namespaces/{ns}/catalog (that namespace's).
import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { CatalogSource } from "../../catalog/catalog.ts";
import { countBySeverity, Finding } from "../../catalog/findings.ts";
import { CatalogEntry, CatalogFormat } from "../../catalog/model.ts";
import type { CatalogState, OverlayState } from "../../catalog/state.ts";
import { EntryBootTest } from "../../images/boot-tests.ts";
import { EntryVerification } from "../../images/schemas.ts";
import { ApiError, ErrorBody } from "../errors.ts";

const Counts = z.object({ error: z.number(), warning: z.number(), info: z.number() });

const ReloadSummary = z.object({
  at: z.string(),
  ok: z.boolean(),
  version: z.string(),
  source: CatalogSource,
  counts: Counts,
  findings: z.array(Finding),
});

export const OverlaySummary = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string().describe('the overlay version served in its namespace; "" when none is'),
  servingLastGood: z.boolean(),
  entries: z.number().describe("entries the namespace sees from this overlay"),
  lastReload: ReloadSummary.nullable(),
  conflicts: z
    .array(Finding)
    .describe("entries left out because their OS_NAME is already in the global catalog or another overlay"),
});

export const CatalogResponse = z.object({
  version: z.string().describe("sha256 of the served catalog's source text"),
  source: CatalogSource,
  format: CatalogFormat,
  servingLastGood: z
    .boolean()
    .describe("true when the latest reload was rejected and an older catalog is served"),
  lastReload: ReloadSummary.nullable(),
  counts: Counts.extend({ entries: z.number() }),
  entries: z.array(CatalogEntry),
  findings: z.array(Finding),
  verification: z
    .record(z.string(), EntryVerification)
    .optional()
    .describe("per entry id: the latest check of its image (reachable, format, size, checksum, safety)"),
  bootTest: z
    .record(z.string(), EntryBootTest)
    .optional()
    .describe(
      "per entry id: its boot test under way and the latest result about the image it names now (POST /api/v1/images/{id}/boot-test, osimg image test)",
    ),
  overlays: z
    .array(OverlaySummary)
    .describe(
      "project overlays: ConfigMaps labelled osimg.io/catalog=true adding entries to their namespace",
    ),
});

const NamespaceParams = z.object({
  namespace: z.string().describe("the project namespace (DNS-1123 label)"),
});

const noCatalog = () =>
  new ApiError(503, "catalog_unavailable", "no valid catalog has been loaded yet", {
    hint: "GET /api/v1/catalog shows the findings of the last reload",
  });

export function catalogRoutes(
  state: CatalogState,
  verification?: () => Record<string, z.infer<typeof EntryVerification>>,
  bootTests?: (entries: readonly CatalogEntry[]) => Record<string, EntryBootTest>,
): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/api/create-vm/:namespace/os-images",
      {
        config: { policy: { action: "catalog.read", scope: "namespace" } },
        schema: {
          summary: "OS images for the Create VM dialog (Kube-DC compatible)",
          description:
            "The catalog entries exactly as written in images.yaml. Supports ETag / If-None-Match.",
          tags: ["kube-dc"],
          params: NamespaceParams,
          response: { 200: z.array(z.record(z.string(), z.unknown())), 304: z.null(), 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const view = state.view(request.params.namespace);
        if (!view) throw noCatalog();
        reply.header("etag", view.kubeDcEtag).header("cache-control", "no-cache");
        if (matchesEtag(request.headers["if-none-match"], view.kubeDcEtag))
          return reply.status(304).send(null);
        // The body was serialized once when the catalog was loaded; a Buffer bypasses the serializer.
        return (reply as FastifyReply).type("application/json; charset=utf-8").send(view.kubeDcBody);
      },
    );

    /**
     * The catalog, or as one namespace sees it (with its overlays). Supports ETag / If-None-Match: the
     * tag is made of what the answer is made of, without serializing it: the served catalog, the latest
     * reload, the image checks (small, and they change on their own) and the overlays' versions.
     */
    const describeCatalog = (
      request: FastifyRequest,
      reply: FastifyReply,
      namespace: string | undefined,
    ): z.infer<typeof CatalogResponse> | FastifyReply => {
      const served = state.served;
      const reload = state.lastReload;
      if (!served && !reload) throw noCatalog();
      const catalog = served?.catalog;
      const checks = verification?.();
      const overlays = state.overlays(namespace);
      const entries = namespace === undefined ? (catalog?.entries ?? []) : state.entriesFor(namespace);
      const boots = bootTests?.(entries);
      const etag = `"${createHash("sha256")
        .update(
          JSON.stringify([
            namespace,
            catalog?.version,
            state.servingLastGood,
            reload?.at.getTime(),
            reload?.ok,
            reload?.version,
            checks,
            boots,
            overlays.map((o) => [
              o.namespace,
              o.name,
              o.served?.version,
              o.lastReload?.at.getTime(),
              o.conflicts,
            ]),
          ]),
        )
        .digest("base64url")
        .slice(0, 27)}"`;
      reply.header("etag", etag).header("cache-control", "no-cache");
      if (matchesEtag(request.headers["if-none-match"], etag)) return reply.status(304).send(null);
      const findings = [
        ...(catalog?.findings ?? []),
        ...overlays.flatMap((o) => overlayFindings(o, namespace)),
      ];
      return {
        version: catalog?.version ?? "",
        source: catalog?.source ?? (reload as NonNullable<typeof reload>).source,
        format: catalog?.format ?? "images.yaml",
        servingLastGood: state.servingLastGood,
        lastReload: reload ? summary(reload) : null,
        counts: { entries: entries.length, ...countBySeverity(findings) },
        entries: [...entries],
        findings,
        ...(checks ? { verification: checks } : {}),
        ...(boots ? { bootTest: boots } : {}),
        overlays: overlays.map((o) => overlaySummary(o, state)),
      };
    };

    app.get(
      "/api/v1/catalog",
      {
        config: { policy: { action: "catalog.read", scope: "cluster" } },
        schema: {
          summary: "The catalog with parsed values, findings and reload state",
          tags: ["catalog"],
          description:
            "Supports ETag / If-None-Match: the UI polls it every second, and an unchanged catalog answers 304. `overlays` lists every project overlay with its findings.",
          response: { 200: CatalogResponse, 304: z.null(), 503: ErrorBody },
        },
      },
      async (request, reply) => describeCatalog(request, reply, undefined),
    );

    app.get(
      "/api/v1/namespaces/:namespace/catalog",
      {
        config: { policy: { action: "catalog.read", scope: "namespace" } },
        schema: {
          summary: "The catalog as a namespace sees it: global entries and the namespace's overlays",
          description:
            "Entries of the namespace's overlays follow the global ones; `findings` holds the global catalog's and, for each overlay, those of its latest version (positions inside that ConfigMap's images.yaml, path prefixed with its namespace/name) and its entries left out for a taken OS_NAME. Supports ETag / If-None-Match.",
          tags: ["catalog"],
          params: NamespaceParams,
          response: { 200: CatalogResponse, 304: z.null(), 503: ErrorBody },
        },
      },
      async (request, reply) => describeCatalog(request, reply, request.params.namespace),
    );
  };
}

function summary(reload: NonNullable<CatalogState["lastReload"]>): z.infer<typeof ReloadSummary> {
  return {
    at: reload.at.toISOString(),
    ok: reload.ok,
    version: reload.version,
    source: reload.source,
    counts: countBySeverity(reload.findings),
    findings: reload.findings,
  };
}

function overlaySummary(overlay: OverlayState, state: CatalogState): z.infer<typeof OverlaySummary> {
  const seen = new Set(state.entriesFor(overlay.namespace));
  return {
    namespace: overlay.namespace,
    name: overlay.name,
    version: overlay.served?.version ?? "",
    servingLastGood:
      overlay.lastReload !== undefined && !overlay.lastReload.ok && overlay.served !== undefined,
    entries: overlay.served?.entries.filter((e) => seen.has(e)).length ?? 0,
    lastReload: overlay.lastReload ? summary(overlay.lastReload) : null,
    conflicts: overlay.conflicts,
  };
}

/** A namespace's view lists its overlays' findings beside the global ones, paths naming the overlay. */
function overlayFindings(overlay: OverlayState, namespace: string | undefined): z.infer<typeof Finding>[] {
  if (namespace === undefined) return [];
  const where = `${overlay.namespace}/${overlay.name}`;
  return [...(overlay.lastReload?.findings ?? []), ...overlay.conflicts].map((f) => ({
    ...f,
    path: f.path ? `${where}:${f.path}` : where,
  }));
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
