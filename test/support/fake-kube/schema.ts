// Validation of KubeVirt and CDI objects against their published Swagger 2.0 definitions, the way an API
// server with structural schemas and strict field validation does: types, required fields, enums, and no
// field the schema does not declare. The definitions are JSON Schema (draft 4 subset) plus Kubernetes
// extensions; they are adapted once for ajv, and ajv's errors are turned into field errors with
// Kubernetes paths (spec.template.spec.volumes[0].name).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import formats from "ajv-formats";
import type { StatusCause } from "./status.ts";

export const REFERENCE_DIR = join(
  import.meta.dirname,
  "..",
  "..",
  "..",
  "..",
  "shared",
  "reference",
  "kubevirt",
);

export const SCHEMA_FILES = {
  kubevirt: join(REFERENCE_DIR, "kubevirt-swagger.json"),
  cdi: join(REFERENCE_DIR, "cdi-swagger.json"),
} as const;

export type SchemaDocument = keyof typeof SCHEMA_FILES;

type Schema = Record<string, unknown>;

/** Types that hold arbitrary JSON (embedded objects, managedFields); everything else is closed. */
const FREE_FORM = /(^|\.)(RawExtension|FieldsV1|Patch)$/;
/** resource.Quantity is a string on the wire, but a number is accepted too ("memory: 1024"). */
const QUANTITY = /(^|\.)resource\.Quantity$/;

/** Rewrites one definition's schema for ajv: closed objects, Kubernetes formats, nullable, no docs. */
function adapt(node: unknown, definitionName?: string): unknown {
  if (Array.isArray(node)) return node.map((item) => adapt(item));
  if (node === null || typeof node !== "object") return node;
  const source = node as Schema;
  if (definitionName && QUANTITY.test(definitionName)) return { type: ["string", "number"] };
  if (definitionName && FREE_FORM.test(definitionName)) return { type: "object" };
  const out: Schema = {};
  for (const [key, value] of Object.entries(source)) {
    if (key === "description" || key === "default" || key === "nullable" || key.startsWith("x-")) continue;
    if (key === "properties") {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([name, schema]) => [name, adapt(schema)]),
      );
    } else out[key] = adapt(value);
  }
  if (source.format === "int-or-string") {
    delete out.format;
    out.type = ["integer", "string"];
  }
  if (out.type === "object" && out.additionalProperties === undefined) out.additionalProperties = false;
  if (source.nullable === true && typeof out.type === "string") out.type = [out.type, "null"];
  return out;
}

interface LoadedDocument {
  names: Set<string>;
  validators: Map<string, ValidateFunction>;
  ajv: Ajv;
  id: string;
}

const loaded = new Map<SchemaDocument, LoadedDocument>();

function load(document: SchemaDocument): LoadedDocument {
  const cached = loaded.get(document);
  if (cached) return cached;
  const swagger = JSON.parse(readFileSync(SCHEMA_FILES[document], "utf8")) as {
    definitions: Record<string, unknown>;
  };
  const definitions = Object.fromEntries(
    Object.entries(swagger.definitions).map(([name, schema]) => [name, adapt(schema, name)]),
  );
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
  formats.default(ajv, ["date-time", "int32", "int64", "float", "double", "byte"]);
  const id = `https://osimg.test/${document}.json`;
  ajv.addSchema({ $id: id, definitions });
  const result = { names: new Set(Object.keys(definitions)), validators: new Map(), ajv, id };
  loaded.set(document, result);
  return result;
}

/** True when the document has the definition, e.g. "v1.VirtualMachine". */
export function hasDefinition(document: SchemaDocument, definition: string): boolean {
  return load(document).names.has(definition);
}

function validatorFor(document: SchemaDocument, definition: string): ValidateFunction {
  const doc = load(document);
  let validate = doc.validators.get(definition);
  if (!validate) {
    const found = doc.ajv.getSchema(`${doc.id}#/definitions/${definition}`);
    if (!found) throw new Error(`${document} swagger has no definition ${definition}`);
    validate = found;
    doc.validators.set(definition, validate);
  }
  return validate;
}

/** Field errors of `object` against a definition; empty when it is valid. */
export function validateAgainst(
  document: SchemaDocument,
  definition: string,
  object: unknown,
): StatusCause[] {
  const validate = validatorFor(document, definition);
  if (validate(object)) return [];
  const causes = (validate.errors ?? []).map((e) => toCause(e, object));
  // A value of the wrong type also fails the nullable alternatives; one cause per field and message.
  const seen = new Set<string>();
  return causes.filter((c) => {
    const key = `${c.field}\u0000${c.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** JSON pointer → Kubernetes field path (indexes and map keys with dots or slashes in brackets), and the value there. */
export function resolvePointer(pointer: string, root: unknown): { field: string; value: unknown } {
  let field = "";
  let value: unknown = root;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    field = Array.isArray(value) ? `${field}[${key}]` : childPath(field, key);
    value = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
  }
  return { field, value };
}

export const childPath = (base: string, key: string) =>
  /[./]/.test(key) ? `${base}[${key}]` : base === "" ? key : `${base}.${key}`;

function toCause(error: ErrorObject, root: unknown): StatusCause {
  const { field, value } = resolvePointer(error.instancePath, root);
  const shown = JSON.stringify(typeof value === "object" && value !== null ? typeOf(value) : value);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "required":
      return {
        reason: "FieldValueRequired",
        field: childPath(field, String(params.missingProperty)),
        message: "Required value",
      };
    case "additionalProperties": {
      const name = String(params.additionalProperty);
      return {
        reason: "FieldValueInvalid",
        field: childPath(field, name),
        message: `unknown field "${childPath(field, name)}"`,
      };
    }
    case "type":
      return {
        reason: "FieldValueTypeInvalid",
        field,
        message: `Invalid value: ${shown}: ${field} in body must be of type ${[params.type].flat().join(" or ")}: ${shown}`,
      };
    case "enum":
      return {
        reason: "FieldValueNotSupported",
        field,
        message: `Unsupported value: ${shown}: supported values: ${(params.allowedValues as unknown[])
          .map((v) => JSON.stringify(v))
          .join(", ")}`,
      };
    case "format":
      return {
        reason: "FieldValueInvalid",
        field,
        message: `Invalid value: ${shown}: ${field} in body must be of type ${String(params.format)}: ${shown}`,
      };
    default:
      return {
        reason: "FieldValueInvalid",
        field,
        message: `Invalid value: ${shown}: ${error.message ?? "invalid"}`,
      };
  }
}

function typeOf(value: object): string {
  return Array.isArray(value) ? "array" : "object";
}
