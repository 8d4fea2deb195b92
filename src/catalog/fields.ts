// The fields of a catalog entry: what each one means, how its text is parsed, and what is wrong with it.
// Pure functions over strings; the document walk (parse.ts) places the issues they report.
import { isMap, isScalar, parseDocument } from "yaml";
import { IMPLAUSIBLE_BYTES, parseQuantity } from "../units/quantity.ts";
import type { Severity } from "./findings.ts";

export const FEATURES = ["acpi", "apic", "hyperv", "smm", "tpm"] as const;
export type Feature = (typeof FEATURES)[number];
export const FIRMWARES = ["bios", "efi"] as const;
export type Firmware = (typeof FIRMWARES)[number];
export const BOOT_DEVICES = ["cdrom", "disk", "network"] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];
export const ADDITIONAL_DISK_KINDS = ["virtio-drivers"] as const;

export const REQUIRED_FIELDS = ["OS_NAME", "CLOUD_USER", "OS_IMAGE_URL"] as const;

/** Every key of the Kube-DC format, in the order the document lists them. */
export const KNOWN_FIELDS = [
  ...REQUIRED_FIELDS,
  "MIN_MEMORY",
  "MIN_VCPU",
  "MIN_STORAGE",
  "FIRMWARE_TYPE",
  "MACHINE_TYPE",
  "FEATURES",
  "CLOUD_INIT",
  "BOOT_ORDER",
  "ADDITIONAL_DISKS",
  "OS_IMAGE_UPSTREAM",
  "OS_IMAGE_MIRROR_PATH",
  "OS_IMAGE_SHA256",
  "OS_CONTAINERDISK_REPO",
  "OS_CONTAINERDISK_TAG",
  "OS_IMAGE_DISCOVERY",
  "OS_FAMILY_ID",
] as const;
export type FieldName = (typeof KNOWN_FIELDS)[number];

/** Fields whose value is a map rather than a string. */
export const MAP_FIELDS: ReadonlySet<string> = new Set(["OS_IMAGE_DISCOVERY"]);

/** KubeVirt stores larger inline cloud-init user data in a Secret (admission limit of 2048 bytes). */
export const INLINE_USER_DATA_LIMIT = 2048;

export interface FieldIssue {
  severity: Severity;
  code: string;
  message: string;
  hint?: string;
  /** Offset inside the field's string value where the problem is; 0 when the whole value is meant. */
  at?: number;
}

export interface FieldResult<T> {
  value?: T;
  issues: FieldIssue[];
}

const ok = <T>(value: T): FieldResult<T> => ({ value, issues: [] });
const fail = <T>(issue: FieldIssue): FieldResult<T> => ({ issues: [issue] });

/** The closest allowed word, to suggest for a typo ("uefi" -> "efi"). */
export function closest(word: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of allowed) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 2)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Number.POSITIVE_INFINITY;
  // Optimal string alignment: a swap of two neighbours ("tmp" for "tpm") counts as one edit.
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, (beforePrevious[j - 2] as number) + 1);
      current[j] = d;
    }
    beforePrevious = previous;
    previous = current;
  }
  return previous[b.length] as number;
}

function didYouMean(word: string, allowed: readonly string[]): string {
  const suggestion = closest(word, allowed);
  return suggestion
    ? `did you mean "${suggestion}"? Allowed: ${allowed.join(", ")}`
    : `allowed: ${allowed.join(", ")}`;
}

export function parseSizeField(field: "MIN_MEMORY" | "MIN_STORAGE", text: string): FieldResult<number> {
  const result = parseQuantity(text);
  if (!result.ok) {
    return fail({
      severity: "error",
      code: "quantity.invalid",
      message: `${field}: ${result.message}`,
      hint: result.hint,
    });
  }
  const bytes = result.quantity.value;
  if (bytes === 0) return fail({ severity: "error", code: "quantity.zero", message: `${field} is zero` });
  if (bytes < IMPLAUSIBLE_BYTES) {
    const milli = text.endsWith("m");
    const number = text.replace(/[a-zA-Z]+$/, "");
    return fail({
      severity: "error",
      code: "quantity.implausible",
      message: `${field} "${text}" is ${bytes} byte${bytes === 1 ? "" : "s"}`,
      hint: milli
        ? `"m" means milli (1/1000); write "${number}M" or "${number}Mi"`
        : `add a unit: "${number}M", "${number}Mi", "${number}G" or "${number}Gi"`,
    });
  }
  return ok(bytes);
}

export function parseVcpu(text: string): FieldResult<number> {
  if (!/^\d+$/.test(text)) {
    return fail({
      severity: "error",
      code: "vcpu.invalid",
      message: `MIN_VCPU "${text}" is not a whole number of vCPUs`,
      hint: /^\d+(\.\d+)?$/.test(text)
        ? `write "${Math.max(1, Math.ceil(Number(text)))}"`
        : 'write a positive integer such as "2"',
    });
  }
  const count = Number(text);
  if (count < 1)
    return fail({ severity: "error", code: "vcpu.invalid", message: "MIN_VCPU must be at least 1" });
  if (count > 512) {
    return fail({
      severity: "error",
      code: "vcpu.invalid",
      message: `MIN_VCPU ${count} is more than any VM can have`,
      hint: "at most 512",
    });
  }
  return ok(count);
}

