// The API server's logic without HTTP: create (generateName), get, list (selectors, pages), update and
// patch (resourceVersion preconditions, 409 Conflict, status kept apart), delete (preconditions, owner
// garbage collection, namespace contents) and validation (schemas, KubeVirt admission, core rules).
// The HTTP layer and the controllers of the fake both call it, so everything written is validated.
import { randomInt, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import {
  type AdmissionOptions,
  admitPreference,
  admitVirtualMachine,
  admitVirtualMachineInstance,
  referencedClusterPreference,
} from "./admission.ts";
import { applyPatch } from "./patch.ts";
import { apiVersionOf, BUILTIN_TYPES, type KubeObject, type ResourceType, typeKey } from "./resources.ts";
import { validateAgainst } from "./schema.ts";
import { fieldMatcher, labelMatcher } from "./selectors.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  gone,
  invalid,
  KubeError,
  notFound,
  type StatusCause,
} from "./status.ts";
import { Store } from "./store.ts";

export interface ClusterOptions {
  admission?: AdmissionOptions;
  /** Namespaces that exist from the start; default: default, kube-system, kube-public. */
  namespaces?: string[];
  historyLimit?: number;
  /** The first resourceVersion: a wiped cluster may start lower than before, like a new etcd. */
  startAt?: number;
  /** Resource types served besides the built-in ones, as CRDs would add them. */
  resources?: ResourceType[];
}

