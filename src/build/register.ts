// Into the catalog: the entry a build produces ([catalog] of the spec, the image's digest, where it is)
// is added to a catalog file or updated in place (found by OS_NAME), with every comment, every other
// entry and the file's layout left as they were: the YAML is edited through the yaml library's Document
// API. A ConfigMap's data["images.yaml"] is edited the same way, one layer down. The result is checked
// with the catalog's own parser before it is written; --register only writes after the image passed a
// boot test under the firmware the entry declares.
import { readFile } from "node:fs/promises";
import { type Document, isMap, isScalar, isSeq, parseDocument, Scalar, type YAMLMap, YAMLSeq } from "yaml";
import { parseCatalog } from "../catalog/parse.ts";
import { type BootTestResult, bootTest } from "../images/boot-test.ts";
import { parseReference } from "../oci/push.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import type { BuildRecord } from "./build.ts";
import type { CatalogSection } from "./spec.ts";

export class RegisterError extends Error {
  override name = "RegisterError";
  readonly hint: string | undefined;
  readonly boot: BootTestResult | undefined;

  constructor(message: string, hint?: string, boot?: BootTestResult) {
    super(message);
    this.hint = hint;
    this.boot = boot;
  }
}

/** The catalog values of a built image (all strings, as the catalog format wants). */
export function catalogValues(
  section: CatalogSection | undefined,
  record: Pick<BuildRecord, "outputs" | "push" | "kind">,
  overrides: { imageUrl?: string } = {},
): Record<string, string> {
  if (!section)
    throw new RegisterError(
      "the spec has no [catalog] section",
      "add [catalog] with OS_NAME, CLOUD_USER and OS_IMAGE_URL (where system.qcow2 will be served)",
    );
  const qcow2 = record.outputs.find((o) => o.name === "system.qcow2");
  if (!qcow2?.sha256)
    throw new RegisterError(
      `a ${record.kind} build has no system.qcow2 to register`,
      "build vm-img or container-disk",
    );
  const url = overrides.imageUrl ?? section.OS_IMAGE_URL;
  if (!url)
    throw new RegisterError(
      "[catalog] has no OS_IMAGE_URL",
      "set OS_IMAGE_URL to the address where system.qcow2 is published (or pass --image-url)",
    );
  const values: Record<string, string> = {
    OS_NAME: section.OS_NAME,
    CLOUD_USER: section.CLOUD_USER,
    OS_IMAGE_URL: url,
    OS_IMAGE_SHA256: qcow2.sha256,
    FIRMWARE_TYPE: section.FIRMWARE_TYPE,
  };
  if (section.MIN_MEMORY) values.MIN_MEMORY = section.MIN_MEMORY;
  if (section.MIN_VCPU) values.MIN_VCPU = String(section.MIN_VCPU);
  if (section.MIN_STORAGE) values.MIN_STORAGE = section.MIN_STORAGE;
  if (section.OS_FAMILY_ID) values.OS_FAMILY_ID = section.OS_FAMILY_ID;
  if (record.push && record.kind === "container-disk") {
    const ref = parseReference(record.push.reference);
    values.OS_CONTAINERDISK_REPO = `${ref.registry}/${ref.repository}`;
    values.OS_CONTAINERDISK_TAG = ref.tag;
  } else {
    if (section.OS_CONTAINERDISK_REPO) values.OS_CONTAINERDISK_REPO = section.OS_CONTAINERDISK_REPO;
    if (section.OS_CONTAINERDISK_TAG) values.OS_CONTAINERDISK_TAG = section.OS_CONTAINERDISK_TAG;
  }
  return values;
}

/** No re-folding of long lines: everything not edited is written back as it was. */
const KEEP_LAYOUT = { lineWidth: 0 } as const;

const quoted = (value: string) => {
  const scalar = new Scalar(value);
  scalar.type = Scalar.QUOTE_DOUBLE;
  return scalar;
};

/** Adds or updates the entry named values.OS_NAME in an images.yaml text. */
function upsertImagesYaml(
  text: string,
  values: Record<string, string>,
): { text: string; action: "added" | "updated" } {
  const doc: Document = parseDocument(text);
  if (doc.errors.length > 0)
    throw new RegisterError(`the catalog is not valid YAML: ${doc.errors[0]?.message}`);
  if (doc.contents === null) doc.contents = doc.createNode({}) as never;
  const root = doc.contents;
  if (!isMap(root)) throw new RegisterError("the catalog is not a map with an images: list");
  let images: unknown = root.get("images", true);
  if (images === undefined || (isScalar(images) && images.value === null)) {
    images = new YAMLSeq();
    root.set("images", images);
  }
  if (!isSeq(images)) throw new RegisterError("the catalog's images: is not a list");
  const existing = images.items.find((item) => isMap(item) && item.get("OS_NAME") === values.OS_NAME) as
    | YAMLMap
    | undefined;
  if (existing) {
    for (const [key, value] of Object.entries(values)) existing.set(key, quoted(value));
    return { text: doc.toString(KEEP_LAYOUT), action: "updated" };
  }
  const entry = doc.createNode({}) as YAMLMap;
  for (const [key, value] of Object.entries(values)) entry.set(key, quoted(value));
  images.items.push(entry);
  return { text: doc.toString(KEEP_LAYOUT), action: "added" };
}