export function parseFirmware(text: string): FieldResult<Firmware> {
  const lower = text.toLowerCase();
  if ((FIRMWARES as readonly string[]).includes(text)) return ok(text as Firmware);
  const hint = lower === "uefi" ? 'write "efi" (UEFI firmware)' : didYouMean(text, FIRMWARES);
  return fail({
    severity: "error",
    code: "firmware.invalid",
    message: `FIRMWARE_TYPE "${text}" is not bios or efi`,
    hint,
  });
}

export function parseMachineType(text: string): FieldResult<string> {
  if (text === "q35" || /^pc-q35(-[\w.]+)?$/.test(text)) return ok(text);
  if (/^pc-i440fx(-[\w.]+)?$/.test(text) || text === "pc") {
    return {
      value: text,
      issues: [
        {
          severity: "warning",
          code: "machine.i440fx",
          message: `MACHINE_TYPE "${text}" is an i440fx machine`,
          hint: 'KubeVirt only emulates q35 machines by default (emulatedMachines "q35*,pc-q35*"); use "q35"',
        },
      ],
    };
  }
  return fail({
    severity: "error",
    code: "machine.invalid",
    message: `MACHINE_TYPE "${text}" is not a known x86_64 machine type`,
    hint: 'use "q35", a versioned "pc-q35-…" type, or "pc-i440fx-…"',
  });
}

/** Splits a comma list, keeping the offset of each item inside the text. */
export function commaItems(text: string): { item: string; at: number }[] {
  const items: { item: string; at: number }[] = [];
  let at = 0;
  for (const raw of text.split(",")) {
    const lead = raw.length - raw.trimStart().length;
    items.push({ item: raw.trim(), at: at + lead });
    at += raw.length + 1;
  }
  return items;
}

function parseWordList<T extends string>(
  field: string,
  text: string,
  allowed: readonly T[],
  unknownSeverity: Severity,
  code: string,
): FieldResult<T[]> {
  const values: T[] = [];
  const issues: FieldIssue[] = [];
  for (const { item, at } of commaItems(text)) {
    if (item === "") {
      issues.push({
        severity: "warning",
        code: `${code}.empty`,
        message: `${field} has an empty item`,
        hint: "remove the extra comma",
        at,
      });
      continue;
    }
    const word = item.toLowerCase();
    if (!(allowed as readonly string[]).includes(word)) {
      issues.push({
        severity: unknownSeverity,
        code: `${code}.unknown`,
        message: `${field}: unknown item "${item}"`,
        hint: didYouMean(item, allowed),
        at,
      });
      continue;
    }
    if (values.includes(word as T)) {
      issues.push({
        severity: "warning",
        code: `${code}.duplicate`,
        message: `${field} lists "${word}" twice`,
        at,
      });
      continue;
    }
    if (word !== item) {
      issues.push({
        severity: "warning",
        code: `${code}.case`,
        message: `${field}: write "${word}" in lower case`,
        at,
      });
    }
    values.push(word as T);
  }
  return { value: values, issues };
}

export const parseFeatures = (text: string) => parseWordList("FEATURES", text, FEATURES, "error", "features");
export const parseBootOrder = (text: string) =>
  parseWordList("BOOT_ORDER", text, BOOT_DEVICES, "error", "boot_order");
export const parseAdditionalDisks = (text: string) =>
  parseWordList("ADDITIONAL_DISKS", text, ADDITIONAL_DISK_KINDS, "warning", "additional_disks");

export function parseImageUrl(
  field: "OS_IMAGE_URL" | "OS_IMAGE_UPSTREAM",
  text: string,
): FieldResult<string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail({
      severity: "error",
      code: "url.invalid",
      message: `${field} "${text}" is not a URL`,
      hint: "write an absolute https:// URL",
    });
  }
  if (/\s/.test(text))
    return fail({ severity: "error", code: "url.invalid", message: `${field} contains white space` });
  if (url.protocol === "https:") return ok(text);
  if (url.protocol === "http:") {
    return {
      value: text,
      issues: [
        {
          severity: "warning",
          code: "url.insecure",
          message: `${field} uses plain http`,
          hint: "use https, or set OS_IMAGE_SHA256 so the download is verified",
        },
      ],
    };
  }
  return fail({
    severity: "error",
    code: "url.scheme",
    message: `${field} scheme "${url.protocol.replace(/:$/, "")}" is not supported`,
    hint: "images are imported over http(s); for a container image use OS_CONTAINERDISK_REPO",
  });
}

