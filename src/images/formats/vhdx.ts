// VHDX: file identifier at 0, region table at 192 KiB pointing at the metadata region, whose items give
// the block size, the virtual size and whether the disk has a parent (a differencing disk).
import { type ByteMap, guidLe, startsWith, u16le, u32le, u64le } from "../bytes.ts";
import type { Detection, Risk } from "./types.ts";

const REGION_TABLE = 192 * 1024;
const METADATA_REGION = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const BAT_REGION = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const FILE_PARAMETERS = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const VIRTUAL_DISK_SIZE = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const LOGICAL_SECTOR_SIZE = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const PHYSICAL_SECTOR_SIZE = "CDA348C7-445D-4471-9CC9-E9885251C556";
const PAGE_83 = "BECA12AB-B2E6-4523-93EF-C309E000C746";
const PARENT_LOCATOR = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const KNOWN_ITEMS = new Set([
  FILE_PARAMETERS,
  VIRTUAL_DISK_SIZE,
  LOGICAL_SECTOR_SIZE,
  PHYSICAL_SECTOR_SIZE,
  PAGE_83,
  PARENT_LOCATOR,
]);

export function detectVhdx(bytes: ByteMap): Detection | null {
  if (!startsWith(bytes.read(0, 8), "vhdxfile")) return null;
  const risks: Risk[] = [];
  const details: Record<string, unknown> = {};
  const invalid = (message: string): Detection => ({
    format: "vhdx",
    details,
    risks: [...risks, { kind: "invalid_header", message }],
    notes: [],
  });
  const table = bytes.read(REGION_TABLE, 16);
  if (!startsWith(table, "regi")) return invalid("VHDX region table signature is missing");
  const count = u32le(table, 8);
  if (count > 2047) return invalid(`VHDX region table has ${count} entries`);
  const entries = bytes.read(REGION_TABLE + 16, count * 32);
  let metadata: { offset: number; length: number } | undefined;
  for (let i = 0; i < count; i++) {
    const guid = guidLe(entries, i * 32);
    const offset = u64le(entries, i * 32 + 16);
    const length = u32le(entries, i * 32 + 24);
    const required = (u32le(entries, i * 32 + 28) & 1) === 1;
    if (guid === METADATA_REGION) metadata = { offset, length };
    else if (guid !== BAT_REGION && required)
      risks.push({ kind: "unknown_features", message: `VHDX requires an unknown region ${guid}` });
  }
  if (!metadata || !Number.isFinite(metadata.offset)) return invalid("VHDX has no metadata region");
  const mt = bytes.read(metadata.offset, 32);
  if (!startsWith(mt, "metadata")) return invalid("VHDX metadata table signature is missing");
  const items = u16le(mt, 10);
  if (items > 2047) return invalid(`VHDX metadata table has ${items} entries`);
  const list = bytes.read(metadata.offset + 32, items * 32);
  let virtualSize: number | undefined;
  let blockSize: number | undefined;
  for (let i = 0; i < items; i++) {
    const id = guidLe(list, i * 32);
    const offset = u32le(list, i * 32 + 16);
    const length = u32le(list, i * 32 + 20);
    const required = (u32le(list, i * 32 + 24) & 4) === 4;
    const at = metadata.offset + offset;
    if (id === FILE_PARAMETERS && length >= 8) {
      const v = bytes.read(at, 8);
      blockSize = u32le(v, 0);
      const flags = u32le(v, 4);
      details.blockSize = blockSize;
      details.leaveBlocksAllocated = (flags & 1) === 1;
      if (flags & 2)
        risks.push({ kind: "backing_file", message: "VHDX differencing disk: it has a parent disk" });
    } else if (id === VIRTUAL_DISK_SIZE && length >= 8) {
      virtualSize = u64le(bytes.read(at, 8), 0);
    } else if (id === LOGICAL_SECTOR_SIZE && length >= 4) {
      details.logicalSectorSize = u32le(bytes.read(at, 4), 0);
    } else if (id === PARENT_LOCATOR) {
      risks.push({ kind: "backing_file", message: "VHDX has a parent locator" });
    } else if (!KNOWN_ITEMS.has(id) && required) {
      risks.push({ kind: "unknown_features", message: `VHDX requires an unknown metadata item ${id}` });
    }
  }
  if (virtualSize === undefined) return invalid("VHDX metadata has no virtual disk size");
  return {
    format: "vhdx",
    virtualSize,
    ...(blockSize !== undefined ? { clusterSize: blockSize } : {}),
    details,
    risks,
    notes: [],
  };
}