/** Adds or updates the entry in a catalog: an images.yaml, or a ConfigMap holding one. */
export function upsertCatalogEntry(
  text: string,
  values: Record<string, string>,
): { text: string; action: "added" | "updated" } {
  const doc: Document = parseDocument(text);
  const root = doc.contents;
  if (isMap(root) && root.get("kind") === "ConfigMap") {
    const data = root.get("data", true);
    const inner = isMap(data) ? data.get("images.yaml") : undefined;
    const result = upsertImagesYaml(typeof inner === "string" ? inner : "images: []\n", values);
    const block = new Scalar(result.text);
    block.type = Scalar.BLOCK_LITERAL;
    if (isMap(data)) data.set("images.yaml", block);
    else root.set("data", doc.createNode({ "images.yaml": block }));
    return { text: doc.toString(KEEP_LAYOUT), action: result.action };
  }
  return upsertImagesYaml(text, values);
}

/** Removes keys from the entry named `osName` (an images.yaml or a ConfigMap holding one). */
export function removeCatalogKeys(text: string, osName: string, keys: readonly string[]): string {
  const edit = (inner: string) => {
    const doc: Document = parseDocument(inner);
    const images = isMap(doc.contents) ? doc.contents.get("images", true) : undefined;
    if (!isSeq(images)) return inner;
    const entry = images.items.find((item) => isMap(item) && item.get("OS_NAME") === osName) as
      | YAMLMap
      | undefined;
    if (!entry) return inner;
    for (const key of keys) entry.delete(key);
    return doc.toString(KEEP_LAYOUT);
  };
  const doc: Document = parseDocument(text);
  const root = doc.contents;
  if (isMap(root) && root.get("kind") === "ConfigMap") {
    const data = root.get("data", true);
    const inner = isMap(data) ? data.get("images.yaml") : undefined;
    if (!isMap(data) || typeof inner !== "string") return text;
    const block = new Scalar(edit(inner));
    block.type = Scalar.BLOCK_LITERAL;
    data.set("images.yaml", block);
    return doc.toString(KEEP_LAYOUT);
  }
  return edit(text);
}

/** Checks an edited catalog: the entry must be valid, and no error may be new. */
export function checkEdited(before: string, after: string, osName: string): void {
  const previous = new Set(
    parseCatalog(before)
      .findings.filter((f) => f.severity === "error")
      .map((f) => `${f.code}:${f.message}`),
  );
  const parsed = parseCatalog(after);
  const entry = parsed.entries.find((e) => e.values.OS_NAME === osName);
  const newErrors = parsed.findings.filter(
    (f) => f.severity === "error" && !previous.has(`${f.code}:${f.message}`),
  );
  if (!entry?.valid || newErrors.length > 0) {
    const first = newErrors[0] ?? entry?.findings.find((f) => f.severity === "error");
    throw new RegisterError(
      `the catalog entry would not be valid${first ? `: ${first.message}` : ""}`,
      first?.hint,
    );
  }
}

export interface RegisterOptions {
  catalogPath: string;
  section: CatalogSection | undefined;
  record: BuildRecord;
  imageUrl?: string;
  bootTimeoutMs: number;
  /** A boot test this image already passed (under the entry's firmware): not run again. */
  booted?: BootTestResult;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface RegisterResult {
  action: "added" | "updated";
  values: Record<string, string>;
  boot: BootTestResult;
}

/** Boot-tests the built image under the entry's firmware, then writes the entry into the catalog file. */
export async function registerBuild(options: RegisterOptions): Promise<RegisterResult> {
  const values = catalogValues(
    options.section,
    options.record,
    options.imageUrl ? { imageUrl: options.imageUrl } : {},
  );
  const before = await readFile(options.catalogPath, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return "images: []\n";
    throw error;
  });
  // The edit is tried before the long boot test: a catalog that cannot take it fails at once.
  checkEdited(before, upsertCatalogEntry(before, values).text, values.OS_NAME as string);
  const qcow2 = options.record.outputs.find((o) => o.name === "system.qcow2")?.path as string;
  const firmware = values.FIRMWARE_TYPE === "efi" ? "efi" : "bios";
  if (options.booted && options.booted.firmware !== firmware)
    throw new RegisterError(
      `the boot test given was under ${options.booted.firmware}, the entry declares ${firmware}`,
    );
  if (!options.booted)
    options.log?.(`boot test of ${qcow2} under ${firmware} (until cloud-init has finished)`);
  const boot =
    options.booted ??
    (await bootTest({
      image: qcow2,
      firmware,
      timeoutMs: options.bootTimeoutMs,
      cloudUser: values.CLOUD_USER as string,
      ...(options.signal ? { signal: options.signal } : {}),
    }));
  if (!boot.ok)
    throw new RegisterError(
      `the image did not pass the boot test under ${firmware}: ${boot.reason}\n${boot.lastConsoleLines.join("\n")}`,
      "the catalog was not changed; fix the image (see the console lines above) and build again",
      boot,
    );
  options.log?.(`booted under ${firmware} in ${Math.round((boot.timeToReadyMs ?? 0) / 1000)} s`);
  // Read again: the file may have changed during the boot test.
  const current = await readFile(options.catalogPath, "utf8").catch(() => before);
  const edited = upsertCatalogEntry(current, values);
  checkEdited(current, edited.text, values.OS_NAME as string);
  await writeFileAtomic(options.catalogPath, edited.text);
  return { action: edited.action, values, boot };
}
