// Raw disks: no header of their own, so the partition table tells what they are (MBR, GPT).
import { ascii, type ByteMap, guidLe, isAllZero, startsWith, u32le, u64le } from "../bytes.ts";

export interface Partition {
  index: number;
  type: string;
  startLba: number;
  sectors: number;
  name?: string;
  bootable?: boolean;
}

export interface PartitionTable {
  scheme: "gpt" | "mbr" | "none";
  sectorSize?: number;
  partitions: Partition[];
  diskGuid?: string;
}

const GPT_TYPES: Record<string, string> = {
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
  "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
  "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
  "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
  "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
  "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
  "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
  "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
  "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery",
};

/** The partition table of a raw disk (whatever of it the bytes held show). */
export function partitionTable(bytes: ByteMap): PartitionTable {
  const mbr = bytes.read(0, 512);
  const signed = mbr.length === 512 && mbr[510] === 0x55 && mbr[511] === 0xaa;
  for (const sectorSize of [512, 4096]) {
    const header = bytes.tryRead(sectorSize, 92);
    if (header && startsWith(header, "EFI PART")) return gpt(bytes, header, sectorSize);
  }
  if (!signed) return { scheme: "none", partitions: [] };
  const partitions: Partition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = mbr.subarray(446 + i * 16, 462 + i * 16);
    if (isAllZero(e)) continue;
    const type = e[4] as number;
    if (type === 0) continue;
    partitions.push({
      index: i + 1,
      type: `0x${type.toString(16).padStart(2, "0")}`,
      startLba: u32le(e, 8),
      sectors: u32le(e, 12),
      bootable: e[0] === 0x80,
    });
  }
  return { scheme: "mbr", sectorSize: 512, partitions };
}

function gpt(bytes: ByteMap, header: Uint8Array, sectorSize: number): PartitionTable {
  const entriesLba = u64le(header, 72);
  const count = Math.min(u32le(header, 80), 256);
  const entrySize = u32le(header, 84);
  const diskGuid = guidLe(header, 56);
  const partitions: Partition[] = [];
  if (entrySize >= 128 && entrySize <= 4096 && Number.isFinite(entriesLba) && entriesLba < 1024) {
    const table = bytes.tryRead(entriesLba * sectorSize, count * entrySize);
    if (table) {
      for (let i = 0; i < count && (i + 1) * entrySize <= table.length; i++) {
        const e = table.subarray(i * entrySize, (i + 1) * entrySize);
        if (isAllZero(e.subarray(0, 16))) continue;
        const typeGuid = guidLe(e, 0);
        const first = u64le(e, 32);
        const last = u64le(e, 40);
        partitions.push({
          index: i + 1,
          type: GPT_TYPES[typeGuid] ?? typeGuid,
          startLba: first,
          sectors: last - first + 1,
          name: utf16le(e.subarray(56, 128)),
        });
      }
    }
  }
  return { scheme: "gpt", sectorSize, partitions, diskGuid };
}

function utf16le(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = (b[i] as number) | ((b[i + 1] as number) << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** A text start that marks a web page or a text file, not a disk. */
export function looksLikeText(bytes: ByteMap): string | undefined {
  const head = ascii(bytes.read(0, 512))
    .replace(/^\uFEFF/, "")
    .trimStart()
    .slice(0, 64)
    .toLowerCase();
  if (head.startsWith("<!doctype html") || head.startsWith("<html") || head.startsWith("<?xml"))
    return "an HTML or XML document";
  return undefined;
}
