// images.yaml and ConfigMap parsing with positions. Pure: text in, entries and findings out. Never
// throws: YAML syntax errors, wrong shapes and even parser failures become findings at a line:column of
// the file the user edits, also when the catalog is a string inside a ConfigMap.
import {
  type Document,
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  type Node,
  type Pair,
  parseAllDocuments,
  type Scalar,
  type YAMLMap,
} from "yaml";
import {
  closest,
  type FieldIssue,
  type FieldName,
  type FieldResult,
  firstSentence,
  KNOWN_FIELDS,
  MAP_FIELDS,
  parseAdditionalDisks,
  parseBootOrder,
  parseCloudInit,
  parseCloudUser,
  parseContainerDiskRepo,
  parseContainerDiskTag,
  parseFeatures,
  parseFirmware,
  parseImageUrl,
  parseMachineType,
  parseOsName,
  parseSha256,
  parseSizeField,
  parseVcpu,
  REQUIRED_FIELDS,
  utf8Length,
} from "./fields.ts";
import { byPosition, type Finding, type FindingInput, FindingSink } from "./findings.ts";
import {
  type CatalogEntry,
  type CatalogFormat,
  type EntrySpec,
  entryId,
  hasErrors,
  type ParsedCatalog,
} from "./model.ts";
import { fileLocator, type Locator, scalarLocator } from "./positions.ts";
import { duplicateNames, entryIssues } from "./rules.ts";

/** Larger input is refused before parsing, so that every input is handled in bounded time. */
export const MAX_CATALOG_BYTES = 2 * 1024 * 1024;
/** Kubernetes refuses ConfigMaps larger than this. */
export const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;
export const CONFIGMAP_KEY = "images.yaml";

// Duplicate keys are found by the walk (a Set, linear); the library's own check is quadratic in map size.
const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: false, strict: true } as const;

/** One text being read: the file itself, or a string inside it. */
interface Layer {
  text: string;
  locate: Locator;
  doc: Document.Parsed;
  sink: FindingSink;
}

export function parseCatalog(text: string): ParsedCatalog {
  const sink = new FindingSink();
  const locate = fileLocator(text);
  try {
    const parsed = parseOuter(text, locate, sink);
    return { ...parsed, findings: sink.findings.sort(byPosition) };
  } catch (error) {
    const reason =
      error instanceof RangeError ? "the YAML is nested too deeply" : `the parser failed (${String(error)})`;
    sink.add(
      { severity: "error", code: "yaml.unreadable", path: "", message: `cannot read the catalog: ${reason}` },
      0,
      locate,
    );
    return { format: "images.yaml", entries: [], findings: sink.findings };
  }
}

function parseOuter(text: string, locate: Locator, sink: FindingSink): Omit<ParsedCatalog, "findings"> {
  const empty = { format: "images.yaml" as CatalogFormat, entries: [] };
  const bytes = utf8Length(text);
  if (bytes > MAX_CATALOG_BYTES) {
    sink.add(
      {
        severity: "error",
        code: "catalog.too_large",
        path: "",
        message: `the catalog is ${bytes} bytes; at most ${MAX_CATALOG_BYTES} are read`,
        hint: `a ConfigMap holds at most ${CONFIGMAP_LIMIT_BYTES} bytes; split the catalog into project overlays`,
      },
      0,
      locate,
    );
    return empty;
  }
  const docs = parseAllDocuments(text, YAML_OPTIONS);
  if (!Array.isArray(docs) || docs.length === 0) {
    sink.add(
      {
        severity: "error",
        code: "catalog.empty",
        path: "",
        message: "the catalog is empty",
        hint: "start it with `images:`",
      },
      0,
      locate,
    );
    return empty;
  }
  const chosen = docs.findIndex(
    (d) => isMap(d.contents) && (d.contents.has("images") || isConfigMap(d.contents)),
  );
  const doc = docs[chosen === -1 ? 0 : chosen] as Document.Parsed;
  const outer: Layer = { text, locate, doc, sink };
  reportYamlProblems(outer, "");
  docs.forEach((other, index) => {
    if (other === doc) return;
    reportYamlProblems({ ...outer, doc: other }, "");
    sink.add(
      {
        severity: "warning",
        code: "catalog.extra_document",
        path: "",
        message: `YAML document ${index + 1} is ignored`,
        hint: "keep one catalog per file",
      },
      other.range[0],
      locate,
    );
  });

  const root = doc.contents;
  if (isMap(root) && isConfigMap(root)) {
    if (bytes > CONFIGMAP_LIMIT_BYTES) {
      sink.add(
        {
          severity: "error",
          code: "configmap.too_large",
          path: "",
          message: `the ConfigMap is ${bytes} bytes; Kubernetes accepts at most ${CONFIGMAP_LIMIT_BYTES}`,
        },
        0,
        locate,
      );
    }
    const inner = configMapCatalog(root, outer);
    return { format: "configmap", entries: inner ? walkCatalogRoot(inner) : [] };
  }
  return { format: "images.yaml", entries: walkCatalogRoot(outer) };
}

