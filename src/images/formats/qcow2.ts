// qcow2 (QEMU copy-on-write, versions 2 and 3), after docs/interop/qcow2.txt in QEMU's tree. The header,
// its extensions and the backing file name all sit in the first cluster; nothing past it is read.
import { ascii, type ByteMap, startsWith, u32be, u64be, u64beBig } from "../bytes.ts";
import type { Detection, Risk } from "./types.ts";

const MAGIC = "QFI\xfb";

/** Incompatible feature bits known to QEMU; any other bit set means "do not open". */
const INCOMPATIBLE: Record<number, string> = {
  0: "dirty",
  1: "corrupt",
  2: "external data file",
  3: "compression type",
  4: "extended L2 entries",
};
const COMPATIBLE: Record<number, string> = { 0: "lazy refcounts" };
const AUTOCLEAR: Record<number, string> = { 0: "bitmaps", 1: "raw external data" };

const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;
const EXT_BITMAPS = 0x23852875;
const EXT_ENCRYPTION = 0x0537be77;
const EXT_DATA_FILE = 0x44415441;

const EXTENSION_NAMES: Record<number, string> = {
  [EXT_BACKING_FORMAT]: "backing file format",
  [EXT_FEATURE_NAMES]: "feature name table",
  [EXT_BITMAPS]: "bitmaps",
  [EXT_ENCRYPTION]: "full disk encryption header",
  [EXT_DATA_FILE]: "external data file name",
};

function bits(value: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if ((value >> BigInt(i)) & 1n) out.push(i);
  return out;
}

