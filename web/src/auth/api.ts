// The auth endpoints as the UI reads them: how to log in (GET /api/v1/auth/config, public), who the
// token stands for (GET /api/v1/whoami), and a project's quota (GET /api/v1/namespaces/{ns}/quota).
import { queryOptions } from "@tanstack/react-query";
import { requestJson } from "../api/http.ts";

export type AuthMode = "none" | "token" | "oidc" | "kubernetes";
export type Role = "viewer" | "member" | "admin";

export interface AuthConfig {
  mode: AuthMode;
  issuer?: string;
  audience?: string;
  /** oidc: the UI's public client and where the browser logs in. */
  clientId?: string;
  authorizationEndpoint?: string;
}

export interface WhoAmI {
  subject: string;
  name: string;
  via: AuthMode;
  clusterRole?: Role;
  projects: Record<string, Role>;
  expiresAt?: number;
}

export interface ProjectQuota {
  namespace: string;
  source: string;
  limits: {
    vms?: number;
    cpu?: number;
    memory?: string;
    memoryBytes?: number;
    storage?: string;
    storageBytes?: number;
  } | null;
  usage: { vms: number; cpu: number; memoryBytes: number; storageBytes: number };
}

export function fetchAuthConfig(): Promise<AuthConfig> {
  return requestJson<AuthConfig>("/api/v1/auth/config");
}

/** Who a token stands for; with `token`, that one instead of the session's (the login check). */
export function fetchWhoAmI(token?: string): Promise<WhoAmI> {
  return requestJson<WhoAmI>(
    "/api/v1/whoami",
    token ? { headers: { authorization: `Bearer ${token}` } } : {},
  );
}

export const quotaQuery = (namespace: string) =>
  queryOptions({
    queryKey: ["quota", namespace],
    queryFn: ({ signal }) =>
      requestJson<ProjectQuota>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/quota`, { signal }),
    refetchInterval: 5000,
  });

/** "admin in every project", "member in demo, viewer in ops". */
export function describeRoles(me: Pick<WhoAmI, "clusterRole" | "projects">): string {
  const parts = me.clusterRole ? [`${me.clusterRole} in every project`] : [];
  for (const [project, role] of Object.entries(me.projects)) parts.push(`${role} in ${project}`);
  return parts.join(", ") || "no projects";
}
