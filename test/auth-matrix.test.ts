// The access matrix, generated: every route of the real server (as registered, so a new route is covered
// without touching this file) × anonymous, admin, member and viewer × their own project and another one,
// each request sent to a running `osimg serve --auth token` over HTTP (WebSocket consoles by a real
// handshake) and its answer compared with what the policy table says. Requests that are allowed carry
// harmless inputs (absent names, empty bodies), so they are refused later (400/404/428) without effect.

import { readFileSync } from "node:fs";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Guard } from "../src/auth/guard.ts";
import { decide, POLICY_TABLE, ruleFor } from "../src/auth/policy-table.ts";
import type { Principal } from "../src/auth/principal.ts";
import { installErrorHandler } from "../src/server/errors.ts";
import {
  type DeclaredRoute,
  declaredRoutes,
  installAuthorization,
  routesWithoutPolicy,
} from "../src/server/policy.ts";
import { bearer, OTHER, OWN, type RoleTokens, startTokenServer, upgrade } from "./support/auth.ts";
import type { TestServer } from "./support/server.ts";

let server: TestServer;
let tokens: RoleTokens;

beforeAll(async () => {
  ({ server, tokens } = await startTokenServer({ prefix: "osimg-matrix-" }));
});

afterAll(async () => {
  await server?.stop();
});

/** Harmless values for path parameters: names that do not exist, a valid action. */
const PARAM_VALUES: Record<string, string> = { action: "start", sha256: "ffffff", "*": "some/page" };

function concretePath(url: string, namespace: string): string {
  return url
    .replace(/:namespace\b/, namespace)
    .replace(/:(\w+)/g, (_m, name: string) => PARAM_VALUES[name] ?? `absent-${name}`)
    .replace(/\*$/, PARAM_VALUES["*"] as string);
}

interface Caller {
  name: string;
  token: string | undefined;
  principal: Principal | undefined;
}

async function send(
  route: DeclaredRoute,
  path: string,
  token: string | undefined,
): Promise<{ status: number; error?: string }> {
  const url = `${server.url}${path}`;
  if (route.websocket) {
    const answer = await upgrade(url, bearer(token));
    return {
      status: answer.status,
      error: answer.body ? (JSON.parse(answer.body) as { error?: string }).error : undefined,
    };
  }
  const mutating = !["GET", "HEAD"].includes(route.method);
  const response = await fetch(url, {
    method: route.method,
    headers: { ...bearer(token), ...(mutating ? { "content-type": "application/json" } : {}) },
    body: mutating ? "{}" : undefined,
    // Event streams answer 200 and stay open: the status is all this test needs.
    signal: AbortSignal.timeout(15_000),
  });
  let error: string | undefined;
  if (response.headers.get("content-type")?.includes("json"))
    error = ((await response.json()) as { error?: string }).error;
  else await response.body?.cancel();
  return { status: response.status, error };
}