export function detectQcow2(bytes: ByteMap): Detection | null {
  const magic = bytes.read(0, 4);
  if (!startsWith(magic, MAGIC)) return null;
  const risks: Risk[] = [];
  const notes: string[] = [];
  const h = bytes.read(0, 112);
  if (h.length < 72) {
    return {
      format: "qcow2",
      details: {},
      risks: [{ kind: "invalid_header", message: `qcow2 header is truncated (${h.length} bytes)` }],
      notes,
    };
  }
  const version = u32be(h, 4);
  const backingOffset = u64be(h, 8);
  const backingSize = u32be(h, 16);
  const clusterBits = u32be(h, 20);
  const virtualSize = u64be(h, 24);
  const cryptMethod = u32be(h, 32);
  const snapshots = u32be(h, 60);
  const details: Record<string, unknown> = { version, compat: version === 2 ? "0.10" : "1.1" };
  if (version !== 2 && version !== 3) {
    risks.push({ kind: "unsupported_version", message: `qcow2 version ${version} (QEMU knows 2 and 3)` });
    return { format: "qcow2", details, risks, notes };
  }
  if (clusterBits < 9 || clusterBits > 21) {
    risks.push({
      kind: "invalid_header",
      message: `qcow2 cluster_bits ${clusterBits} is outside 9..21 (clusters of 512 B to 2 MiB)`,
    });
    return { format: "qcow2", details, risks, notes };
  }
  const clusterSize = 2 ** clusterBits;
  if (!Number.isFinite(virtualSize))
    risks.push({ kind: "invalid_header", message: "qcow2 virtual size is larger than 8 PiB" });

  let incompatible = 0n;
  let compatible = 0n;
  let autoclear = 0n;
  let refcountOrder = 4;
  let headerLength = 72;
  let compressionType = "zlib";
  if (version === 3) {
    if (h.length < 104) {
      risks.push({ kind: "invalid_header", message: "qcow2 v3 header is shorter than 104 bytes" });
      return { format: "qcow2", details, risks, notes };
    }
    incompatible = u64beBig(h, 72);
    compatible = u64beBig(h, 80);
    autoclear = u64beBig(h, 88);
    refcountOrder = u32be(h, 96);
    headerLength = u32be(h, 100);
    if (headerLength < 104 || headerLength % 8 !== 0 || headerLength > clusterSize) {
      risks.push({ kind: "invalid_header", message: `qcow2 header_length ${headerLength} is invalid` });
      return { format: "qcow2", details, risks, notes };
    }
    if (headerLength > 104) {
      const type = bytes.read(104, 1)[0];
      compressionType = type === 0 ? "zlib" : type === 1 ? "zstd" : `unknown (${type})`;
    }
  }
  const incompatibleBits = bits(incompatible);
  details.incompatibleFeatures = incompatibleBits.map((b) => INCOMPATIBLE[b] ?? `unknown bit ${b}`);
  details.compatibleFeatures = bits(compatible).map((b) => COMPATIBLE[b] ?? `unknown bit ${b}`);
  details.autoclearFeatures = bits(autoclear).map((b) => AUTOCLEAR[b] ?? `unknown bit ${b}`);
  details.lazyRefcounts = (compatible & 1n) === 1n;
  details.refcountBits = 2 ** refcountOrder;
  details.compressionType = compressionType;
  details.corrupt = (incompatible & 2n) === 2n;
  details.extendedL2 = (incompatible & 16n) === 16n;
  details.snapshots = snapshots;
  details.encryption =
    cryptMethod === 0
      ? "none"
      : cryptMethod === 1
        ? "aes"
        : cryptMethod === 2
          ? "luks"
          : `unknown (${cryptMethod})`;

  const unknown = incompatibleBits.filter((b) => !(b in INCOMPATIBLE));
  if (unknown.length > 0)
    risks.push({
      kind: "unknown_features",
      message: `qcow2 sets incompatible feature bit(s) ${unknown.join(", ")} that QEMU does not know`,
    });
  if (incompatible & 1n)
    risks.push({
      kind: "dirty",
      message: "qcow2 is marked dirty (not closed cleanly; refcounts may be stale)",
    });
  if (incompatible & 2n) risks.push({ kind: "corrupt", message: "qcow2 is marked corrupt by QEMU" });
  if (incompatible & 4n)
    risks.push({
      kind: "data_file",
      message: "qcow2 keeps its data in an external data file (incompatible feature bit 2)",
    });
  if (compressionType.startsWith("unknown"))
    risks.push({ kind: "unknown_features", message: `qcow2 compression type ${compressionType}` });
  if (cryptMethod !== 0)
    risks.push({ kind: "encrypted", message: `qcow2 is encrypted (${details.encryption as string})` });

  // Header extensions: from the end of the header to the end of the first cluster.
  const extensions: string[] = [];
  let at = headerLength;
  for (let i = 0; i < 64 && at + 8 <= clusterSize; i++) {
    const head = bytes.read(at, 8);
    if (head.length < 8) break;
    const type = u32be(head, 0);
    const length = u32be(head, 4);
    if (type === EXT_END) break;
    if (at + 8 + length > clusterSize) {
      risks.push({ kind: "invalid_header", message: "a qcow2 header extension runs past the first cluster" });
      break;
    }
    extensions.push(EXTENSION_NAMES[type] ?? `unknown 0x${type.toString(16)}`);
    if (type === EXT_BACKING_FORMAT) details.backingFormat = ascii(bytes.read(at + 8, length));
    if (type === EXT_DATA_FILE) {
      details.dataFile = ascii(bytes.read(at + 8, length));
      risks.push({
        kind: "data_file",
        message: `qcow2 names an external data file "${details.dataFile as string}"`,
      });
    }
    if (type === EXT_ENCRYPTION)
      risks.push({ kind: "encrypted", message: "qcow2 has a full disk encryption header" });
    at += 8 + Math.ceil(length / 8) * 8;
  }
  details.headerExtensions = extensions;

  if (backingOffset !== 0 || backingSize !== 0) {
    if (backingSize > 1023 || backingOffset + backingSize > clusterSize) {
      risks.push({
        kind: "backing_file",
        message: `qcow2 has a backing file (name at offset ${backingOffset}, ${backingSize} bytes)`,
      });
    } else {
      details.backingFile = ascii(bytes.read(backingOffset, backingSize));
      risks.push({
        kind: "backing_file",
        message: `qcow2 has a backing file "${details.backingFile as string}"`,
      });
    }
  }
  if (snapshots > 0) notes.push(`${snapshots} internal snapshot(s)`);
  return { format: "qcow2", virtualSize, clusterSize, details, risks, notes };
}
