// VDI (VirtualBox): a 512-byte header after a 64-byte text banner; differencing images link a parent.
import { type ByteMap, isAllZero, u32le, u64le } from "../bytes.ts";
import type { Detection, Risk } from "./types.ts";

const SIGNATURE = 0xbeda107f;
const TYPES: Record<number, string> = { 1: "dynamic", 2: "fixed", 3: "undo", 4: "differencing" };

export function detectVdi(bytes: ByteMap): Detection | null {
  const h = bytes.read(0, 512);
  if (h.length < 0x1c8 || u32le(h, 0x40) !== SIGNATURE) return null;
  const risks: Risk[] = [];
  const version = u32le(h, 0x44);
  const typeCode = u32le(h, 0x4c);
  const blockSize = u32le(h, 0x178);
  const virtualSize = u64le(h, 0x170);
  const details: Record<string, unknown> = {
    version: `${version >>> 16}.${version & 0xffff}`,
    imageType: TYPES[typeCode] ?? `unknown (${typeCode})`,
    blockSize,
    sectorSize: u32le(h, 0x168),
  };
  if (version >>> 16 !== 1)
    risks.push({ kind: "unsupported_version", message: `VDI version ${details.version as string}` });
  if (typeCode === 3 || typeCode === 4)
    risks.push({
      kind: "backing_file",
      message: `VDI ${details.imageType as string} image: it has a parent`,
    });
  else if (!(typeCode in TYPES))
    risks.push({ kind: "invalid_header", message: `VDI image type ${typeCode}` });
  if (!isAllZero(h.subarray(0x1a8, 0x1c8)))
    risks.push({ kind: "backing_file", message: "VDI links a parent image (uuid_link is set)" });
  if (!Number.isFinite(virtualSize))
    risks.push({ kind: "invalid_header", message: "VDI disk size is too large" });
  return { format: "vdi", virtualSize, clusterSize: blockSize, details, risks, notes: [] };
}
