// How to log in (for the UI's login page) and who the caller is (for `osimg login` and the UI's session).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Guard } from "./guard.ts";
import { ROLES } from "./policy-table.ts";
import { describePrincipal } from "./principal.ts";

const MODES = ["none", "token", "oidc", "kubernetes"] as const;

export const AuthConfig = z.object({
  mode: z.enum(MODES),
  issuer: z.string().optional().describe("oidc: the issuer whose tokens are accepted"),
  audience: z.string().optional().describe("oidc: the audience (client id) tokens must name"),
  delegate: z.boolean().optional().describe("kubernetes: VM calls go to Kubernetes with the user's token"),
});

export const WhoAmI = z.object({
  subject: z.string(),
  name: z.string(),
  via: z.enum(MODES),
  clusterRole: z.enum(ROLES).optional().describe("a role in every project; admin also edits the catalog"),
  projects: z.record(z.string(), z.enum(ROLES)).describe("project → role there"),
  groups: z.array(z.string()).optional(),
  expiresAt: z.number().optional().describe("seconds since the epoch"),
});

export function authRoutes(guard: Guard): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/api/v1/auth/config",
      {
        config: { policy: { action: "auth.config", scope: "public" } },
        schema: {
          summary: "How to log in: the auth mode and, for OIDC, the issuer and audience",
          tags: ["auth"],
          response: { 200: AuthConfig },
        },
      },
      async () => guard.describe(),
    );
    app.get(
      "/api/v1/whoami",
      {
        config: { policy: { action: "auth.whoami", scope: "cluster" } },
        schema: {
          summary: "The caller: identity, role in every project, roles per project",
          tags: ["auth"],
          response: { 200: WhoAmI },
        },
      },
      async (request, reply) => {
        reply.header("cache-control", "no-store");
        return describePrincipal(request.principal as NonNullable<typeof request.principal>);
      },
    );
  };
}