function isConfigMap(root: YAMLMap): boolean {
  const kind = root.get("kind");
  const data = root.get("data", true);
  return kind === "ConfigMap" || (isMap(data) && data.has(CONFIGMAP_KEY));
}

/** The images.yaml string of a ConfigMap, as a layer of its own whose positions map to the file. */
function configMapCatalog(root: YAMLMap, outer: Layer): Layer | undefined {
  const dataPair = findPair(root, "data");
  const data = dataPair?.value;
  const at = (node: Node | null | undefined) => node?.range?.[0] ?? root.range?.[0] ?? 0;
  const report = (input: Omit<FindingInput, "severity" | "path">, offset: number) =>
    outer.sink.add({ severity: "error", path: `data["${CONFIGMAP_KEY}"]`, ...input }, offset, outer.locate);
  if (!isMap(data)) {
    report(
      {
        code: "configmap.no_data",
        message: "the ConfigMap has no data",
        hint: `add data: { ${CONFIGMAP_KEY}: | ... }`,
      },
      at(root),
    );
    return undefined;
  }
  const pair = findPair(data, CONFIGMAP_KEY);
  if (!pair) {
    const keys = data.items.map((p) => String(isScalar(p.key) ? p.key.value : "")).filter((k) => k !== "");
    const suggestion = closest(CONFIGMAP_KEY, keys);
    report(
      {
        code: "configmap.no_key",
        message: `the ConfigMap has no data["${CONFIGMAP_KEY}"]`,
        hint: suggestion
          ? `rename "${suggestion}" to "${CONFIGMAP_KEY}"`
          : `the catalog goes under data.${CONFIGMAP_KEY}`,
      },
      at(data),
    );
    return undefined;
  }
  const value = pair.value;
  if (!isScalar(value) || typeof value.value !== "string") {
    report(
      {
        code: "configmap.not_string",
        message: `data["${CONFIGMAP_KEY}"] must be a string holding the catalog`,
        hint: `write "${CONFIGMAP_KEY}: |" and indent the catalog below it`,
      },
      at(value as Node | null),
    );
    return undefined;
  }
  const text = value.value;
  const locate = scalarLocator(value, outer.text, outer.locate);
  const docs = parseAllDocuments(text, YAML_OPTIONS);
  if (!Array.isArray(docs) || docs.length === 0) {
    report(
      {
        code: "catalog.empty",
        message: `data["${CONFIGMAP_KEY}"] is empty`,
        hint: "start it with `images:`",
      },
      at(value),
    );
    return undefined;
  }
  const layer: Layer = { text, locate, doc: docs[0] as Document.Parsed, sink: outer.sink };
  reportYamlProblems(layer, `data["${CONFIGMAP_KEY}"]`);
  for (const extra of docs.slice(1)) reportYamlProblems({ ...layer, doc: extra }, `data["${CONFIGMAP_KEY}"]`);
  return layer;
}

/** Syntax errors after the first few are nearly always echoes of those; they are counted, not listed. */
const MAX_SYNTAX_ERRORS = 5;

function reportYamlProblems(layer: Layer, path: string): void {
  const { errors } = layer.doc;
  if (errors.length > MAX_SYNTAX_ERRORS) {
    const last = errors[MAX_SYNTAX_ERRORS] as (typeof errors)[number];
    layer.sink.add(
      {
        severity: "info",
        code: "yaml.more_errors",
        path,
        message: `${errors.length - MAX_SYNTAX_ERRORS} more YAML errors follow; fix the first ones and lint again`,
      },
      last.pos[0],
      layer.locate,
    );
  }
  for (const error of errors.slice(0, MAX_SYNTAX_ERRORS)) {
    layer.sink.add(
      {
        severity: "error",
        code: `yaml.${error.code.toLowerCase()}`,
        path,
        message: `YAML syntax: ${firstSentence(error.message)}`,
      },
      error.pos[0],
      layer.locate,
    );
  }
  for (const warning of layer.doc.warnings) {
    layer.sink.add(
      {
        severity: "warning",
        code: `yaml.${warning.code.toLowerCase()}`,
        path,
        message: `YAML: ${firstSentence(warning.message)}`,
      },
      warning.pos[0],
      layer.locate,
    );
  }
}

