// GET /api/v1/namespaces/{namespace}/quota: a project's limits and usage (the UI shows them beside the
// VMs; a create that does not fit answers 403 quota_exceeded with the same figures).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { QuotaGuard } from "./guard.ts";
import { describeLimits } from "./quota.ts";

export const QuotaResponse = z.object({
  namespace: z.string(),
  source: z.string().describe("where the limits come from (a file or a ConfigMap)"),
  limits: z
    .object({
      vms: z.number().optional(),
      cpu: z.number().optional(),
      memory: z.string().optional(),
      memoryBytes: z.number().optional(),
      storage: z.string().optional(),
      storageBytes: z.number().optional(),
    })
    .nullable()
    .describe("null: the project has no quota; an absent field is unlimited"),
  usage: z.object({
    vms: z.number(),
    cpu: z.number(),
    memoryBytes: z.number(),
    storageBytes: z.number(),
  }),
});

export function quotaRoutes(quota: QuotaGuard): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/api/v1/namespaces/:namespace/quota",
      {
        config: { policy: { action: "quota.read", scope: "namespace" } },
        schema: {
          summary: "A project's quota: limits (VMs, vCPU, memory, storage) and current usage",
          tags: ["vms"],
          params: z.object({ namespace: z.string() }),
          response: { 200: QuotaResponse },
        },
      },
      async (request) => {
        const status = await quota.status(request.params.namespace, {
          bearerToken: request.principal?.bearerToken,
        });
        return { ...status, limits: status.limits ? describeLimits(status.limits) : null };
      },
    );
  };
}