export interface WriteOptions {
  dryRun?: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ObjectList {
  resourceVersion: string;
  items: KubeObject[];
  continue?: string;
  remainingItemCount?: number;
}

export interface DeleteOptions extends WriteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
/** etcd's request limit, which caps ConfigMaps and Secrets. */
export const MAX_OBJECT_DATA_BYTES = 1024 * 1024;
const GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export class Cluster {
  readonly store: Store;
  readonly types = new Map<string, ResourceType>();
  readonly admission: AdmissionOptions;

  constructor(options: ClusterOptions = {}) {
    this.store = new Store({ historyLimit: options.historyLimit, startAt: options.startAt });
    this.admission = options.admission ?? { vmStateStorageClass: "local-path" };
    for (const type of [...BUILTIN_TYPES, ...(options.resources ?? [])]) this.register(type);
    for (const name of options.namespaces ?? ["default", "kube-system", "kube-public"])
      this.create(this.type("", "v1", "namespaces"), undefined, { metadata: { name } });
  }

  register(type: ResourceType): void {
    this.types.set(typeKey(type), type);
  }

  /** The type served at group/version/resource, or undefined (the HTTP layer answers 404). */
  find(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.get(`${group}/${version}/${resource}`);
  }

  type(group: string, version: string, resource: string): ResourceType {
    const found = this.find(group, version, resource);
    if (!found) throw new Error(`no resource type ${group}/${version}/${resource}`);
    return found;
  }

  /** The type of a kind, for tests that speak in kinds: "ConfigMap", "VirtualMachine". */
  typeOfKind(kind: string): ResourceType {
    const found = [...this.types.values()].find((t) => t.kind === kind);
    if (!found) throw new Error(`no resource type of kind ${kind}`);
    return found;
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const found = this.store.get(typeKey(type), scope(type, namespace), name);
    if (!found) throw notFound(type, name);
    return found;
  }

  list(type: ResourceType, namespace: string | undefined, options: ListOptions = {}): ObjectList {
    const labels = labelMatcher(options.labelSelector);
    const fields = fieldMatcher(options.fieldSelector, type.kind);
    const resourceVersion = String(this.store.resourceVersion);
    const all = this.store
      .list(typeKey(type), scope(type, namespace))
      .filter((o) => labels(o) && fields(o))
      .map((o) => withTypeMeta(type, o));
    let start = 0;
    if (options.continue) {
      const token = decodeContinue(options.continue);
      if (token.rv < this.store.oldestResourceVersion)
        throw gone("The provided continue parameter is too old to display a consistent list result.");
      start = token.start;
    }
    if (!options.limit || options.limit <= 0 || start + options.limit >= all.length)
      return { resourceVersion, items: all.slice(start) };
    const end = start + options.limit;
    return {
      resourceVersion,
      items: all.slice(start, end),
      continue: encodeContinue({ rv: this.store.resourceVersion, start: end }),
      remainingItemCount: all.length - end,
    };
  }

  create(
    type: ResourceType,
    namespace: string | undefined,
    body: unknown,
    options: WriteOptions = {},
  ): KubeObject {
    const object = asObject(type, body);
    const ns = scope(type, namespace ?? object.metadata.namespace);
    checkNamespaceOf(type, object, ns);
    if (ns !== undefined && !this.store.get(typeKey(this.type("", "v1", "namespaces")), undefined, ns))
      throw notFound({ group: "", resource: "namespaces", kind: "Namespace" }, ns);
    if (object.metadata.resourceVersion)
      throw new KubeError(500, "InternalError", "resourceVersion should not be set on objects to be created");
    const meta = object.metadata;
    if (!meta.name && meta.generateName) meta.name = generateName(meta.generateName);
    if (!meta.name) {
      throw invalid(type, "", [
        {
          reason: "FieldValueRequired",
          field: "metadata.name",
          message: "Required value: name or generateName is required",
        },
      ]);
    }
    if (ns !== undefined) meta.namespace = ns;
    else delete meta.namespace;
    if (this.store.get(typeKey(type), ns, meta.name)) throw alreadyExists(type, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    if (tracksGeneration(type)) meta.generation = 1;
    if (type.statusSubresource) delete object.status;
    defaultOnCreate(type, object);
    this.#validate(type, object);
    if (options.dryRun) return object;
    return this.store.put(typeKey(type), object);
  }

  /** PUT: the whole object (or only its status), with the resourceVersion it was read at. */
  update(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: WriteOptions & { subresource?: "status" } = {},
  ): KubeObject {
    const candidate = asObject(type, body);
    checkNamespaceOf(type, candidate, scope(type, namespace));
    if (candidate.metadata.name !== undefined && candidate.metadata.name !== name)
      throw badRequest(
        `the name of the object (${candidate.metadata.name}) does not match the name on the URL (${name})`,
      );
    const current = this.get(type, namespace, name);
    const rv = candidate.metadata.resourceVersion;
    if (rv === undefined || rv === "") {
      if (type.custom) {
        throw invalid(type, name, [
          {
            reason: "FieldValueInvalid",
            field: "metadata.resourceVersion",
            message: "Invalid value: 0x0: must be specified for an update",
          },
        ]);
      }
    } else if (rv !== current.metadata.resourceVersion) throw conflict(type, name);
    return this.#write(type, current, candidate, options);
  }

  patch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    contentType: string,
    options: WriteOptions & { subresource?: "status" } = {},
  ): KubeObject {
    const current = this.get(type, namespace, name);
    const patched = asObject(type, applyPatch(current, body, contentType));
    if (patched.metadata.resourceVersion !== current.metadata.resourceVersion) throw conflict(type, name);
    if (patched.metadata.name !== name)
      throw badRequest(
        `the name of the object (${patched.metadata.name}) does not match the name on the URL (${name})`,
      );
    return this.#write(type, current, patched, options);
  }

  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): KubeObject {
    const current = this.get(type, namespace, name);
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid)
      throw conflict(
        type,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
      throw conflict(
        type,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    if (options.dryRun) return withTypeMeta(type, current);
    const removed = this.store.remove(typeKey(type), scope(type, namespace), name) as KubeObject;
    this.#collectGarbage(removed, type.kind === "Namespace" ? name : undefined);
    return withTypeMeta(type, removed);
  }

  deleteCollection(
    type: ResourceType,
    namespace: string | undefined,
    options: ListOptions & WriteOptions,
  ): ObjectList {
    const listed = this.list(type, namespace, {
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
    });
    const items = listed.items.map((o) =>
      this.delete(type, o.metadata.namespace, o.metadata.name as string, options),
    );
    return { resourceVersion: String(this.store.resourceVersion), items };
  }

  /** Dependents go with their owner (background propagation); a namespace's objects go with it. */
  #collectGarbage(owner: KubeObject, namespace: string | undefined): void {
    const doomed: [ResourceType, KubeObject][] = [];
    for (const [key, object] of this.store.everything()) {
      const owned = object.metadata.ownerReferences?.some((ref) => ref.uid === owner.metadata.uid);
      if (owned || (namespace !== undefined && object.metadata.namespace === namespace))
        doomed.push([this.types.get(key) as ResourceType, object]);
    }
    for (const [type, object] of doomed) {
      if (this.store.get(typeKey(type), object.metadata.namespace, object.metadata.name as string))
        this.delete(type, object.metadata.namespace, object.metadata.name as string);
    }
  }

