// Reading and writing tar archives (POSIX ustar with pax extended headers, GNU long names read too), by
// byte ranges: the root filesystem of a build is a tar that mmdebstrap wrote, and customizing it copies
// every untouched entry byte for byte (pax records, xattrs such as file capabilities, device nodes and
// hard links stay exactly as they were) while changed and new entries are encoded here. Nothing is
// extracted, so no privileges are needed to give files any owner.
import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

export const BLOCK = 512;

export type EntryType = "file" | "hardlink" | "symlink" | "char" | "block" | "dir" | "fifo" | "other";

export interface TarHeader {
  /** Normalized: no leading "./" or "/", no trailing "/"; "" is the archive's root directory. */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Symlink target or hard link source, as written in the archive. */
  linkname: string;
  devmajor?: number;
  devminor?: number;
}

export interface TarEntry extends TarHeader {
  /** Offset of the entry's first header block (pax and long-name headers included). */
  start: number;
  /** Offset of the entry's data. */
  dataStart: number;
  /** Offset just past the entry's padded data. */
  end: number;
  /** The path as the archive spells it (e.g. "./etc/passwd"). */
  rawPath: string;
}

const TYPE_FLAGS: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};
const FLAG_OF: Record<EntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
  other: "0",
};

/** A root-owned directory entry. */
export function dirHeader(path: string, mode: number, mtime: number): TarHeader {
  return {
    path,
    type: "dir",
    mode,
    uid: 0,
    gid: 0,
    size: 0,
    mtime,
    linkname: "",
    uname: "root",
    gname: "root",
  };
}

/** A root-owned symbolic link entry. */
export function symlinkHeader(path: string, target: string, mtime: number): TarHeader {
  return {
    path,
    type: "symlink",
    mode: 0o777,
    uid: 0,
    gid: 0,
    size: 0,
    mtime,
    linkname: target,
    uname: "root",
    gname: "root",
  };
}

export function normalizeTarPath(path: string): string {
  let p = path;
  while (p.startsWith("./")) p = p.slice(2);
  p = p.replace(/^\/+/, "").replace(/\/+$/, "");
  return p === "." ? "" : p;
}

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? length : nul).toString("utf8");
}

