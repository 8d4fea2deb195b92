// The catalog's source text, for editing: read it with its version, and replace it with optimistic
// concurrency (If-Match). A text with errors is refused with its findings; nothing is written.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { CatalogSource } from "../../catalog/catalog.ts";
import { Finding } from "../../catalog/findings.ts";
import { MAX_CATALOG_BYTES } from "../../catalog/parse.ts";
import type { EditableSource } from "../../catalog/sources/editable.ts";
import { ApiError, ErrorBody } from "../errors.ts";

const SourceBody = z.object({ text: z.string(), version: z.string(), source: CatalogSource });
const InvalidCatalog = ErrorBody.extend({ findings: z.array(Finding) });

export function catalogSourceRoutes(editable: EditableSource): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/api/v1/catalog/source",
      {
        config: { policy: { action: "catalog.read", scope: "cluster" } },
        schema: {
          summary: "The catalog's source text and its version",
          tags: ["catalog"],
          response: { 200: SourceBody },
        },
      },
      async (_request, reply) => {
        const { text, version } = await editable.readText();
        reply.header("etag", `"${version}"`);
        return { text, version, source: editable.source };
      },
    );

    app.put(
      "/api/v1/catalog/source",
      {
        config: { policy: { action: "catalog.write", scope: "cluster" } },
        bodyLimit: MAX_CATALOG_BYTES * 2,
        schema: {
          summary: "Replace the catalog's source text",
          description:
            'Needs If-Match: "<version>" from GET. 409 when the source changed since; 422 with findings when the text has errors.',
          tags: ["catalog"],
          headers: z.object({ "if-match": z.string().optional() }),
          body: z.object({ text: z.string() }),
          response: {
            200: z.object({ version: z.string() }),
            409: ErrorBody,
            422: InvalidCatalog,
            428: ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const expected = request.headers["if-match"]?.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
        if (!expected) {
          throw new ApiError(
            428,
            "precondition_required",
            'If-Match is required: send the version from GET /api/v1/catalog/source as If-Match: "<version>"',
            {
              field: "If-Match",
            },
          );
        }
        const result = await editable.writeText(request.body.text, expected);
        if (result.ok) {
          reply.header("etag", `"${result.version}"`);
          return { version: result.version };
        }
        if (result.reason === "invalid") {
          const errors = result.findings.filter((f) => f.severity === "error").length;
          return reply.status(422).send({
            error: "invalid_catalog",
            message: `the catalog has ${errors} error(s); nothing was saved`,
            findings: result.findings,
          });
        }
        if (result.reason === "conflict") {
          throw new ApiError(
            409,
            "conflict",
            "the catalog was changed by someone else since you loaded it; nothing was saved",
            {
              hint: "reload it, apply your edit again and save",
            },
          );
        }
        throw new ApiError(409, "read_only", result.message);
      },
    );
  };
}