function findPair(map: YAMLMap, key: string): Pair<Node, Node | null> | undefined {
  return (map.items as Pair<Node, Node | null>[]).find((p) => isScalar(p.key) && p.key.value === key);
}

function walkCatalogRoot(layer: Layer): CatalogEntry[] {
  // Entries of a document with syntax errors are guesses; checking them would only add echoes.
  if (layer.doc.errors.length > 0) return [];
  const root = layer.doc.contents;
  const add = (input: Omit<FindingInput, "path"> & { path?: string }, offset: number) =>
    layer.sink.add({ path: "", ...input }, offset, layer.locate);
  if (!isMap(root)) {
    if (root !== null && !hasErrors(layer.sink.findings)) {
      add(
        {
          severity: "error",
          code: "catalog.shape",
          message: "the catalog must be a mapping with an `images:` list",
        },
        root.range[0],
      );
    } else if (root === null) {
      add(
        {
          severity: "error",
          code: "catalog.empty",
          message: "the catalog is empty",
          hint: "start it with `images:`",
        },
        0,
      );
    }
    return [];
  }
  let imagesSeen = false;
  for (const pair of root.items as Pair<Node, Node | null>[]) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    if (key === "images" && imagesSeen) {
      add(
        {
          severity: "error",
          code: "catalog.duplicate_images",
          path: "images",
          message: "`images:` appears twice",
          hint: "merge the two lists",
        },
        pair.key?.range?.[0] ?? 0,
      );
    }
    imagesSeen ||= key === "images";
    if (key !== "images") {
      add(
        {
          severity: "warning",
          code: "catalog.unknown_key",
          path: key,
          message: `unknown top-level key "${key}" is ignored`,
          hint: closest(key, ["images"]) ? 'did you mean "images"?' : "the catalog is the `images:` list",
        },
        pair.key?.range?.[0] ?? 0,
      );
    }
  }
  const imagesPair = findPair(root, "images");
  const images = imagesPair?.value;
  if (!imagesPair) {
    add(
      { severity: "error", code: "catalog.no_images", message: "the catalog has no `images:` list" },
      root.range[0],
    );
    return [];
  }
  if (images === null || (isScalar(images) && images.value === null)) {
    add(
      {
        severity: "warning",
        code: "catalog.no_entries",
        path: "images",
        message: "the `images:` list is empty",
      },
      imagesPair.key?.range?.[0] ?? 0,
    );
    return [];
  }
  if (!isSeq(images)) {
    add(
      {
        severity: "error",
        code: "catalog.images_shape",
        path: "images",
        message: "`images:` must be a list of entries, each starting with `- OS_NAME:`",
      },
      images?.range?.[0] ?? 0,
    );
    return [];
  }
  const entries: CatalogEntry[] = [];
  images.items.forEach((item, index) => {
    const node = isAlias(item) ? item.resolve(layer.doc) : item;
    if (!isMap(node)) {
      add(
        {
          severity: "error",
          code: "entry.shape",
          path: `images[${index}]`,
          message: "an entry must be a mapping of fields (OS_NAME: …)",
        },
        (item as Node | null)?.range?.[0] ?? images.range?.[0] ?? 0,
      );
      return;
    }
    entries.push(walkEntry(node, index, layer));
  });
  markDuplicates(entries, layer);
  return entries;
}

interface FieldNode {
  keyOffset: number;
  node: Node | null;
}

