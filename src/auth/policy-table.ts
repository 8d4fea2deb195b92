// Who may do what: ONE table from each Action to the requirement per scope it is used in, read by the
// authorizer (src/auth/guard.ts), by the route installer (body limits) and by the generated test matrix.
// Pure: no I/O, no Fastify. A route whose (action, scope) has no rule here is refused.
//
// Roles: `admin` (catalog edits and every project), `member` (VMs in their projects), `viewer`
// (read-only in their projects). The catalog is readable by anyone authenticated; what is specific to a
// project (its VMs, quota, the per-project catalog with its overlay entries) only inside that project.
import type { Action, Policy } from "../server/policy.ts";
import type { Principal } from "./principal.ts";

export const ROLES = ["viewer", "member", "admin"] as const;
export type Role = (typeof ROLES)[number];
export type Scope = Policy["scope"];

/** "anyone": no credentials needed; "authenticated": any valid identity; a role: at least that role. */
export type Requirement = "anyone" | "authenticated" | Role;

/**
 * The kubernetes mode (token pass-through): what Kubernetes RBAC is asked through a SubjectAccessReview.
 * `delegate`: the route's own calls to the Kubernetes API carry the user's token, so when the provider
 * passes tokens through, RBAC decides at that call and no review is needed.
 */
export interface KubeCheck {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  delegate?: boolean;
}

export interface ScopeRule {
  who: Requirement;
  kubernetes?: KubeCheck;
}

export interface ActionRule {
  scopes: Partial<Record<Scope, ScopeRule>>;
  /** Body size limit for its routes that set none (bytes). Mutating routes default to DEFAULT_BODY_LIMIT. */
  bodyLimit?: number;
  /** What the action is, for docs and the audit log. */
  description: string;
}

/** Requests without a body (lifecycle actions, deletes) need no more; a route sets its own when it must. */
export const DEFAULT_BODY_LIMIT = 16 * 1024;

// Virtual resources of osimg for RBAC rules in the kubernetes mode (a ClusterRole may name any group).
const OSIMG = "osimg.io";
const VMS = { group: "kubevirt.io", resource: "virtualmachines" } as const;