export function parseSha256(text: string): FieldResult<string> {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return ok(text.toLowerCase());
  const bare = text.replace(/^sha256:/i, "");
  if (bare !== text && /^[0-9a-fA-F]{64}$/.test(bare)) {
    return fail({
      severity: "error",
      code: "sha256.invalid",
      message: "OS_IMAGE_SHA256 has a prefix",
      hint: `write only the 64 hex digits: "${bare}"`,
    });
  }
  return fail({
    severity: "error",
    code: "sha256.invalid",
    message: `OS_IMAGE_SHA256 is not 64 hexadecimal digits (it has ${text.length} characters)`,
    hint: /^[0-9a-fA-F]{128}$/.test(text)
      ? "this looks like a SHA-512; a SHA-256 is expected"
      : "copy it from the distribution's SHA256SUMS",
  });
}

/** A CLOUD_USER: Linux user names, and Windows' "Administrator" (cloudbase-init). */
export const USER_NAME = /^[a-zA-Z_][a-zA-Z0-9_.-]{0,31}$/;

export function parseCloudUser(text: string): FieldResult<string> {
  if (USER_NAME.test(text)) return ok(text);
  return fail({
    severity: "error",
    code: "cloud_user.invalid",
    message: `CLOUD_USER "${text}" is not a valid user name`,
    hint: "a letter or _, then letters, digits, _, . or -, at most 32 characters",
  });
}

export function parseOsName(text: string): FieldResult<string> {
  if (text.trim() === "")
    return fail({ severity: "error", code: "os_name.empty", message: "OS_NAME is empty" });
  if (text.length > 128)
    return fail({
      severity: "error",
      code: "os_name.long",
      message: "OS_NAME is longer than 128 characters",
    });
  return ok(text);
}

const REPOSITORY = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function parseContainerDiskRepo(text: string): FieldResult<string> {
  const bare = text.replace(/^docker:\/\//, "");
  if (REPOSITORY.test(bare)) return ok(text);
  return fail({
    severity: "error",
    code: "containerdisk.repo",
    message: `OS_CONTAINERDISK_REPO "${text}" is not an image repository`,
    hint: 'write it like "quay.io/containerdisks/ubuntu" (lower case, no tag)',
  });
}

export function parseContainerDiskTag(text: string): FieldResult<string> {
  if (TAG.test(text)) return ok(text);
  return fail({
    severity: "error",
    code: "containerdisk.tag",
    message: `OS_CONTAINERDISK_TAG "${text}" is not a valid tag`,
  });
}

const CLOUD_INIT_HEADERS = [
  "#cloud-config",
  "#!",
  "## template: jinja",
  "Content-Type: multipart/",
  "#include",
  "#cloud-boothook",
];

export function parseCloudInit(text: string): FieldResult<string> {
  const issues: FieldIssue[] = [];
  const firstLine = text.split("\n", 1)[0]?.trimEnd() ?? "";
  if (!CLOUD_INIT_HEADERS.some((h) => firstLine.startsWith(h))) {
    issues.push({
      severity: "error",
      code: "cloud_init.header",
      message: "CLOUD_INIT does not start with #cloud-config (or a #! script)",
      hint: 'make "#cloud-config" the first line; cloud-init ignores user data without it',
    });
  } else if (firstLine.startsWith("#cloud-config")) {
    issues.push(...cloudConfigIssues(text));
  }
  const bytes = utf8Length(text);
  if (bytes > INLINE_USER_DATA_LIMIT) {
    issues.push({
      severity: "warning",
      code: "cloud_init.size",
      message: `CLOUD_INIT is ${bytes} bytes, more than KubeVirt accepts inline (${INLINE_USER_DATA_LIMIT})`,
      hint: "it will be stored in a Secret and referenced by userDataSecretRef",
    });
  }
  return { value: text, issues };
}

function cloudConfigIssues(text: string): FieldIssue[] {
  const doc = parseDocument(text, { uniqueKeys: false });
  // Only the first syntax error: the ones after it are usually its echoes.
  const issues: FieldIssue[] = doc.errors.slice(0, 1).map((error) => ({
    severity: "error" as const,
    code: "cloud_init.yaml",
    message: `CLOUD_INIT is not valid YAML: ${firstSentence(error.message)}`,
    at: error.pos[0],
  }));
  if (issues.length > 0 || doc.contents === null) return issues;
  if (!isMap(doc.contents)) {
    issues.push({
      severity: "error",
      code: "cloud_init.shape",
      message: "#cloud-config must be a YAML mapping of modules (keys such as packages:, runcmd:)",
    });
    return issues;
  }
  const seen = new Set<unknown>();
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    if (key === undefined) continue;
    if (seen.has(key)) {
      issues.push({
        severity: "warning",
        code: "cloud_init.duplicate_key",
        message: `CLOUD_INIT sets ${String(key)} twice; cloud-init keeps only the last one`,
        hint: "merge the two",
        at: isScalar(pair.key) ? (pair.key.range?.[0] ?? 0) : 0,
      });
    }
    seen.add(key);
  }
  return issues;
}

/** The yaml library's messages end with a code excerpt; findings carry the position instead. */
export function firstSentence(message: string): string {
  return (message.split("\n", 1)[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");
}

const encoder = new TextEncoder();

/** Bytes of a string in UTF-8 (the catalog parser also runs in the browser, without Buffer). */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}
