// How to log in (for the UI's login page) and who the caller is (for `osimg login` and the UI's session).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { type Guard, OIDC_CALLBACK_PATH } from "./guard.ts";
import { ROLES } from "./policy-table.ts";
import { describePrincipal } from "./principal.ts";

const MODES = ["none", "token", "oidc", "kubernetes"] as const;

export const AuthConfig = z.object({
  mode: z.enum(MODES),
  issuer: z.string().optional().describe("oidc: the issuer whose tokens are accepted"),
  audience: z.string().optional().describe("oidc: the audience (client id) tokens must name"),
  delegate: z.boolean().optional().describe("kubernetes: VM calls go to Kubernetes with the user's token"),
  clientId: z.string().optional().describe("oidc: the UI's public client for browser logins"),
  authorizationEndpoint: z.string().optional().describe("oidc: where the browser logs in (with PKCE)"),
});

const LoginRequest = z.object({
  code: z.string().min(1).max(4096),
  codeVerifier: z
    .string()
    .regex(/^[A-Za-z0-9._~-]{43,128}$/)
    .describe("the PKCE verifier (RFC 7636)"),
  redirectUri: z.string().max(2048).describe(`this server's ${OIDC_CALLBACK_PATH}`),
  nonce: z.string().min(16).max(256),
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
    app.post(
      "/api/v1/auth/oidc/login",
      {
        config: { policy: { action: "auth.login", scope: "public" } },
        schema: {
          summary: "Complete a browser login (OIDC authorization code with PKCE): the ID token to use",
          description:
            "The UI sends the code and PKCE verifier the issuer's redirect gave it; the server exchanges them at the issuer's token endpoint and answers the ID token after checking it (signature, issuer, audience, expiry, nonce).",
          tags: ["auth"],
          body: LoginRequest,
          response: { 200: z.object({ token: z.string(), principal: WhoAmI }) },
        },
      },
      async (request, reply) => {
        const { token, principal } = await guard.completeLogin(request, request.body);
        reply.header("cache-control", "no-store");
        return { token, principal: describePrincipal(principal) };
      },
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
