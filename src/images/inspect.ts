// Format inspection: every detector runs over the same bytes, so that a file two formats claim is seen
// as such. Pure: given the bytes held, it either answers or names the bytes it still needs.
import { type ByteMap, type ByteRange, NeedBytes, UnreadableBytes } from "./bytes.ts";
import { detectCompression, isTar } from "./formats/compression.ts";
import { detectIso } from "./formats/iso.ts";
import { detectQcow2 } from "./formats/qcow2.ts";
import { looksLikeText, type PartitionTable, partitionTable } from "./formats/raw.ts";
import type { Compression, DetectedFormat, Detection, Detector, Risk } from "./formats/types.ts";
import { detectVdi } from "./formats/vdi.ts";
import { detectVhd } from "./formats/vhd.ts";
import { detectVhdx } from "./formats/vhdx.ts";
import { detectVmdk } from "./formats/vmdk.ts";

/** Bytes read before anything else: enough for every format's signature (ISO's is at 32 KiB). */
export const HEAD_BYTES = 36 * 1024;
/** VHD's footer is the last 512 bytes of the file. */
export const TAIL_BYTES = 512;

export interface Inspection {
  /** The format the bytes are: a disk format, a compression wrapper, or a recognized non-image. */
  format: DetectedFormat;
  /** Every format whose signature matched (more than one is refused by the policy). */
  matches: DetectedFormat[];
  virtualSize?: number;
  clusterSize?: number;
  /** The file's own size (compressed size for a wrapper), when known. */
  fileSize?: number;
  details: Record<string, unknown>;
  /** For raw disks and hybrid ISOs: the partition table. */
  partitions?: PartitionTable;
  risks: Risk[];
  notes: string[];
  /** What could not be read, so that safety could not be fully judged. */
  incomplete: string[];
  /** For a compression wrapper: what is inside (from a decompressed prefix). */
  inner?: Inspection;
  compression?: Compression;
}

export type InspectStep = { done: true; inspection: Inspection } | { done: false; needs: ByteRange[] };

const DETECTORS: [string, Detector][] = [
  ["qcow2", detectQcow2],
  ["vmdk", detectVmdk],
  ["vhdx", detectVhdx],
  ["vdi", detectVdi],
  ["vhd", detectVhd],
  ["iso", detectIso],
];

/** The ranges to read first for a file of this size. */
export function initialRanges(size: number | undefined): ByteRange[] {
  const ranges: ByteRange[] = [
    { offset: 0, length: size === undefined ? HEAD_BYTES : Math.min(HEAD_BYTES, size) },
  ];
  if (size !== undefined && size > HEAD_BYTES)
    ranges.push({
      offset: Math.max(HEAD_BYTES, size - TAIL_BYTES),
      length: size - Math.max(HEAD_BYTES, size - TAIL_BYTES),
    });
  return ranges;
}

export function inspectBytes(bytes: ByteMap): InspectStep {
  const needs: ByteRange[] = [];
  const detections: Detection[] = [];
  const incomplete: string[] = [];
  const attempt = <T>(name: string, run: () => T): T | undefined => {
    try {
      return run();
    } catch (error) {
      if (error instanceof NeedBytes) needs.push(...error.ranges);
      else if (error instanceof UnreadableBytes) incomplete.push(`${name}: ${error.message}`);
      else
        detections.push({
          format: name as DetectedFormat,
          details: {},
          risks: [
            {
              kind: "invalid_header",
              message: `${name} header could not be parsed: ${(error as Error).message}`,
            },
          ],
          notes: [],
        });
      return undefined;
    }
  };
  for (const [name, detect] of DETECTORS) {
    const found = attempt(name, () => detect(bytes));
    if (found) detections.push(found);
  }
  const compression = attempt("compression", () => detectCompression(bytes));
  const text = attempt("text", () => looksLikeText(bytes));
  const tar = attempt("tar", () => isTar(bytes));
  const partitions = attempt("partition table", () => partitionTable(bytes));
  if (needs.length > 0) return { done: false, needs };

  if (compression) detections.unshift({ format: compression, details: {}, risks: [], notes: [] });
  if (text)
    detections.push({
      format: "html",
      details: {},
      risks: [{ kind: "not_a_disk_image", message: `the file is ${text}, not a disk image` }],
      notes: [],
    });
  if (tar)
    detections.push({
      format: "tar",
      details: {},
      risks: [{ kind: "not_a_disk_image", message: "the file is a tar archive, not a disk image" }],
      notes: [],
    });
  const chosen = detections[0];
  const base = {
    matches: detections.map((d) => d.format),
    ...(bytes.size !== undefined ? { fileSize: bytes.size } : {}),
    incomplete,
  };
  if (!chosen) {
    // No signature: a raw disk. Its size is the file's size.
    const notes = partitions?.scheme === "none" ? ["no partition table (MBR or GPT) was found"] : [];
    if (
      bytes.size !== undefined &&
      bytes.size > HEAD_BYTES &&
      bytes.tryRead(bytes.size - TAIL_BYTES, TAIL_BYTES) === undefined
    )
      notes.push("the last 512 bytes could not be read (no Range support), so a fixed VHD would look raw");
    return {
      done: true,
      inspection: {
        format: "raw",
        ...base,
        matches: ["raw"],
        ...(bytes.size !== undefined ? { virtualSize: bytes.size } : {}),
        details: {},
        ...(partitions ? { partitions } : {}),
        risks: bytes.size === 0 ? [{ kind: "not_a_disk_image", message: "the file is empty" }] : [],
        notes,
      },
    };
  }
  return {
    done: true,
    inspection: {
      ...base,
      format: chosen.format,
      ...(chosen.virtualSize !== undefined ? { virtualSize: chosen.virtualSize } : {}),
      ...(chosen.clusterSize !== undefined ? { clusterSize: chosen.clusterSize } : {}),
      details: chosen.details,
      ...(chosen.format === "iso" && partitions && partitions.scheme !== "none" ? { partitions } : {}),
      ...(compression ? { compression } : {}),
      risks: detections.flatMap((d) => d.risks),
      notes: detections.flatMap((d) => d.notes),
    },
  };
}
