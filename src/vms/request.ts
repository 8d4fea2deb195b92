// A VM request checked against its catalog entry, pure: every field that is wrong is named, with the
// minimum it falls short of. Sizes left out default to the entry's minimums, like the Create VM dialog.

import { closest } from "../catalog/fields.ts";
import type { CatalogEntry } from "../catalog/model.ts";
import { mergeUserData, UserDataError } from "../cloudinit/userdata.ts";
import { formatBytes, parseQuantity } from "../units/quantity.ts";
import { isDns1123Label } from "../util/names.ts";
import {
  type VmCreateRequest,
  VmCreateRequest as VmCreateRequestSchema,
  type VmImage,
  type VmSpec,
} from "./model.ts";

export interface FieldError {
  field: string;
  message: string;
  /** The smallest acceptable value, for a size below the entry's minimum. */
  minimum?: string;
  hint?: string;
  /** Where in the field's text (cloud-init): for an editor to mark the line. */
  line?: number;
  column?: number;
}

export type RequestResult = { ok: true; spec: VmSpec } | { ok: false; errors: FieldError[] };

export interface RequestContext {
  namespace: string;
  entries: readonly CatalogEntry[];
  /** The image's virtual size when known (from the image store or a probe): the disk cannot be smaller. */
  imageVirtualSize?: (entry: CatalogEntry) => number | undefined;
}

const MAX_VCPU = 512;

export function findEntry(entries: readonly CatalogEntry[], image: string): CatalogEntry | undefined {
  return entries.find((e) => e.spec.name === image) ?? entries.find((e) => e.id === image);
}

export function validateVmRequest(raw: unknown, context: RequestContext): RequestResult {
  const parsed = VmCreateRequestSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((i) => ({ field: i.path.join(".") || "body", message: i.message })),
    };
  }
  const request = parsed.data;
  const errors: FieldError[] = [];
  if (!isDns1123Label(request.name)) {
    errors.push({
      field: "name",
      message: `"${request.name}" is not a valid VM name`,
      hint: "lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
    });
  }
  const entry = findEntry(context.entries, request.image);
  if (!entry) {
    const names = context.entries.map((e) => e.spec.name).filter((n): n is string => n !== undefined);
    const suggestion = closest(request.image, names);
    errors.push({
      field: "image",
      message: `no OS image "${request.image}" in the catalog`,
      hint: suggestion ? `did you mean "${suggestion}"?` : undefined,
    });
    return { ok: false, errors };
  }
  if (!entry.valid) {
    errors.push({
      field: "image",
      message: `the catalog entry "${request.image}" has errors and cannot be used`,
      hint: "fix the catalog (see /api/v1/catalog)",
    });
    return { ok: false, errors };
  }
  const { spec: entrySpec } = entry;
  const name = entrySpec.name as string;

  const minVcpu = entrySpec.minVcpu ?? 1;
  const cpu = request.cpu ?? minVcpu;
  if (cpu < minVcpu)
    errors.push({
      field: "cpu",
      message: `${cpu} vCPU is below the minimum of "${name}"`,
      minimum: String(minVcpu),
    });
  else if (cpu > MAX_VCPU) errors.push({ field: "cpu", message: `${cpu} vCPUs is more than ${MAX_VCPU}` });
  else if (cpu < 1) errors.push({ field: "cpu", message: "at least 1 vCPU", minimum: "1" });

  const memory = sizeField(
    "memory",
    request.memory,
    entrySpec.minMemoryBytes,
    entry.values.MIN_MEMORY,
    "1Gi",
    name,
    errors,
  );
  const imageSize = context.imageVirtualSize?.(entry);
  const storageMinimum = Math.max(entrySpec.minStorageBytes ?? 0, imageSize ?? 0);
  const storageDefault =
    entrySpec.minStorageBytes !== undefined
      ? String(entry.values.MIN_STORAGE)
      : imageSize
        ? String(imageSize)
        : "10Gi";
  const storage = sizeField(
    "storage",
    request.storage,
    entrySpec.minStorageBytes,
    entry.values.MIN_STORAGE,
    storageDefault,
    name,
    errors,
  );
  if (
    storage &&
    imageSize !== undefined &&
    storage.bytes < imageSize &&
    !errors.some((e) => e.field === "storage")
  ) {
    errors.push({
      field: "storage",
      message: `${storage.text} is smaller than the image itself (${formatBytes(imageSize)})`,
      minimum: String(storageMinimum),
      hint: "the image would not fit on the disk",
    });
  }

  // The Create VM dialog sends its editor's text, which replaces the entry's CLOUD_INIT for this VM.
  const cloudInit = request.cloudInit ?? entrySpec.cloudInit;
  errors.push(...userDataErrors(request, entrySpec.cloudUser as string, cloudInit));
  if (errors.length > 0 || !memory || !storage) return { ok: false, errors };
  return {
    ok: true,
    spec: {
      namespace: context.namespace,
      name: request.name,
      image: { ...imageOf(entry), cloudInit },
      cpu,
      memory: memory.text,
      memoryBytes: memory.bytes,
      storage: storage.text,
      storageBytes: storage.bytes,
      sshKeys: request.sshKeys,
      password: request.password,
      userData: request.userData,
      runStrategy: request.runStrategy,
    },
  };
}

function sizeField(
  field: "memory" | "storage",
  requested: string | undefined,
  minimumBytes: number | undefined,
  minimumText: unknown,
  fallback: string,
  entryName: string,
  errors: FieldError[],
): { text: string; bytes: number } | undefined {
  const text = requested ?? (minimumBytes !== undefined ? String(minimumText) : fallback);
  const parsed = parseQuantity(text);
  if (!parsed.ok) {
    errors.push({ field, message: parsed.message, hint: parsed.hint });
    return undefined;
  }
  const bytes = parsed.quantity.value;
  if (minimumBytes !== undefined && bytes < minimumBytes) {
    errors.push({
      field,
      message: `${text} is below the minimum ${String(minimumText)} of "${entryName}"`,
      minimum: String(minimumText),
    });
    return undefined;
  }
  return { text, bytes };
}

function userDataErrors(
  request: VmCreateRequest & { sshKeys: string[] },
  cloudUser: string,
  cloudInit: string | undefined,
): FieldError[] {
  try {
    mergeUserData(cloudInit, {
      cloudUser,
      sshKeys: request.sshKeys,
      password: request.password,
      userData: request.userData,
    });
    return [];
  } catch (error) {
    if (!(error instanceof UserDataError)) throw error;
    // A broken CLOUD_INIT is the catalog's fault, unless the request brought its own (cloudInit).
    const field =
      error.field === "CLOUD_INIT"
        ? request.cloudInit !== undefined
          ? "cloudInit"
          : "image"
        : error.field === "cloudUser"
          ? "image"
          : error.field;
    const where = error.line !== undefined ? ` (line ${error.line}, column ${error.column ?? 1})` : "";
    const position = error.line !== undefined ? { line: error.line, column: error.column ?? 1 } : {};
    return [{ field, message: `${error.detail}${where}`, hint: error.hint, ...position }];
  }
}

export function imageOf(entry: CatalogEntry): VmImage {
  const s = entry.spec;
  return {
    entryId: entry.id,
    osName: s.name as string,
    url: s.imageUrl as string,
    sha256: s.sha256,
    containerDisk: s.containerDisk,
    cloudUser: s.cloudUser as string,
    cloudInit: s.cloudInit,
    firmware: s.firmware,
    machineType: s.machineType,
    features: s.features,
    bootOrder: s.bootOrder,
    additionalDisks: s.additionalDisks,
  };
}
