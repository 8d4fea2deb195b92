// The safety policy: what an inspection's facts mean for an image we are about to hand to QEMU or CDI.
// Every verdict names its reasons, the accepting ones too.

import {
  COMPRESSIONS,
  type Compression,
  DISK_FORMATS,
  type DiskFormat,
  type RiskKind,
} from "./formats/types.ts";
import type { Inspection } from "./inspect.ts";

export type Severity = "error" | "warning" | "info";

export interface Reason {
  code: string;
  severity: Severity;
  message: string;
}

export interface Verdict {
  safe: boolean;
  reasons: Reason[];
}

/** What the image is said to be: by its file name, or by the user. */
export interface Declared {
  format?: DiskFormat;
  compression?: Compression;
  /** How it was declared, for messages: "the name .qcow2", "--format". */
  by: string;
}

const SEVERITY: Record<RiskKind, Severity> = {
  backing_file: "error",
  data_file: "error",
  encrypted: "error",
  unknown_features: "error",
  corrupt: "error",
  dirty: "warning",
  vmdk_extent: "error",
  vmdk_create_type: "error",
  invalid_header: "error",
  unsupported_version: "error",
  not_a_disk_image: "error",
};

const EXTENSIONS: Record<string, DiskFormat> = {
  qcow2: "qcow2",
  qcow: "qcow2",
  qcow2c: "qcow2",
  raw: "raw",
  vmdk: "vmdk",
  vhd: "vhd",
  vpc: "vhd",
  vhdx: "vhdx",
  vdi: "vdi",
  iso: "iso",
};
const COMPRESSION_EXTENSIONS: Record<string, Compression> = {
  gz: "gzip",
  gzip: "gzip",
  xz: "xz",
  zst: "zstd",
  zstd: "zstd",
  bz2: "bzip2",
};

/** What a file name declares: "disk.qcow2.xz" is qcow2 in xz. ".img" declares nothing (Ubuntu's are qcow2). */
export function declaredByName(name: string): Declared | undefined {
  const base = (name.split(/[?#]/)[0] ?? "").split("/").pop()?.toLowerCase() ?? "";
  const parts = base.split(".").slice(1);
  let compression: Compression | undefined;
  const last = parts.at(-1);
  if (last && last in COMPRESSION_EXTENSIONS) {
    compression = COMPRESSION_EXTENSIONS[last];
    parts.pop();
  }
  const ext = parts.at(-1);
  const format = ext ? EXTENSIONS[ext] : undefined;
  if (!format && !compression) return undefined;
  return {
    ...(format ? { format } : {}),
    ...(compression ? { compression } : {}),
    by: `the name "${base}"`,
  };
}

export function parseDeclaredFormat(text: string): Declared {
  const lower = text.toLowerCase();
  const format = (lower === "vpc" ? "vhd" : lower) as DiskFormat;
  if ((DISK_FORMATS as readonly string[]).includes(format)) return { format, by: `--format ${text}` };
  if ((COMPRESSIONS as readonly string[]).includes(lower))
    return { compression: lower as Compression, by: `--format ${text}` };
  throw new Error(`unknown format "${text}"; known: ${[...DISK_FORMATS, ...COMPRESSIONS].join(", ")}`);
}

/** An ISO is read as raw by QEMU: declaring "raw" for an ISO is fine, the converse is not. */
function compatible(declared: DiskFormat, detected: string): boolean {
  return declared === detected || (declared === "raw" && detected === "iso");
}

export function judge(inspection: Inspection, declared?: Declared): Verdict {
  const reasons: Reason[] = [];
  const add = (code: string, severity: Severity, message: string) =>
    reasons.push({ code, severity, message });
  const disk = inspection.inner ?? inspection;

  const containers = inspection.matches.filter((m) => m !== "raw");
  if (containers.length > 1)
    add("ambiguous_format", "error", `the file matches more than one format: ${containers.join(", ")}`);
  if (inspection.inner && inspection.inner.matches.filter((m) => m !== "raw").length > 1)
    add(
      "ambiguous_format",
      "error",
      `the decompressed image matches more than one format: ${inspection.inner.matches.join(", ")}`,
    );

  if (declared?.compression && declared.compression !== inspection.compression)
    add(
      "format_mismatch",
      "error",
      `${declared.by} declares ${declared.compression} compression, but the file is ${inspection.compression ?? "not compressed"}`,
    );
  if (declared?.format && !compatible(declared.format, disk.format))
    add(
      "format_mismatch",
      "error",
      `${declared.by} declares ${declared.format}, but the ${inspection.inner ? "decompressed " : ""}content is ${disk.format}`,
    );

  for (const i of [inspection, ...(inspection.inner ? [inspection.inner] : [])]) {
    for (const risk of i.risks) add(risk.kind, SEVERITY[risk.kind], risk.message);
    for (const what of i.incomplete)
      add("incomplete", "error", `could not read all the image's metadata (${what})`);
  }
  if (inspection.compression && !inspection.inner)
    add("incomplete", "error", `could not look inside the ${inspection.compression} stream`);

  const safe = !reasons.some((r) => r.severity === "error");
  if (safe) add("accepted", "info", acceptance(disk));
  return { safe, reasons };
}

function acceptance(disk: Inspection): string {
  switch (disk.format) {
    case "qcow2":
      return `qcow2 v${disk.details.version as number}: no backing file, no external data file, not encrypted, only known feature bits`;
    case "vmdk":
      return `VMDK ${disk.details.createType as string}: one embedded sparse extent, no parent`;
    case "vhd":
      return `VHD ${disk.details.diskType as string}: no parent disk`;
    case "vhdx":
      return "VHDX: no parent disk, only known regions and metadata";
    case "vdi":
      return `VDI ${disk.details.imageType as string}: no parent image`;
    case "iso":
      return "ISO 9660: read as raw, no references to other files";
    case "raw":
      return `raw disk (${disk.partitions?.scheme === "none" || !disk.partitions ? "no partition table" : `${disk.partitions.scheme.toUpperCase()}, ${disk.partitions.partitions.length} partition(s)`}): no metadata to abuse`;
    default:
      return `${disk.format}`;
  }
}

/** The verdict in one line: "safe (…)" or the errors joined. */
export function verdictSummary(v: Verdict): string {
  if (v.safe) return "safe";
  return `unsafe: ${v.reasons
    .filter((r) => r.severity === "error")
    .map((r) => r.message)
    .join("; ")}`;
}