export const POLICY_TABLE: Readonly<Record<Action, ActionRule>> = {
  "health.read": { description: "liveness and readiness", scopes: { public: { who: "anyone" } } },
  "metrics.read": { description: "Prometheus metrics", scopes: { public: { who: "anyone" } } },
  "api.describe": { description: "the OpenAPI description", scopes: { public: { who: "anyone" } } },
  "ui.read": { description: "the web UI's files", scopes: { public: { who: "anyone" } } },
  "auth.config": {
    description: "how to log in (the auth mode, the OIDC issuer)",
    scopes: { public: { who: "anyone" } },
  },
  "auth.login": {
    description: "complete a browser login through the OIDC issuer (code + PKCE → ID token)",
    scopes: { public: { who: "anyone" } },
  },
  "auth.whoami": {
    description: "the caller's identity, role and projects",
    scopes: { cluster: { who: "authenticated" } },
  },
  "catalog.read": {
    description: "read the catalog (per project: with that project's overlay entries)",
    scopes: {
      cluster: { who: "authenticated" },
      namespace: { who: "viewer", kubernetes: { verb: "list", ...VMS } },
    },
  },
  "catalog.write": {
    description: "edit the catalog's source",
    scopes: { cluster: { who: "admin", kubernetes: { verb: "update", group: OSIMG, resource: "catalogs" } } },
  },
  "images.read": {
    description: "the local image store and pull jobs",
    scopes: { cluster: { who: "authenticated" } },
  },
  "images.verify": {
    description: "check a catalog entry's image now",
    scopes: { cluster: { who: "admin", kubernetes: { verb: "update", group: OSIMG, resource: "images" } } },
  },
  "images.pull": {
    description: "pull an image into the local store",
    scopes: { cluster: { who: "admin", kubernetes: { verb: "create", group: OSIMG, resource: "images" } } },
  },
  "images.delete": {
    description: "remove an image from the local store",
    scopes: { cluster: { who: "admin", kubernetes: { verb: "delete", group: OSIMG, resource: "images" } } },
  },
  "images.test": {
    description: "boot-test a catalog entry's image (a VM on the server)",
    scopes: { cluster: { who: "admin", kubernetes: { verb: "create", group: OSIMG, resource: "images" } } },
  },
  "vm.read": {
    description: "list and read VMs, their manifests, their events and change events",
    scopes: { namespace: { who: "viewer", kubernetes: { verb: "get", ...VMS, delegate: true } } },
  },
  "vm.create": {
    description: "create a VM (quota checked)",
    bodyLimit: 256 * 1024,
    scopes: { namespace: { who: "member", kubernetes: { verb: "create", ...VMS, delegate: true } } },
  },
  "vm.operate": {
    description: "start, stop, restart, pause, unpause a VM",
    scopes: { namespace: { who: "member", kubernetes: { verb: "update", ...VMS, delegate: true } } },
  },
  "vm.delete": {
    description: "delete a VM",
    scopes: { namespace: { who: "member", kubernetes: { verb: "delete", ...VMS, delegate: true } } },
  },
  "vm.console": {
    description: "a VM's serial console or VNC display (WebSocket)",
    scopes: {
      namespace: {
        who: "member",
        kubernetes: {
          verb: "get",
          group: "subresources.kubevirt.io",
          resource: "virtualmachineinstances",
          subresource: "console",
          delegate: true,
        },
      },
    },
  },
  "quota.read": {
    description: "a project's quota: limits and usage",
    scopes: { namespace: { who: "viewer", kubernetes: { verb: "list", ...VMS } } },
  },
  "build.read": {
    description: "image builds: their state, records and logs",
    scopes: { cluster: { who: "authenticated" } },
  },
  "build.create": {
    description: "build an image from a spec (on the server or as a Kubernetes Job)",
    bodyLimit: 1536 * 1024,
    scopes: { cluster: { who: "admin", kubernetes: { verb: "create", group: OSIMG, resource: "builds" } } },
  },
};

const RANK: Record<Role, number> = { viewer: 1, member: 2, admin: 3 };

export function atLeast(role: Role | undefined, required: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[required];
}

export function higher(a: Role | undefined, b: Role | undefined): Role | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return RANK[a] >= RANK[b] ? a : b;
}

/** The principal's role inside a project: its cluster-wide role or its role there, whichever is higher. */
export function roleIn(principal: Principal, namespace: string): Role | undefined {
  return higher(principal.clusterRole, principal.projects[namespace]);
}

export function ruleFor(action: Action, scope: Scope): ScopeRule | undefined {
  return POLICY_TABLE[action]?.scopes[scope];
}

export type Decision =
  | { allowed: true }
  | { allowed: false; reason: "unauthenticated" | "forbidden" | "no_rule"; required?: Requirement };

/** The table's answer for a principal (undefined: anonymous) doing `action` in `scope` (and namespace). */
export function decide(
  principal: Principal | undefined,
  action: Action,
  scope: Scope,
  namespace?: string,
): Decision {
  const rule = ruleFor(action, scope);
  if (!rule) return { allowed: false, reason: "no_rule" };
  const { who } = rule;
  if (who === "anyone") return { allowed: true };
  if (!principal) return { allowed: false, reason: "unauthenticated", required: who };
  if (who === "authenticated") return { allowed: true };
  const role =
    scope === "namespace" && namespace !== undefined ? roleIn(principal, namespace) : principal.clusterRole;
  return atLeast(role, who) ? { allowed: true } : { allowed: false, reason: "forbidden", required: who };
}

/**
 * Whether a principal sees a project's own catalog entries (its overlay) — for the catalog overlay code:
 * the same rule as the per-project catalog route, so the two can never disagree.
 */
export function canReadProjectCatalog(principal: Principal | undefined, namespace: string): boolean {
  return decide(principal, "catalog.read", "namespace", namespace).allowed;
}
