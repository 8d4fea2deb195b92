// ISO 9660: volume descriptors from sector 16 (2048-byte sectors), "CD001" after a type byte.
import { ascii, type ByteMap, startsWith, u16le, u32le } from "../bytes.ts";
import type { Detection } from "./types.ts";

const FIRST = 16 * 2048;

export function detectIso(bytes: ByteMap): Detection | null {
  const first = bytes.read(FIRST, 2048);
  if (!startsWith(first, "CD001", 1)) return null;
  const details: Record<string, unknown> = {};
  let virtualSize: number | undefined;
  // Walk the descriptors (at most a few) for the primary one and an El Torito boot record.
  for (let i = 0; i < 8; i++) {
    const d = i === 0 ? first : bytes.tryRead(FIRST + i * 2048, 2048);
    if (!d || d.length < 2048 || !startsWith(d, "CD001", 1)) break;
    const type = d[0];
    if (type === 255) break;
    if (type === 0 && ascii(d, 7, 23) === "EL TORITO SPECIFICATION") details.bootable = true;
    if (type === 1) {
      details.volumeId = ascii(d, 40, 32).trim();
      const blocks = u32le(d, 80);
      const blockSize = u16le(d, 128);
      details.volumeBlocks = blocks;
      details.blockSize = blockSize;
      virtualSize = bytes.size ?? blocks * blockSize;
    }
  }
  details.bootable ??= false;
  return {
    format: "iso",
    ...(virtualSize !== undefined ? { virtualSize } : {}),
    details,
    risks: [],
    notes: [],
  };
}
