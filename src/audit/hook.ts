// What goes into the audit log from the HTTP app: every mutating call (POST/PUT/PATCH/DELETE) with its
// result, every refusal (403, 429, and 401 when credentials were presented), and console sessions
// (opened, closed with duration and bytes, failed) reported by the console route.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { credentialsOf } from "../auth/credentials.ts";
import { isMutating } from "../auth/guard.ts";
import { type AuditEvent, type AuditLog, resultOf } from "./log.ts";

export interface ConsoleSession {
  event: "opened" | "closed" | "failed";
  durationMs?: number;
  bytes?: { in: number; out: number };
  reason?: string;
}

/** How the console route reports its sessions. */
export type ConsoleAudit = (request: FastifyRequest, session: ConsoleSession) => void;

function base(request: FastifyRequest): Omit<AuditEvent, "result" | "status"> {
  const params = { ...(request.params as Record<string, string> | undefined) };
  const namespace = params.namespace;
  delete params.namespace;
  const object = Object.values(params).filter(Boolean).join("/");
  const p = request.principal;
  return {
    time: new Date().toISOString(),
    requestId: String(request.id),
    who: p
      ? { subject: p.subject, name: p.name, via: p.via }
      : { subject: "anonymous", name: "anonymous", via: "none" },
    ip: request.ip,
    action: request.routeOptions.config?.policy?.action ?? "unknown",
    method: request.method,
    path: request.url.split("?")[0] ?? request.url,
    ...(namespace ? { namespace } : {}),
    ...(object ? { object } : {}),
  };
}

function audited(request: FastifyRequest, status: number): boolean {
  if (isMutating(request.method) || status === 403 || status === 429) return true;
  return status === 401 && credentialsOf(request.headers).kind !== "none";
}

export function installAudit(app: FastifyInstance, log: AuditLog): void {
  app.addHook("onResponse", async (request, reply) => {
    const status = reply.statusCode;
    if (!audited(request, status)) return;
    void log.record({ ...base(request), result: resultOf(status), status });
  });
}

export function consoleAudit(log: AuditLog): ConsoleAudit {
  return (request, session) => {
    void log.record({
      ...base(request),
      result: session.event === "failed" ? "error" : "success",
      status: session.event === "failed" ? 500 : 101,
      ...session,
    });
  };
}
