// Authentication and authorization for the fake API server, as kube-apiserver does them: a bearer token
// names a user (with groups), each request becomes resource attributes (verb, group, resource,
// subresource, namespace, name), and one function decides, like RBAC. TokenReview and
// SubjectAccessReview answer from the same two, so that products delegating to Kubernetes (osimg's
// kubernetes auth mode) see the same decisions as their own calls.

export interface FakeUser {
  username: string;
  groups?: string[];
}

/** The attributes RBAC decides on. */
export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export interface AccessCheck extends ResourceAttributes {
  user: string;
  groups: string[];
}

export type Authorize = (check: AccessCheck) => boolean;

/** What a request asks for, from its method and path (undefined for non-resource paths such as /version). */
export function requestAttributes(
  method: string,
  path: string,
  watch: boolean,
): ResourceAttributes | undefined {
  const segments = path
    .split("/")
    .filter((s) => s !== "")
    .map(decodeURIComponent);
  if (segments[0] !== "api" && segments[0] !== "apis") return undefined;
  const core = segments[0] === "api";
  const group = core ? "" : (segments[1] ?? "");
  let rest = segments.slice(core ? 2 : 3);
  if (rest.length === 0) return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest as [string, string | undefined, string | undefined];
  const verb =
    method === "GET"
      ? watch
        ? "watch"
        : name === undefined
          ? "list"
          : "get"
      : method === "POST"
        ? "create"
        : method === "PUT"
          ? "update"
          : method === "PATCH"
            ? "patch"
            : method === "DELETE"
              ? name === undefined
                ? "deletecollection"
                : "delete"
              : method.toLowerCase();
  return {
    verb,
    group,
    resource,
    ...(subresource ? { subresource } : {}),
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
  };
}

export function describeAccess(user: string, a: ResourceAttributes): string {
  const what = `${a.resource}${a.subresource ? `/${a.subresource}` : ""}${a.group ? `.${a.group}` : ""}`;
  return `${what}${a.name ? ` "${a.name}"` : ""} is forbidden: User "${user}" cannot ${a.verb} resource "${a.resource}${a.subresource ? `/${a.subresource}` : ""}" in API group "${a.group}" ${a.namespace ? `in the namespace "${a.namespace}"` : "at the cluster scope"}`;
}

/** A rule of a Role or ClusterRole. */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** One permission a subject holds: a verb on a resource (or subresource), in a namespace or everywhere. */
export interface Permission {
  namespace?: string;
  group: string;
  /** "resource" or "resource/subresource". */
  resource: string;
  verb: string;
  resourceNames?: string[];
}

type Manifest = {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
};

/** The permissions a ServiceAccount gets from the Roles, ClusterRoles and bindings among `objects`. */
export function permissionsOf(
  objects: readonly Manifest[],
  serviceAccount: { namespace: string; name: string },
): Permission[] {
  const roles = new Map(
    objects
      .filter((o) => o.kind === "Role" || o.kind === "ClusterRole")
      .map((o) => [`${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`, o.rules ?? []]),
  );
  const permissions: Permission[] = [];
  for (const binding of objects.filter((o) => o.kind === "RoleBinding" || o.kind === "ClusterRoleBinding")) {
    const bound = binding.subjects?.some(
      (s) =>
        s.kind === "ServiceAccount" &&
        s.name === serviceAccount.name &&
        s.namespace === serviceAccount.namespace,
    );
    if (!bound || !binding.roleRef) continue;
    const namespace = binding.kind === "RoleBinding" ? binding.metadata?.namespace : undefined;
    const roleNamespace = binding.roleRef.kind === "Role" ? (namespace ?? "") : "";
    const rules = roles.get(`${binding.roleRef.kind}/${roleNamespace}/${binding.roleRef.name}`);
    if (!rules)
      throw new Error(
        `${binding.kind} ${binding.metadata?.name} refers to a missing ${binding.roleRef.kind}`,
      );
    for (const rule of rules)
      for (const group of rule.apiGroups ?? [""])
        for (const resource of rule.resources ?? [])
          for (const verb of rule.verbs)
            permissions.push({
              ...(namespace ? { namespace } : {}),
              group,
              resource,
              verb,
              ...(rule.resourceNames?.length ? { resourceNames: rule.resourceNames } : {}),
            });
  }
  return permissions;
}

/** Whether a permission allows a request, as RBAC matches them (resourceNames only restrict named requests). */
export function permits(permission: Permission, a: ResourceAttributes): boolean {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return (
    (permission.namespace === undefined || permission.namespace === a.namespace) &&
    (permission.group === "*" || permission.group === a.group) &&
    (permission.resource === "*" || permission.resource === resource) &&
    (permission.verb === "*" || permission.verb === a.verb) &&
    (permission.resourceNames === undefined ||
      (a.name !== undefined && permission.resourceNames.includes(a.name)))
  );
}

export const describePermission = (p: Permission) =>
  `${p.verb} ${p.group ? `${p.group}/` : ""}${p.resource}${p.resourceNames ? ` ${p.resourceNames.join(",")}` : ""}${p.namespace ? ` in ${p.namespace}` : ""}`;
