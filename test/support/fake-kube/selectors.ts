// Label and field selectors with kube-apiserver's syntax and rules: set-based label requirements
// (`a in (x,y)`, `!a`), and field selectors limited to the fields each type supports.
import type { KubeObject } from "./resources.ts";
import { badRequest } from "./status.ts";

type Requirement =
  | { op: "exists" | "!exists"; key: string }
  | { op: "in" | "notin"; key: string; values: string[] };

export type Matcher = (object: KubeObject) => boolean;

export const matchAll: Matcher = () => true;

/** Splits at top-level commas: the commas inside `in (a,b)` belong to their requirement. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current.trim());
      current = "";
    } else current += ch;
  }
  if (current.trim() !== "") parts.push(current.trim());
  return parts.filter((p) => p !== "");
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function parseRequirement(text: string, selector: string): Requirement {
  const fail = () =>
    badRequest(`unable to parse requirement: invalid label selector "${selector}" at "${text}"`);
  const set = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(text);
  let requirement: Requirement;
  if (set) {
    const values = (set[3] as string).split(",").map((v) => v.trim());
    requirement = { op: set[2] as "in" | "notin", key: set[1] as string, values };
  } else if (text.startsWith("!")) {
    requirement = { op: "!exists", key: text.slice(1).trim() };
  } else {
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(text);
    if (eq) {
      requirement = { op: eq[2] === "!=" ? "notin" : "in", key: eq[1] as string, values: [eq[3] as string] };
    } else if (/^[^=!\s()]+$/.test(text)) {
      requirement = { op: "exists", key: text };
    } else throw fail();
  }
  if (!LABEL_KEY.test(requirement.key)) throw fail();
  if ("values" in requirement && requirement.values.some((v) => v.length > 63 || !LABEL_VALUE.test(v)))
    throw fail();
  return requirement;
}

export function labelMatcher(selector: string | undefined): Matcher {
  if (!selector) return matchAll;
  const requirements = splitRequirements(selector).map((r) => parseRequirement(r, selector));
  return (object) => {
    const labels = object.metadata.labels ?? {};
    return requirements.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      switch (r.op) {
        case "exists":
          return has;
        case "!exists":
          return !has;
        case "in":
          return has && r.values.includes(labels[r.key] as string);
        case "notin":
          return !has || !r.values.includes(labels[r.key] as string);
      }
      return false;
    });
  };
}

/** Fields each kind can be selected by, beyond metadata.name and metadata.namespace. */
const SELECTABLE_FIELDS: Record<string, readonly string[]> = {
  Event: [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
  ],
  Pod: [
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
  ],
  Secret: ["type"],
  Job: ["status.successful"],
  Namespace: ["status.phase"],
};

function fieldValue(object: KubeObject, path: string): string {
  let value: unknown = object;
  for (const key of path.split(".")) {
    value = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
  }
  if (path === "source" && value !== null && typeof value === "object")
    return String((value as { component?: string }).component ?? "");
  return value === undefined || value === null ? "" : String(value);
}

export function fieldMatcher(selector: string | undefined, kind: string): Matcher {
  if (!selector) return matchAll;
  const allowed = new Set(["metadata.name", "metadata.namespace", ...(SELECTABLE_FIELDS[kind] ?? [])]);
  const terms = selector
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "")
    .map((term) => {
      const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
      if (!m) throw badRequest(`invalid field selector: "${term}"`);
      const field = m[1] as string;
      if (!allowed.has(field)) throw badRequest(`field label not supported: ${field}`);
      return { field, negate: m[2] === "!=", value: m[3] as string };
    });
  return (object) => terms.every((t) => (fieldValue(object, t.field) === t.value) !== t.negate);
}
