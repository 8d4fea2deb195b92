// Who is calling: the identity every authenticator produces (static token, OIDC, Kubernetes TokenReview),
// attached to the request for the authorizer, the audit log and the routes.
import type { Role } from "./policy-table.ts";

export type AuthMode = "none" | "token" | "oidc" | "kubernetes";

export interface Principal {
  /** Stable identity: the token id, the OIDC `sub`, the Kubernetes user name. */
  subject: string;
  /** For people: a token's name, preferred_username, the Kubernetes user name. */
  name: string;
  via: AuthMode;
  /** A role in every project (admin also allows the cluster-wide admin actions). */
  clusterRole?: Role;
  /** Project (namespace) → role there. */
  projects: Readonly<Record<string, Role>>;
  /** Kubernetes groups (kubernetes mode), for SubjectAccessReviews. */
  groups?: readonly string[];
  /** Seconds since the epoch after which the credentials are no longer valid. */
  expiresAt?: number;
  /**
   * The caller's own bearer token, kept only in the kubernetes mode so that the provider can call the
   * Kubernetes API as the user (token pass-through). Never logged (redacted) nor returned.
   */
  bearerToken?: string;
}

/** What `--auth none` runs as: everything is allowed (loopback only, with a loud warning). */
export const UNAUTHENTICATED_ADMIN: Principal = Object.freeze({
  subject: "anonymous",
  name: "anonymous (--auth none)",
  via: "none" as const,
  clusterRole: "admin" as const,
  projects: {},
});

/** The public part of a principal (GET /api/v1/whoami): no token. */
export function describePrincipal(p: Principal): {
  subject: string;
  name: string;
  via: AuthMode;
  clusterRole?: Role;
  projects: Record<string, Role>;
  groups?: string[];
  expiresAt?: number;
} {
  return {
    subject: p.subject,
    name: p.name,
    via: p.via,
    ...(p.clusterRole ? { clusterRole: p.clusterRole } : {}),
    projects: { ...p.projects },
    ...(p.groups ? { groups: [...p.groups] } : {}),
    ...(p.expiresAt !== undefined ? { expiresAt: p.expiresAt } : {}),
  };
}
