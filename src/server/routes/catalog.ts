// The catalog on two APIs: Kube-DC's (entries exactly as written, byte for byte what Kube-DC answers)
// and osimg's own versioned one (parsed values, findings, reload state).
import { createHash } from "node:crypto";
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { CatalogSource } from "../../catalog/catalog.ts";
import { countBySeverity, Finding } from "../../catalog/findings.ts";
import { CatalogEntry, CatalogFormat } from "../../catalog/model.ts";
import type { CatalogState } from "../../catalog/state.ts";
import { EntryVerification } from "../../images/schemas.ts";
import { ApiError, ErrorBody } from "../errors.ts";

const Counts = z.object({ error: z.number(), warning: z.number(), info: z.number() });

export const CatalogResponse = z.object({
  version: z.string().describe("sha256 of the served catalog's source text"),
  source: CatalogSource,
  format: CatalogFormat,
  servingLastGood: z
    .boolean()
    .describe("true when the latest reload was rejected and an older catalog is served"),
  lastReload: z
    .object({
      at: z.string(),
      ok: z.boolean(),
      version: z.string(),
      source: CatalogSource,
      counts: Counts,
      findings: z.array(Finding),
    })
    .nullable(),
  counts: Counts.extend({ entries: z.number() }),
  entries: z.array(CatalogEntry),
  findings: z.array(Finding),
  verification: z
    .record(z.string(), EntryVerification)
    .optional()
    .describe("per entry id: the latest check of its image (reachable, format, size, checksum, safety)"),
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
        const served = state.served;
        if (!served) throw noCatalog();
        reply.header("etag", served.kubeDcEtag).header("cache-control", "no-cache");
        if (matchesEtag(request.headers["if-none-match"], served.kubeDcEtag))
          return reply.status(304).send(null);
        // The body was serialized once when the catalog was loaded; a Buffer bypasses the serializer.
        return (reply as FastifyReply).type("application/json; charset=utf-8").send(served.kubeDcBody);
      },
    );

    app.get(
      "/api/v1/catalog",
      {
        config: { policy: { action: "catalog.read", scope: "cluster" } },
        schema: {
          summary: "The catalog with parsed values, findings and reload state",
          tags: ["catalog"],
          description:
            "Supports ETag / If-None-Match: the UI polls it every second, and an unchanged catalog answers 304.",
          response: { 200: CatalogResponse, 304: z.null(), 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const served = state.served;
        const reload = state.lastReload;
        if (!served && !reload) throw noCatalog();
        const catalog = served?.catalog;
        const checks = verification?.();
        // What the answer is made of, without serializing it: the served catalog, the latest reload and
        // the image checks (small, and they change on their own).
        const etag = `"${createHash("sha256")
          .update(
            JSON.stringify([
              catalog?.version,
              state.servingLastGood,
              reload?.at.getTime(),
              reload?.ok,
              reload?.version,
              checks,
            ]),
          )
          .digest("base64url")
          .slice(0, 27)}"`;
        reply.header("etag", etag).header("cache-control", "no-cache");
        if (matchesEtag(request.headers["if-none-match"], etag)) return reply.status(304).send(null);
        return {
          version: catalog?.version ?? "",
          source: catalog?.source ?? (reload as NonNullable<typeof reload>).source,
          format: catalog?.format ?? "images.yaml",
          servingLastGood: state.servingLastGood,
          lastReload: reload
            ? {
                at: reload.at.toISOString(),
                ok: reload.ok,
                version: reload.version,
                source: reload.source,
                counts: countBySeverity(reload.findings),
                findings: reload.findings,
              }
            : null,
          counts: { entries: catalog?.entries.length ?? 0, ...countBySeverity(catalog?.findings ?? []) },
          entries: catalog?.entries ?? [],
          findings: catalog?.findings ?? [],
          ...(checks ? { verification: checks } : {}),
        };
      },
    );
  };
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