function walkEntry(map: YAMLMap, index: number, layer: Layer): CatalogEntry {
  const path = `images[${index}]`;
  const entryOffset = map.range?.[0] ?? 0;
  const start = layer.sink.findings.length;
  const add = (input: Omit<FindingInput, "path"> & { path?: string }, offset: number) =>
    layer.sink.add({ path, ...input }, offset, layer.locate);

  const values: Record<string, unknown> = {};
  const fields = new Map<string, FieldNode>();
  for (const pair of map.items as Pair<Node, Node | null>[]) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    const keyOffset = pair.key?.range?.[0] ?? entryOffset;
    if (key === undefined) {
      add(
        { severity: "error", code: "entry.key", message: "field names must be plain words such as OS_NAME" },
        keyOffset,
      );
      continue;
    }
    const earlier = fields.get(key);
    if (earlier) {
      add(
        {
          severity: "error",
          code: "entry.duplicate_key",
          path: `${path}.${key}`,
          message: `${key} appears twice in this entry (first at line ${layer.locate(earlier.keyOffset).line})`,
          hint: "keep one of them",
        },
        keyOffset,
      );
      continue;
    }
    values[key] = toPlain(pair.value, layer.doc);
    fields.set(key, { keyOffset, node: pair.value });
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      const suggestion = closest(key, KNOWN_FIELDS);
      add(
        {
          severity: "warning",
          code: "entry.unknown_field",
          path: `${path}.${key}`,
          message: `unknown field ${key} is kept but not used`,
          hint: suggestion ? `did you mean ${suggestion}?` : undefined,
        },
        keyOffset,
      );
    }
  }

  for (const field of REQUIRED_FIELDS) {
    if (!fields.has(field)) {
      add(
        {
          severity: "error",
          code: "entry.missing",
          message: `missing required field ${field}`,
          path: `${path}.${field}`,
        },
        entryOffset,
      );
    }
  }

  const texts = new Map<FieldName, { text: string; scalar: Scalar | undefined; offset: number }>();
  for (const field of KNOWN_FIELDS) {
    const found = fields.get(field);
    if (!found || MAP_FIELDS.has(field)) continue;
    const text = fieldText(field, found, `${path}.${field}`, layer);
    if (text) texts.set(field, text);
  }

  const spec: EntrySpec = { firmware: "bios", features: [], bootOrder: [], additionalDisks: [] };
  const run = <T>(field: FieldName, parse: (text: string) => FieldResult<T>, assign: (value: T) => void) => {
    const found = texts.get(field);
    if (!found) return;
    const result = parse(found.text);
    if (result.value !== undefined) assign(result.value);
    placeIssues(result.issues, found, `${path}.${field}`, layer);
  };
  run("OS_NAME", parseOsName, (v) => (spec.name = v));
  run("CLOUD_USER", parseCloudUser, (v) => (spec.cloudUser = v));
  run(
    "OS_IMAGE_URL",
    (t) => parseImageUrl("OS_IMAGE_URL", t),
    (v) => (spec.imageUrl = v),
  );
  run(
    "MIN_MEMORY",
    (t) => parseSizeField("MIN_MEMORY", t),
    (v) => (spec.minMemoryBytes = v),
  );
  run("MIN_VCPU", parseVcpu, (v) => (spec.minVcpu = v));
  run(
    "MIN_STORAGE",
    (t) => parseSizeField("MIN_STORAGE", t),
    (v) => (spec.minStorageBytes = v),
  );
  run("FIRMWARE_TYPE", parseFirmware, (v) => (spec.firmware = v));
  run("MACHINE_TYPE", parseMachineType, (v) => (spec.machineType = v));
  run("FEATURES", parseFeatures, (v) => (spec.features = v));
  run("CLOUD_INIT", parseCloudInit, (v) => (spec.cloudInit = v));
  run("BOOT_ORDER", parseBootOrder, (v) => (spec.bootOrder = v));
  run("ADDITIONAL_DISKS", parseAdditionalDisks, (v) => (spec.additionalDisks = v));
  run(
    "OS_IMAGE_UPSTREAM",
    (t) => parseImageUrl("OS_IMAGE_UPSTREAM", t),
    (v) => (spec.upstreamUrl = v),
  );
  run(
    "OS_IMAGE_MIRROR_PATH",
    (t) => ({ value: t, issues: [] }),
    (v) => (spec.mirrorPath = v),
  );
  run("OS_IMAGE_SHA256", parseSha256, (v) => (spec.sha256 = v));
  run("OS_CONTAINERDISK_REPO", parseContainerDiskRepo, (v) => (spec.containerDisk = { repo: v }));
  run("OS_CONTAINERDISK_TAG", parseContainerDiskTag, (v) => {
    if (spec.containerDisk) spec.containerDisk.tag = v;
  });
  run(
    "OS_FAMILY_ID",
    (t) => ({ value: t, issues: [] }),
    (v) => (spec.familyId = v),
  );

  const discovery = fields.get("OS_IMAGE_DISCOVERY");
  if (discovery) {
    const value = values.OS_IMAGE_DISCOVERY;
    if (value !== null && typeof value === "object" && !Array.isArray(value))
      spec.discovery = value as Record<string, unknown>;
    else {
      add(
        {
          severity: "error",
          code: "discovery.shape",
          path: `${path}.OS_IMAGE_DISCOVERY`,
          message: "OS_IMAGE_DISCOVERY must be a mapping",
        },
        discovery.node?.range?.[0] ?? discovery.keyOffset,
      );
    }
  }

  for (const issue of entryIssues(spec, new Set(fields.keys()))) {
    const at = issue.field ? texts.get(issue.field) : undefined;
    if (issue.field && at) placeIssues([issue], at, `${path}.${issue.field}`, layer);
    else add(issue, entryOffset);
  }

  const { line, column } = layer.locate(entryOffset);
  const findings = layer.sink.findings.slice(start);
  return {
    id: entryId(spec.name, index),
    index,
    line,
    column,
    values,
    spec,
    findings,
    valid: !hasErrors(findings),
  };
}

