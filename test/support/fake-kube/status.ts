// The metav1.Status object the fake answers every error with, shaped like kube-apiserver's: the HTTP code,
// a reason a client can switch on, a message that names the object, and field causes for 422 Invalid.

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** An error the HTTP layer turns into a Status response. */
export class KubeError extends Error {
  readonly status: Status;

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.status = failure(code, reason, message, details);
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const status: Status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details) status.details = details;
  return status;
}

export function success(details?: StatusDetails): Status {
  const status: Status = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 200 };
  if (details) status.details = details;
  return status;
}

/** What the messages call an object: "configmaps" for core, "virtualmachines.kubevirt.io" for groups. */
export interface ResourceName {
  group: string;
  resource: string;
  kind: string;
}

const qualified = (r: ResourceName) => (r.group === "" ? r.resource : `${r.resource}.${r.group}`);

export const notFound = (r: ResourceName, name: string) =>
  new KubeError(404, "NotFound", `${qualified(r)} "${name}" not found`, {
    name,
    group: r.group,
    kind: r.resource,
  });

export const alreadyExists = (r: ResourceName, name: string) =>
  new KubeError(409, "AlreadyExists", `${qualified(r)} "${name}" already exists`, {
    name,
    group: r.group,
    kind: r.resource,
  });

export const conflict = (r: ResourceName, name: string, why?: string) =>
  new KubeError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${
      why ?? "the object has been modified; please apply your changes to the latest version and try again"
    }`,
    { name, group: r.group, kind: r.resource },
  );

export const badRequest = (message: string) => new KubeError(400, "BadRequest", message);

export const methodNotAllowed = (message: string) => new KubeError(405, "MethodNotAllowed", message);

export const unsupportedMediaType = (type: string) =>
  new KubeError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${type})`,
  );

export const gone = (message: string) => new KubeError(410, "Expired", message);

export const tooLargeResourceVersion = (requested: number, current: number) =>
  new KubeError(504, "Timeout", `Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
    retryAfterSeconds: 1,
  });

/** 422 Invalid with one cause per field error, the message listing them like kube-apiserver does. */
export function invalid(r: ResourceName, name: string, causes: StatusCause[]): KubeError {
  const listed = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const summary = listed.length === 1 ? listed[0] : `[${listed.join(", ")}]`;
  const kind = r.group === "" ? r.kind : `${r.kind}.${r.group}`;
  return new KubeError(422, "Invalid", `${kind} "${name}" is invalid: ${summary}`, {
    name,
    group: r.group,
    kind: r.kind,
    causes,
  });
}