function octal(buf: Buffer, start: number, length: number): number {
  const first = buf[start] as number;
  if (first & 0x80) {
    // GNU base-256 for values too large for octal.
    let n = first & 0x7f;
    for (let i = 1; i < length; i++) n = n * 256 + (buf[start + i] as number);
    return n;
  }
  const text = cString(buf, start, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function checksumOf(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (block[i] as number);
  return sum;
}

function parsePax(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number.parseInt(data.subarray(at, space).toString("ascii"), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq !== -1) records.set(record.subarray(0, eq).toString("utf8"), record.subarray(eq + 1));
    at += length;
  }
  return records;
}

/** Positional reads through a read-ahead window: most headers sit close together. */
class Reader {
  readonly #handle: FileHandle;
  #window = Buffer.alloc(0);
  #windowStart = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  async read(position: number, length: number): Promise<Buffer> {
    const end = position + length;
    if (position >= this.#windowStart && end <= this.#windowStart + this.#window.length)
      return this.#window.subarray(position - this.#windowStart, end - this.#windowStart);
    const size = Math.max(length, 1 << 20);
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await this.#handle.read(buffer, 0, size, position);
    this.#window = buffer.subarray(0, bytesRead);
    this.#windowStart = position;
    if (bytesRead < length) throw new Error(`tar archive is truncated at byte ${position + bytesRead}`);
    return this.#window.subarray(0, length);
  }
}

/** Every entry of an archive, in order, with its byte range; data is not read. */
export async function indexTar(path: string): Promise<TarEntry[]> {
  const handle = await open(path, "r");
  try {
    const { size: fileSize } = await handle.stat();
    const reader = new Reader(handle);
    const entries: TarEntry[] = [];
    let position = 0;
    let start = 0;
    let pax = new Map<string, Buffer>();
    let longName: string | undefined;
    let longLink: string | undefined;
    while (position + BLOCK <= fileSize) {
      const block = Buffer.from(await reader.read(position, BLOCK));
      if (block.every((b) => b === 0)) break;
      if (octal(block, 148, 8) !== checksumOf(block))
        throw new Error(`${path}: bad tar header checksum at byte ${position}`);
      const flag = String.fromCharCode(block[156] as number);
      const size = octal(block, 124, 12);
      const dataStart = position + BLOCK;
      if (flag === "x" || flag === "L" || flag === "K") {
        const data = Buffer.from(await reader.read(dataStart, size));
        if (flag === "x") pax = parsePax(data);
        else if (flag === "L") longName = cString(data, 0, size);
        else longLink = cString(data, 0, size);
        position = dataStart + padded(size);
        continue;
      }
      if (flag === "g") {
        position = dataStart + padded(size);
        start = position;
        continue;
      }
      const prefix = cString(block, 345, 155);
      const name = cString(block, 0, 100);
      const rawPath = pax.get("path")?.toString("utf8") ?? longName ?? (prefix ? `${prefix}/${name}` : name);
      const entrySize = pax.has("size") ? Number(pax.get("size")?.toString()) : size;
      const type = TYPE_FLAGS[flag] ?? "other";
      const dataSize = type === "file" ? entrySize : 0;
      const entry: TarEntry = {
        path: normalizeTarPath(rawPath),
        rawPath,
        type,
        mode: octal(block, 100, 8) & 0o7777,
        uid: pax.has("uid") ? Number(pax.get("uid")?.toString()) : octal(block, 108, 8),
        gid: pax.has("gid") ? Number(pax.get("gid")?.toString()) : octal(block, 116, 8),
        size: dataSize,
        mtime: pax.has("mtime") ? Math.floor(Number(pax.get("mtime")?.toString())) : octal(block, 136, 12),
        linkname: pax.get("linkpath")?.toString("utf8") ?? longLink ?? cString(block, 157, 100),
        start,
        dataStart,
        end: dataStart + padded(dataSize),
      };
      const uname = pax.get("uname")?.toString("utf8") ?? cString(block, 265, 32);
      const gname = pax.get("gname")?.toString("utf8") ?? cString(block, 297, 32);
      if (uname) entry.uname = uname;
      if (gname) entry.gname = gname;
      if (type === "char" || type === "block") {
        entry.devmajor = octal(block, 329, 8);
        entry.devminor = octal(block, 337, 8);
      }
      entries.push(entry);
      position = entry.end;
      start = position;
      pax = new Map();
      longName = undefined;
      longLink = undefined;
    }
    return entries;
  } finally {
    await handle.close();
  }
}

/** The data of one file entry. */
export async function readEntry(path: string, entry: TarEntry): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(entry.size);
    const { bytesRead } = await handle.read(buffer, 0, entry.size, entry.dataStart);
    if (bytesRead !== entry.size) throw new Error(`${path}: ${entry.path} is truncated`);
    return buffer;
  } finally {
    await handle.close();
  }
}

function paxRecord(key: string, value: string): Buffer {
  const bodyLength = Buffer.byteLength(` ${key}=${value}\n`);
  // The length counts its own digits.
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length = String(length).length + bodyLength;
  return Buffer.from(`${length} ${key}=${value}\n`);
}

function writeString(block: Buffer, text: string, start: number, length: number): void {
  block.write(text, start, length, "utf8");
}

function writeOctal(block: Buffer, value: number, start: number, length: number): void {
  block.write(`${value.toString(8).padStart(length - 1, "0")}\0`, start, length, "ascii");
}

function headerBlock(fields: {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, fields.name, 0, 100);
  writeOctal(block, fields.mode, 100, 8);
  writeOctal(block, fields.uid, 108, 8);
  writeOctal(block, fields.gid, 116, 8);
  writeOctal(block, fields.size, 124, 12);
  writeOctal(block, fields.mtime, 136, 12);
  block.write(fields.type, 156, 1, "ascii");
  writeString(block, fields.linkname, 157, 100);
  block.write("ustar\0" + "00", 257, 8, "ascii");
  writeString(block, fields.uname, 265, 32);
  writeString(block, fields.gname, 297, 32);
  writeOctal(block, fields.devmajor, 329, 8);
  writeOctal(block, fields.devminor, 337, 8);
  writeOctal(block, checksumOf(block), 148, 7);
  block[155] = 0x20;
  return block;
}

const fitsAscii = (text: string, max: number) => /^[\x20-\x7e]*$/.test(text) && text.length < max;
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

