// Liveness, readiness, metrics and the API description.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { CatalogState } from "../../catalog/state.ts";
import type { Metrics } from "../metrics.ts";

const Status = z.object({ status: z.enum(["ok", "unavailable"]), reason: z.string().optional() });

export function healthRoutes(state: CatalogState, metrics: Metrics): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/healthz",
      {
        config: { policy: { action: "health.read", scope: "public" } },
        schema: { summary: "Liveness", tags: ["health"], response: { 200: Status } },
      },
      async () => ({ status: "ok" as const }),
    );
    app.get(
      "/readyz",
      {
        config: { policy: { action: "health.read", scope: "public" } },
        schema: {
          summary: "Readiness: a valid catalog is served",
          tags: ["health"],
          response: { 200: Status, 503: Status },
        },
      },
      async (_request, reply) => {
        if (state.served) return { status: "ok" as const };
        return reply
          .status(503)
          .send({ status: "unavailable" as const, reason: "no valid catalog has been loaded yet" });
      },
    );
    app.get(
      "/metrics",
      {
        config: { policy: { action: "metrics.read", scope: "public" } },
        schema: { summary: "Prometheus metrics", tags: ["health"], hide: false },
      },
      async (_request, reply) => {
        reply.type(metrics.registry.contentType);
        return metrics.registry.metrics();
      },
    );
    app.get(
      "/openapi.json",
      { config: { policy: { action: "api.describe", scope: "public" } }, schema: { hide: true } },
      async () => app.swagger(),
    );
  };
}
