// VHD (Virtual PC, "vpc" in QEMU): a 512-byte footer at the end of the file, copied at the start of
// dynamic and differencing disks. A differencing disk reads its parent from a host path.
import { ascii, type ByteMap, startsWith, u16be, u32be, u64be } from "../bytes.ts";
import type { Detection, Risk } from "./types.ts";

const COOKIE = "conectix";
const DISK_TYPES: Record<number, string> = { 2: "fixed", 3: "dynamic", 4: "differencing" };
/** Creator apps whose size QEMU takes from the CHS geometry rather than current_size (block/vpc.c). */
const CHS_CREATORS = new Set(["vpc ", "qemu"]);

function footerChecksumOk(f: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i] as number;
  return ~sum >>> 0 === u32be(f, 64);
}

export function detectVhd(bytes: ByteMap): Detection | null {
  // Dynamic disks carry a copy at offset 0; fixed disks only at the end.
  let footer: Uint8Array | undefined;
  let where = "";
  const head = bytes.read(0, 512);
  if (startsWith(head, COOKIE)) {
    footer = head;
    where = "start";
  } else if (bytes.size !== undefined && bytes.size >= 512) {
    const tail = bytes.tryRead(bytes.size - 512, 512);
    // Some writers use a 511-byte footer (pre-Virtual PC 2004).
    if (tail && startsWith(tail, COOKIE)) footer = tail;
    else if (tail && startsWith(tail, COOKIE, 1)) footer = tail.subarray(1);
    where = "end";
  }
  if (!footer) return null;
  if (footer.length < 512) {
    const padded = new Uint8Array(512);
    padded.set(footer);
    footer = padded;
  }
  const risks: Risk[] = [];
  const notes: string[] = [];
  const dataOffset = u64be(footer, 16);
  const creatorApp = ascii(footer, 28, 4);
  const currentSize = u64be(footer, 48);
  const cylinders = u16be(footer, 56);
  const heads = footer[58] as number;
  const sectors = footer[59] as number;
  const diskTypeCode = u32be(footer, 60);
  const diskType = DISK_TYPES[diskTypeCode] ?? `unknown (${diskTypeCode})`;
  const details: Record<string, unknown> = {
    footerAt: where,
    diskType,
    creatorApp: creatorApp.replace(/\0/g, "\\0"),
    currentSize,
    geometry: { cylinders, heads, sectors },
  };
  if (!footerChecksumOk(footer)) notes.push("VHD footer checksum does not match");
  if (diskTypeCode === 4)
    risks.push({ kind: "backing_file", message: "VHD differencing disk: it reads a parent disk by path" });
  else if (!(diskTypeCode in DISK_TYPES))
    risks.push({ kind: "invalid_header", message: `VHD disk type ${diskTypeCode} is unknown` });
  // QEMU's rule: CHS-derived size for Virtual PC and QEMU-made images, unless the geometry is the maximum.
  const chsSize = cylinders * heads * sectors * 512;
  const maxGeometry = cylinders === 65535 && heads === 16 && sectors >= 255;
  const virtualSize = CHS_CREATORS.has(creatorApp) && !maxGeometry ? chsSize : currentSize;
  let clusterSize: number | undefined;
  if (diskTypeCode === 3 || diskTypeCode === 4) {
    if (!Number.isFinite(dataOffset) || dataOffset > 1024 * 1024 * 1024) {
      risks.push({ kind: "invalid_header", message: "VHD dynamic header offset is invalid" });
    } else {
      const dyn = bytes.tryRead(dataOffset, 1024);
      if (dyn && startsWith(dyn, "cxsparse")) {
        clusterSize = u32be(dyn, 32);
        details.blockSize = clusterSize;
        details.maxTableEntries = u32be(dyn, 28);
        if (diskTypeCode === 4) details.parentName = decodeUtf16be(dyn.subarray(64, 576));
      } else if (dyn) {
        risks.push({ kind: "invalid_header", message: "VHD dynamic header (cxsparse) is missing" });
      } else notes.push("VHD dynamic header could not be read");
    }
  }
  return {
    format: "vhd",
    virtualSize,
    ...(clusterSize !== undefined ? { clusterSize } : {}),
    details,
    risks,
    notes,
  };
}

function decodeUtf16be(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = ((b[i] as number) << 8) | (b[i + 1] as number);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}
