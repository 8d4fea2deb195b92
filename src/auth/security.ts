// Hardening around every route: body size limits from the policy table, a same-origin rule for
// state-changing requests and WebSocket upgrades (no CORS: a page of another site cannot drive the API
// with a user's browser), security headers on every answer, and the request id echoed for the audit log.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ApiError } from "../server/errors.ts";
import { isMutating } from "./guard.ts";
import { DEFAULT_BODY_LIMIT, POLICY_TABLE } from "./policy-table.ts";

export interface SecurityOptions {
  /** Origins (scheme://host[:port]) allowed besides the server's own, e.g. a proxy's public address. */
  allowedOrigins?: readonly string[];
}

/** Headers on every answer. The UI's page adds its Content-Security-Policy (src/server/routes/ui.ts). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** API answers are data, never a document: nothing in them may run or be framed. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Why a request from a browser page of another origin is refused, or undefined when it is not. */
export function crossOriginProblem(
  headers: { origin?: string; host?: string; "sec-fetch-site"?: string },
  allowed: readonly string[] = [],
): string | undefined {
  const site = headers["sec-fetch-site"];
  const origin = headers.origin;
  if (origin === undefined) {
    // No Origin: not a browser's cross-site request (the CLI, curl), unless the browser says so.
    return site === "cross-site" ? "a cross-site request" : undefined;
  }
  if (allowed.includes(origin)) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `the Origin "${origin}" is not an origin`;
  }
  if (host !== headers.host) return `a request from ${origin}, a page of another origin`;
  return undefined;
}

export function installSecurity(app: FastifyInstance, options: SecurityOptions = {}): void {
  app.decorateRequest("principal", undefined);
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.bodyLimit !== undefined || !methods.some((m) => isMutating(m))) return;
    const action = route.config?.policy?.action;
    route.bodyLimit = (action && POLICY_TABLE[action]?.bodyLimit) || DEFAULT_BODY_LIMIT;
  });
  app.addHook("onRequest", async (request: FastifyRequest, reply) => {
    reply.headers(SECURITY_HEADERS).header("x-request-id", request.id);
    const upgrade = request.headers.upgrade?.toLowerCase() === "websocket";
    if (!upgrade && !isMutating(request.method)) return;
    const problem = crossOriginProblem(
      {
        origin: request.headers.origin,
        host: request.headers.host,
        "sec-fetch-site": request.headers["sec-fetch-site"] as string | undefined,
      },
      options.allowedOrigins,
    );
    if (problem)
      throw new ApiError(403, "cross_origin", `refused: ${problem}`, {
        hint: "use the osimg UI on this server's own address, or list the origin with --allowed-origin",
      });
  });
  app.addHook("onSend", async (request, reply, payload) => {
    if (request.url.startsWith("/api/") && !reply.hasHeader("content-security-policy"))
      reply.header("content-security-policy", API_CSP);
    return payload;
  });
}
