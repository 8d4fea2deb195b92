// Every route declares who may call it (its policy, in the route's config), and one hook in front of
// every route enforces it with the namespace taken from the path. A route without a policy is refused:
// nothing is reachable by accident. Who may do what is one table (src/auth/policy-table.ts); the
// authorizer built from it (src/auth/guard.ts) plugs in here.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { isDns1123Label } from "../util/names.ts";
import { ApiError } from "./errors.ts";

export type Action =
  | "health.read"
  | "metrics.read"
  | "api.describe"
  | "catalog.read"
  | "catalog.write"
  | "ui.read"
  | "images.read"
  | "images.verify"
  | "images.pull"
  | "images.delete"
  | "images.test"
  | "vm.read"
  | "vm.create"
  | "vm.operate"
  | "vm.delete"
  | "vm.console"
  | "auth.config"
  | "auth.whoami"
  | "auth.login"
  | "quota.read"
  | "build.read"
  | "build.create";

export interface Policy {
  action: Action;
  /** namespace: the route's path has a {namespace} the caller must be allowed into. */
  scope: "public" | "cluster" | "namespace";
}

export interface AccessRequest {
  action: Action;
  scope: Policy["scope"];
  namespace: string | undefined;
  request: FastifyRequest;
}

/** true allows, false answers 403; throwing an ApiError answers it (401 without credentials, 429, 503). */
export type Authorizer = (access: AccessRequest) => Promise<boolean> | boolean;

export const allowAll: Authorizer = () => true;

declare module "fastify" {
  interface FastifyContextConfig {
    policy?: Policy;
  }
}

/** Routes registered without a policy, per app: they answer 500, and a test asserts there are none. */
const unguarded = new WeakMap<FastifyInstance, string[]>();

/** One method of one route as registered: what the access matrix test enumerates. */
export interface DeclaredRoute {
  method: string;
  url: string;
  policy: Policy | undefined;
  websocket: boolean;
}

const declared = new WeakMap<FastifyInstance, DeclaredRoute[]>();

export function routesWithoutPolicy(app: FastifyInstance): readonly string[] {
  return unguarded.get(app) ?? [];
}

/** Every route of the app with its policy, collected as they are registered. */
export function declaredRoutes(app: FastifyInstance): readonly DeclaredRoute[] {
  return declared.get(app) ?? [];
}

export function installAuthorization(app: FastifyInstance, authorize: Authorizer): void {
  const missing: string[] = [];
  const routes: DeclaredRoute[] = [];
  unguarded.set(app, missing);
  declared.set(app, routes);
  app.addHook("onRoute", (route) => {
    if (!route.config?.policy) missing.push(`${String(route.method)} ${route.url}`);
    const websocket = (route as { websocket?: boolean }).websocket === true;
    for (const method of [route.method].flat())
      routes.push({ method: String(method), url: route.url, policy: route.config?.policy, websocket });
  });
  // A WebSocket upgrade refused here (401, 403, 400) was answered over a connection that Node has already
  // handed over for upgrading: nobody reads or closes it, so it would stay open (and keep the server from
  // closing). An upgrade that is accepted is hijacked and never reaches onResponse.
  app.addHook("onResponse", async (request) => {
    if (request.headers.upgrade?.toLowerCase() !== "websocket") return;
    const socket = request.raw.socket;
    if (socket.destroyed) return;
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  app.addHook("onRequest", async (request) => {
    const policy = request.routeOptions.config.policy;
    if (!policy) {
      // Unknown URLs reach here too (the 404 handler has no policy): let them answer 404.
      if (request.is404) return;
      throw new ApiError(500, "no_policy", `route ${request.routeOptions.url} declares no access policy`);
    }
    let namespace: string | undefined;
    if (policy.scope === "namespace") {
      namespace = (request.params as { namespace?: string }).namespace;
      if (namespace === undefined || !isDns1123Label(namespace)) {
        throw new ApiError(
          400,
          "invalid_namespace",
          `namespace "${namespace ?? ""}" is not a DNS-1123 label`,
          {
            field: "namespace",
            hint: "lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
          },
        );
      }
    }
    // Public routes are asked too: the authorizer's table must say "anyone" for them.
    if (!(await authorize({ action: policy.action, scope: policy.scope, namespace, request }))) {
      throw new ApiError(
        403,
        "forbidden",
        `not allowed to ${policy.action}${namespace ? ` in namespace ${namespace}` : ""}`,
      );
    }
  });
}