/** The header blocks of an entry: a pax header first when a value does not fit ustar. */
export function encodeHeader(header: TarHeader & { rawPath?: string }): Buffer {
  const name =
    header.rawPath ?? (header.path === "" ? "./" : `./${header.path}${header.type === "dir" ? "/" : ""}`);
  const records: Buffer[] = [];
  if (!fitsAscii(name, 100)) records.push(paxRecord("path", name));
  if (!fitsAscii(header.linkname, 100)) records.push(paxRecord("linkpath", header.linkname));
  if (header.uid > MAX_OCTAL_8) records.push(paxRecord("uid", String(header.uid)));
  if (header.gid > MAX_OCTAL_8) records.push(paxRecord("gid", String(header.gid)));
  if (header.size > MAX_OCTAL_12) records.push(paxRecord("size", String(header.size)));
  const uname = header.uname ?? "";
  const gname = header.gname ?? "";
  if (!fitsAscii(uname, 32)) records.push(paxRecord("uname", uname));
  if (!fitsAscii(gname, 32)) records.push(paxRecord("gname", gname));
  const main = headerBlock({
    name: fitsAscii(name, 100) ? name : name.replace(/[^\x20-\x7e]/g, "_").slice(-99),
    type: FLAG_OF[header.type],
    mode: header.mode & 0o7777,
    uid: Math.min(header.uid, MAX_OCTAL_8),
    gid: Math.min(header.gid, MAX_OCTAL_8),
    size: header.type === "file" ? Math.min(header.size, MAX_OCTAL_12) : 0,
    mtime: Math.max(0, Math.min(header.mtime, MAX_OCTAL_12)),
    linkname: fitsAscii(header.linkname, 100) ? header.linkname : "",
    uname: fitsAscii(uname, 32) ? uname : "",
    gname: fitsAscii(gname, 32) ? gname : "",
    devmajor: header.devmajor ?? 0,
    devminor: header.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const paxData = Buffer.concat(records);
  const paxHeader = headerBlock({
    name: "././@PaxHeader",
    type: "x",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxData.length,
    mtime: Math.max(0, header.mtime),
    linkname: "",
    uname: "",
    gname: "",
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, paxData, Buffer.alloc(padded(paxData.length) - paxData.length), main]);
}

export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

/** The padding after `size` bytes of entry data. */
export function padding(size: number): Buffer {
  return Buffer.alloc(padded(size) - size);
}

/** Appends to a file through a handle, in order; copies byte ranges of other files without reading them into JS where it can. */
export class TarWriter {
  readonly #handle: FileHandle;
  #position = 0;

  private constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  static async create(path: string): Promise<TarWriter> {
    return new TarWriter(await open(path, "w", 0o644));
  }

  get position(): number {
    return this.#position;
  }

  async write(data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#handle.write(data, done, data.length - done, this.#position);
      done += bytesWritten;
      this.#position += bytesWritten;
    }
  }

  /** Copies bytes [start, end) of another file. */
  async copyRange(source: FileHandle, start: number, end: number): Promise<void> {
    const chunk = Buffer.allocUnsafe(Math.min(4 << 20, Math.max(end - start, 1)));
    let at = start;
    while (at < end) {
      const { bytesRead } = await source.read(chunk, 0, Math.min(chunk.length, end - at), at);
      if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${at}`);
      await this.write(chunk.subarray(0, bytesRead));
      at += bytesRead;
    }
  }

  /** Appends an entry whose data is a buffer (files) or nothing (directories, links). */
  async add(header: TarHeader, data?: Buffer): Promise<void> {
    const size = header.type === "file" ? (data?.length ?? 0) : 0;
    await this.write(encodeHeader({ ...header, size }));
    if (size > 0 && data) {
      await this.write(data);
      await this.write(padding(size));
    }
  }

  /** Appends a file entry whose data is streamed from a file on disk (of `header.size` bytes). */
  async addFile(header: TarHeader, file: string): Promise<void> {
    await this.write(encodeHeader(header));
    let copied = 0;
    for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) {
      await this.write(chunk as Buffer);
      copied += (chunk as Buffer).length;
    }
    if (copied !== header.size) throw new Error(`${file} changed size while it was archived`);
    await this.write(padding(copied));
  }

  async finish(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
    await this.#handle.sync();
    await this.#handle.close();
  }

  async abort(): Promise<void> {
    await this.#handle.close();
  }
}