  #write(
    type: ResourceType,
    current: KubeObject,
    candidate: KubeObject,
    options: WriteOptions & { subresource?: "status" },
  ): KubeObject {
    let next: KubeObject;
    if (options.subresource === "status") {
      next = { ...current, status: candidate.status };
      if (candidate.status === undefined) delete next.status;
    } else {
      next = { ...candidate, metadata: { ...candidate.metadata } };
      if (type.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = current.status;
      }
    }
    // What the server owns cannot be changed by a client.
    for (const key of ["uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp"]) {
      if (current.metadata[key] === undefined) delete next.metadata[key];
      else next.metadata[key] = current.metadata[key];
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    next.apiVersion = current.apiVersion;
    next.kind = current.kind;
    defaultOnUpdate(type, next);
    if (tracksGeneration(type) && !isDeepStrictEqual(specOf(next), specOf(current)))
      next.metadata.generation = (current.metadata.generation ?? 0) + 1;
    this.#validate(type, next);
    if (isDeepStrictEqual(next, current) || options.dryRun) return next;
    return this.store.put(typeKey(type), next);
  }

  #validate(type: ResourceType, object: KubeObject): void {
    const causes: StatusCause[] = [...coreRules(type, object)];
    if (type.schema) causes.push(...validateAgainst(type.schema.document, type.schema.definition, object));
    if (type.kind === "VirtualMachine") {
      causes.push(...admitVirtualMachine(object, this.admission));
      const preference = referencedClusterPreference(object);
      if (preference !== undefined) {
        const found = this.store.get(
          typeKey(this.typeOfKind("VirtualMachineClusterPreference")),
          undefined,
          preference,
        );
        causes.push(...admitPreference(object, preference, found));
      }
    }
    if (type.kind === "VirtualMachineInstance")
      causes.push(...admitVirtualMachineInstance(object, this.admission));
    if (causes.length > 0) throw invalid(type, object.metadata.name ?? "", causes);
  }
}

const scope = (type: ResourceType, namespace: string | undefined) =>
  type.namespaced ? namespace : undefined;

const tracksGeneration = (type: ResourceType) => type.custom || type.kind === "Job";

function specOf(object: KubeObject): unknown {
  const { metadata: _m, status: _s, ...rest } = object;
  return rest;
}

export function withTypeMeta(type: ResourceType, object: KubeObject): KubeObject {
  return { apiVersion: apiVersionOf(type), kind: type.kind, ...object };
}

/** A request body as an object of the type: kind and apiVersion may be left out, not contradicted. */
function asObject(type: ResourceType, body: unknown): KubeObject {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw badRequest(`the body of the request is not a ${type.kind} object`);
  const object = structuredClone(body) as KubeObject;
  const apiVersion = apiVersionOf(type);
  if (object.kind !== undefined && object.kind !== type.kind)
    throw badRequest(
      `the API version in the data (${object.apiVersion}) does not match the expected API version (${apiVersion}) or the kind ${object.kind} is not ${type.kind}`,
    );
  if (object.apiVersion !== undefined && object.apiVersion !== apiVersion)
    throw badRequest(
      `the API version in the data (${object.apiVersion}) does not match the expected API version (${apiVersion})`,
    );
  if (object.metadata === undefined || object.metadata === null) object.metadata = {};
  if (typeof object.metadata !== "object" || Array.isArray(object.metadata))
    throw badRequest("metadata must be an object");
  object.apiVersion = apiVersion;
  object.kind = type.kind;
  return object;
}

function checkNamespaceOf(type: ResourceType, object: KubeObject, namespace: string | undefined): void {
  const given = object.metadata.namespace;
  if (type.namespaced && given !== undefined && given !== "" && given !== namespace)
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
}