/** The string a field holds, or undefined (with a finding) when it holds something else. */
function fieldText(field: FieldName, found: FieldNode, path: string, layer: Layer) {
  const node = isAlias(found.node) ? found.node.resolve(layer.doc) : found.node;
  const offset = node?.range?.[0] ?? found.keyOffset;
  const add = (input: Omit<FindingInput, "path">) => layer.sink.add({ path, ...input }, offset, layer.locate);
  if (node === null || node === undefined || (isScalar(node) && node.value === null)) {
    add({
      severity: "warning",
      code: "entry.empty_value",
      message: `${field} is empty and ignored`,
      hint: "give it a value or remove the line",
    });
    return undefined;
  }
  if (isCollection(node) || !isScalar(node)) {
    add({
      severity: "error",
      code: "entry.not_string",
      message: `${field} must be a string, not a ${isSeq(node) ? "list" : "mapping"}`,
      hint: fieldShapeHint(field),
    });
    return undefined;
  }
  if (typeof node.value !== "string") {
    add({
      severity: "warning",
      code: "entry.not_quoted",
      message: `${field} is a ${typeof node.value}; Kube-DC fields are strings`,
      hint: `quote it: ${field}: "${String(node.value)}"`,
    });
    return { text: String(node.value), scalar: undefined, offset };
  }
  if (node.value === "" && field !== "CLOUD_INIT") {
    add({
      severity: "warning",
      code: "entry.empty_value",
      message: `${field} is empty and ignored`,
      hint: "give it a value or remove the line",
    });
    return undefined;
  }
  return { text: node.value, scalar: node as Scalar, offset };
}

function fieldShapeHint(field: FieldName): string | undefined {
  if (field === "FEATURES" || field === "BOOT_ORDER" || field === "ADDITIONAL_DISKS")
    return `write a comma list: ${field}: "a,b"`;
  if (field === "CLOUD_INIT") return "write CLOUD_INIT: | and indent the #cloud-config below it";
  return undefined;
}

function placeIssues(
  issues: readonly FieldIssue[],
  found: { scalar: Scalar | undefined; offset: number },
  path: string,
  layer: Layer,
): void {
  let valueLocate: Locator | undefined;
  for (const issue of issues) {
    const input = {
      severity: issue.severity,
      code: issue.code,
      path,
      message: issue.message,
      hint: issue.hint,
    };
    if (issue.at && found.scalar) {
      valueLocate ??= scalarLocator(found.scalar, layer.text, layer.locate);
      layer.sink.add(input, issue.at, valueLocate);
    } else {
      layer.sink.add(input, found.offset, layer.locate);
    }
  }
}

function markDuplicates(entries: CatalogEntry[], layer: Layer): void {
  const duplicates = duplicateNames(entries.map((e) => e.spec.name));
  for (const [index, first] of duplicates) {
    const entry = entries[index] as CatalogEntry;
    const original = entries[first] as CatalogEntry;
    const finding: Finding = {
      severity: "error",
      code: "entry.duplicate_name",
      path: `images[${entry.index}].OS_NAME`,
      line: entry.line,
      column: entry.column,
      message: `OS_NAME "${entry.spec.name}" is already used by the entry at line ${original.line}`,
      hint: "OS_NAME identifies the entry in the Create VM dropdown; make it unique",
    };
    entry.findings.push(finding);
    entry.valid = false;
    layer.sink.findings.push(finding);
  }
  const seen = new Map<string, number>();
  for (const entry of entries) {
    const count = seen.get(entry.id) ?? 0;
    seen.set(entry.id, count + 1);
    if (count > 0) entry.id = `${entry.id}-${count + 1}`;
  }
}

function toPlain(node: Node | null, doc: Document.Parsed): unknown {
  if (node === null) return null;
  try {
    return node.toJS(doc, { maxAliasCount: 100 });
  } catch {
    return null;
  }
}
