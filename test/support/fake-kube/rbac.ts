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