describe("the access matrix", () => {
  it("covers every route of the real server, each with a policy the table has a rule for", () => {
    const routes = declaredRoutes(server.app);
    expect(routesWithoutPolicy(server.app)).toEqual([]);
    // The server registers the catalog, image, VM, console, quota and auth routes.
    expect(routes.length).toBeGreaterThan(25);
    expect(routes.some((r) => r.websocket)).toBe(true);
    for (const route of routes) {
      const policy = route.policy;
      expect(policy, `${route.method} ${route.url}`).toBeDefined();
      if (!policy) continue;
      expect(
        ruleFor(policy.action, policy.scope),
        `${route.method} ${route.url}: ${policy.action}/${policy.scope}`,
      ).toBeDefined();
      expect(
        policy.scope === "namespace",
        `${route.url}: a namespace-scoped route has {namespace} in its path`,
      ).toBe(route.url.includes(":namespace"));
    }
  });

  it("answers every route × caller × project as the policy table says", async () => {
    const callers: Caller[] = [
      { name: "anonymous", token: undefined, principal: undefined },
      { name: "admin", token: tokens.admin, principal: tokens.principals.admin },
      { name: "member of demo", token: tokens.member, principal: tokens.principals.member },
      { name: "viewer of demo", token: tokens.viewer, principal: tokens.principals.viewer },
    ];
    const mismatches: string[] = [];
    let cases = 0;
    const counts = { allowed: 0, unauthenticated: 0, forbidden: 0 };
    for (const route of declaredRoutes(server.app)) {
      const policy = route.policy;
      // HEAD routes are Fastify's twins of the GET routes, with the same config and the same hook.
      if (!policy || route.method === "HEAD") continue;
      const namespaces = policy.scope === "namespace" ? [OWN, OTHER] : [OWN];
      for (const namespace of namespaces) {
        const path = concretePath(route.url, namespace);
        for (const caller of callers) {
          const expected = decide(caller.principal, policy.action, policy.scope, namespace);
          const answer = await send(route, path, caller.token);
          cases++;
          const what = `${caller.name}: ${route.method} ${path} (${policy.action})`;
          if (expected.allowed) {
            counts.allowed++;
            if (answer.status === 401 || answer.status === 403)
              mismatches.push(
                `${what}: expected to pass authorization, got ${answer.status} ${answer.error}`,
              );
          } else if (expected.reason === "unauthenticated") {
            counts.unauthenticated++;
            if (answer.status !== 401) mismatches.push(`${what}: expected 401, got ${answer.status}`);
          } else {
            counts.forbidden++;
            if (answer.status !== 403 || answer.error !== "forbidden")
              mismatches.push(`${what}: expected 403 forbidden, got ${answer.status} ${answer.error}`);
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    // The matrix exercises all three outcomes, across projects, for real.
    expect(cases).toBeGreaterThan(150);
    expect(counts.allowed).toBeGreaterThan(40);
    expect(counts.unauthenticated).toBeGreaterThan(20);
    expect(counts.forbidden).toBeGreaterThan(20);
  });

  it("keeps every project's routes closed to the other project's members, WebSocket consoles included", async () => {
    const consoles = declaredRoutes(server.app).filter((r) => r.websocket && r.method === "GET");
    expect(consoles.map((r) => r.url)).toEqual(
      expect.arrayContaining([
        "/api/v1/namespaces/:namespace/vms/:name/console",
        "/api/v1/namespaces/:namespace/vms/:name/vnc",
      ]),
    );
    for (const route of consoles) {
      expect(
        (await upgrade(`${server.url}${concretePath(route.url, OTHER)}`, bearer(tokens.member))).status,
      ).toBe(403);
      expect((await upgrade(`${server.url}${concretePath(route.url, OWN)}`)).status).toBe(401);
      expect(
        (await upgrade(`${server.url}${concretePath(route.url, OWN)}`, bearer(tokens.viewer))).status,
      ).toBe(403);
      expect(
        (await upgrade(`${server.url}${concretePath(route.url, OWN)}`, bearer(tokens.member))).status,
      ).toBe(101);
    }
  });

  it("has a table that keeps changes to members and admins, and projects to their own people", () => {
    for (const route of declaredRoutes(server.app)) {
      const policy = route.policy;
      if (!policy) continue;
      const who = ruleFor(policy.action, policy.scope)?.who;
      const what = `${route.method} ${route.url} (${policy.action})`;
      const changes = !["GET", "HEAD"].includes(route.method) || route.websocket;
      // The one change open to anyone is completing a login (it needs a code from the issuer).
      if (changes && policy.action !== "auth.login") expect(["member", "admin"], what).toContain(who);
      if (policy.scope === "namespace") expect(["viewer", "member", "admin"], what).toContain(who);
      if (policy.scope === "public") expect(who, what).toBe("anyone");
    }
    expect(ruleFor("catalog.write", "cluster")?.who).toBe("admin");
    expect(ruleFor("catalog.read", "cluster")?.who).toBe("authenticated");
  });

  it("refuses a route whose action and scope have no rule, even one declared public", async () => {
    const app = Fastify();
    installErrorHandler(app);
    installAuthorization(app, Guard.none().authorize);
    app.put(
      "/wide-open",
      { config: { policy: { action: "catalog.write", scope: "public" } } },
      async () => "edited",
    );
    app.get("/healthz", { config: { policy: { action: "health.read", scope: "public" } } }, async () => "ok");
    try {
      const refused = await app.inject({ method: "PUT", url: "/wide-open" });
      expect(refused.statusCode).toBe(500);
      expect(refused.json()).toMatchObject({ error: "no_policy" });
      expect((await app.inject({ url: "/healthz" })).body).toBe("ok");
    } finally {
      await app.close();
    }
  });

  it("is documented as it is: docs/security.md shows the code's table", () => {
    const rows = Object.entries(POLICY_TABLE).map(([action, rule]) => {
      const scopes = Object.entries(rule.scopes).map(([scope, r]) => {
        const k = r.kubernetes;
        const kube = k
          ? `; RBAC: \`${k.verb} ${k.group}/${k.resource}${k.subresource ? `/${k.subresource}` : ""}\`${k.delegate ? " (delegated)" : ""}`
          : "";
        return `${scope}: **${r.who}**${kube}`;
      });
      return `| \`${action}\` | ${scopes.join("<br>")} | ${rule.description} |`;
    });
    const docs = readFileSync(new URL("../docs/security.md", import.meta.url), "utf8");
    const documented = docs.split("\n").filter((l) => /^\| `[a-z]+\.[a-z]+` \|/.test(l));
    expect(documented).toEqual(rows);
  });

  it("has a table whose every action is used by a route, with a rule for each scope it is used in", () => {
    const used = new Set(declaredRoutes(server.app).map((r) => r.policy?.action));
    const unused = Object.keys(POLICY_TABLE).filter((a) => !used.has(a as never));
    expect(unused).toEqual([]);
  });
});
