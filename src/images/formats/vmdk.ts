// VMDK: the hosted sparse extent header (magic "KDMV") with its embedded descriptor, and the plain-text
// descriptor file. A descriptor lists extents by file name, which is how a VMDK can make an importer read
// host files (CVE-2022-47951): only a single sparse extent inside the file itself is accepted.
import { ascii, type ByteMap, startsWith, u16le, u32le, u64le } from "../bytes.ts";
import type { Detection, Risk } from "./types.ts";

const SPARSE_MAGIC = "KDMV";
const COWD_MAGIC = "COWD";
const DESCRIPTOR_START = "# Disk DescriptorFile";
/** createType values of a single self-contained file. */
const SELF_CONTAINED = new Set(["monolithicSparse", "streamOptimized"]);
const MAX_DESCRIPTOR = 64 * 1024;

export interface VmdkExtent {
  access: string;
  sizeSectors: number;
  type: string;
  filename?: string;
  offset?: number;
}

export interface VmdkDescriptor {
  version?: string;
  cid?: string;
  parentCid?: string;
  createType?: string;
  parentFileNameHint?: string;
  extents: VmdkExtent[];
  unparsed: string[];
}

export function parseDescriptor(text: string): VmdkDescriptor {
  const d: VmdkDescriptor = { extents: [], unparsed: [] };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\0+$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const extent = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/.exec(line);
    if (extent) {
      d.extents.push({
        access: extent[1] as string,
        sizeSectors: Number(extent[2]),
        type: extent[3] as string,
        ...(extent[4] !== undefined ? { filename: extent[4] } : {}),
        ...(extent[5] !== undefined ? { offset: Number(extent[5]) } : {}),
      });
      continue;
    }
    const kv = /^([\w.]+)\s*=\s*"?([^"]*)"?\s*$/.exec(line);
    if (kv) {
      const [, key, value] = kv as unknown as [string, string, string];
      if (key === "version") d.version = value;
      else if (key === "CID") d.cid = value;
      else if (key === "parentCID") d.parentCid = value;
      else if (key === "createType") d.createType = value;
      else if (key === "parentFileNameHint") d.parentFileNameHint = value;
      continue;
    }
    d.unparsed.push(line);
  }
  return d;
}

function judgeDescriptor(d: VmdkDescriptor, embedded: boolean): Risk[] {
  const risks: Risk[] = [];
  if (!embedded)
    risks.push({
      kind: "vmdk_extent",
      message: "a VMDK descriptor file: its data lives in other files that it names",
    });
  if (d.createType === undefined || !SELF_CONTAINED.has(d.createType))
    risks.push({
      kind: "vmdk_create_type",
      message: `VMDK createType "${d.createType ?? "(none)"}" is not a single self-contained file (monolithicSparse or streamOptimized)`,
    });
  if (
    d.parentFileNameHint !== undefined ||
    (d.parentCid !== undefined && d.parentCid.toLowerCase() !== "ffffffff")
  )
    risks.push({
      kind: "backing_file",
      message: `VMDK has a parent disk${d.parentFileNameHint ? ` "${d.parentFileNameHint}"` : ` (parentCID ${d.parentCid})`}`,
    });
  if (d.extents.length !== 1)
    risks.push({
      kind: "vmdk_extent",
      message: `VMDK descriptor lists ${d.extents.length} extents, not one`,
    });
  for (const e of d.extents) {
    if (e.type !== "SPARSE")
      risks.push({
        kind: "vmdk_extent",
        message: `VMDK extent of type ${e.type}${e.filename ? ` names "${e.filename}"` : ""}: only the embedded SPARSE extent is allowed`,
      });
    else if (e.filename !== undefined && /[/\\]|^\.\.?$|:/.test(e.filename))
      risks.push({ kind: "vmdk_extent", message: `VMDK extent names a path "${e.filename}"` });
  }
  return risks;
}

export function detectVmdk(bytes: ByteMap): Detection | null {
  const head = bytes.read(0, 512);
  if (startsWith(head, COWD_MAGIC)) {
    return {
      format: "vmdk",
      details: { subformat: "COWD" },
      risks: [{ kind: "unsupported_version", message: "ESX COWD sparse VMDK (vmfsSparse) is not accepted" }],
      notes: [],
    };
  }
  if (startsWith(head, DESCRIPTOR_START)) {
    const text = ascii(bytes.read(0, MAX_DESCRIPTOR));
    const d = parseDescriptor(text);
    return {
      format: "vmdk",
      ...(d.extents.length > 0
        ? { virtualSize: d.extents.reduce((n, e) => n + e.sizeSectors * 512, 0) }
        : {}),
      details: { descriptorFile: true, ...d },
      risks: judgeDescriptor(d, false),
      notes: [],
    };
  }
  if (!startsWith(head, SPARSE_MAGIC)) return null;
  const version = u32le(head, 4);
  const flags = u32le(head, 8);
  const capacity = u64le(head, 12);
  const grainSize = u64le(head, 20);
  const descriptorOffset = u64le(head, 28);
  const descriptorSize = u64le(head, 36);
  const compressAlgorithm = u16le(head, 77);
  const risks: Risk[] = [];
  const details: Record<string, unknown> = {
    version,
    flags,
    compressed: (flags & 0x10000) !== 0,
    compressAlgorithm:
      compressAlgorithm === 0
        ? "none"
        : compressAlgorithm === 1
          ? "deflate"
          : `unknown (${compressAlgorithm})`,
    grainSize,
  };
  if (version < 1 || version > 3)
    risks.push({ kind: "unsupported_version", message: `VMDK sparse header version ${version}` });
  if (!Number.isFinite(capacity) || capacity * 512 > Number.MAX_SAFE_INTEGER)
    risks.push({ kind: "invalid_header", message: "VMDK capacity is larger than 8 PiB" });
  if (grainSize === 0 || grainSize > 2048 || (grainSize & (grainSize - 1)) !== 0)
    risks.push({ kind: "invalid_header", message: `VMDK grain size ${grainSize} sectors is invalid` });
  if (descriptorOffset === 0 || descriptorSize === 0) {
    risks.push({
      kind: "vmdk_create_type",
      message: "VMDK sparse extent without an embedded descriptor (part of a multi-file disk)",
    });
  } else if (descriptorSize * 512 > MAX_DESCRIPTOR || descriptorOffset * 512 > 16 * 1024 * 1024) {
    risks.push({ kind: "invalid_header", message: "VMDK embedded descriptor is too large or too far" });
  } else {
    const text = ascii(bytes.read(descriptorOffset * 512, descriptorSize * 512));
    const d = parseDescriptor(text);
    Object.assign(details, d);
    risks.push(...judgeDescriptor(d, true));
  }
  return {
    format: "vmdk",
    virtualSize: capacity * 512,
    clusterSize: grainSize * 512,
    details,
    risks,
    notes: [],
  };
}
