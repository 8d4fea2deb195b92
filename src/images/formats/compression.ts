// Compressed wrappers: recognized by their magic bytes; the probe decompresses a prefix to inspect
// what is inside.
import { type ByteMap, startsWith } from "../bytes.ts";
import type { Compression } from "./types.ts";

const MAGICS: [Compression, number[]][] = [
  ["gzip", [0x1f, 0x8b]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["bzip2", [0x42, 0x5a, 0x68]],
];

export function detectCompression(bytes: ByteMap): Compression | undefined {
  const head = bytes.read(0, 16);
  for (const [name, magic] of MAGICS) {
    if (!startsWith(head, magic)) continue;
    // bzip2: "BZh" then a block size digit 1-9 and the block magic pi (0x314159265359).
    if (
      name === "bzip2" &&
      !(
        head[3] !== undefined &&
        head[3] >= 0x31 &&
        head[3] <= 0x39 &&
        startsWith(head, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4)
      )
    )
      continue;
    return name;
  }
  return undefined;
}

/** A tar archive ("ustar" at 257): some clouds ship disk.raw inside one; it is not a disk image itself. */
export function isTar(bytes: ByteMap): boolean {
  return startsWith(bytes.read(257, 5), "ustar");
}