function generateName(prefix: string): string {
  let suffix = "";
  for (let i = 0; i < 5; i++) suffix += GENERATE_ALPHABET[randomInt(GENERATE_ALPHABET.length)];
  return `${prefix.slice(0, 63 - 5)}${suffix}`;
}

function defaultOnCreate(type: ResourceType, object: KubeObject): void {
  if (type.kind === "Namespace") object.status = { phase: "Active" };
  if (type.kind === "Pod") object.status = { phase: "Pending" };
  defaultOnUpdate(type, object);
}

/** Secrets: stringData is written into data (base64) and never stored, like the apiserver does. */
function defaultOnUpdate(type: ResourceType, object: KubeObject): void {
  if (type.kind !== "Secret") return;
  const stringData = object.stringData as Record<string, string> | undefined;
  if (stringData && typeof stringData === "object") {
    const data = { ...((object.data as Record<string, string> | undefined) ?? {}) };
    for (const [key, value] of Object.entries(stringData))
      data[key] = Buffer.from(String(value)).toString("base64");
    object.data = data;
  }
  delete object.stringData;
  object.type ??= "Opaque";
}

/** What the apiserver checks of built-in objects: names, ConfigMap and Secret data, Event targets. */
function coreRules(type: ResourceType, object: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = object.metadata.name ?? "";
  const label = type.kind === "Namespace";
  const valid = label
    ? DNS1123_LABEL.test(name) && name.length <= 63
    : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (!valid) {
    causes.push({
      reason: "FieldValueInvalid",
      field: "metadata.name",
      message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 ${label ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-'${label ? "" : " or '.'"}, and must start and end with an alphanumeric character`,
    });
  }
  if (type.group !== "") return causes;
  if (type.kind === "ConfigMap" || type.kind === "Secret") {
    let bytes = 0;
    for (const field of type.kind === "ConfigMap" ? ["data", "binaryData"] : ["data"]) {
      const data = object[field];
      if (data === undefined || data === null) continue;
      if (typeof data !== "object" || Array.isArray(data)) {
        causes.push({
          reason: "FieldValueTypeInvalid",
          field,
          message: "Invalid value: must be a map of strings",
        });
        continue;
      }
      for (const [key, value] of Object.entries(data)) {
        const path = `${field}[${key}]`;
        if (!CONFIG_KEY.test(key))
          causes.push({
            reason: "FieldValueInvalid",
            field: path,
            message: `Invalid value: ${JSON.stringify(key)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
          });
        if (typeof value !== "string") {
          causes.push({
            reason: "FieldValueTypeInvalid",
            field: path,
            message: "Invalid value: must be a string",
          });
          continue;
        }
        const binary = field === "binaryData" || type.kind === "Secret";
        if (binary && !/^[A-Za-z0-9+/]*={0,2}$/.test(value))
          causes.push({
            reason: "FieldValueInvalid",
            field: path,
            message: "Invalid value: illegal base64 data",
          });
        bytes += binary ? Buffer.from(value, "base64").length : Buffer.byteLength(value);
      }
    }
    if (bytes > MAX_OBJECT_DATA_BYTES)
      causes.push({
        reason: "FieldValueTooLong",
        field: "data",
        message: `Too long: must have at most ${MAX_OBJECT_DATA_BYTES} bytes`,
      });
  }
  if (type.kind === "Event") {
    const involved = (object.involvedObject ?? {}) as { namespace?: string };
    if (involved.namespace !== undefined && involved.namespace !== object.metadata.namespace)
      causes.push({
        reason: "FieldValueInvalid",
        field: "involvedObject.namespace",
        message: `Invalid value: ${JSON.stringify(involved.namespace)}: does not match event.namespace`,
      });
  }
  return causes;
}

interface ContinueToken {
  rv: number;
  start: number;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

function decodeContinue(text: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(text, "base64url").toString()) as ContinueToken;
    if (Number.isInteger(token.rv) && Number.isInteger(token.start) && token.start >= 0) return token;
  } catch {
    // falls through to the error below
  }
  throw new KubeError(400, "BadRequest", "invalid continue token");
}
