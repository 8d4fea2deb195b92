// An ISO 9660 image writer with Joliet and Rock Ridge, for small volumes built in memory (NoCloud seeds,
// driver disks). Pure: files in, bytes out; the same input always gives the same bytes.
//
// Layout (2048-byte sectors): 0-15 system area, 16 primary volume descriptor, 17 Joliet supplementary
// descriptor, 18 terminator, 19 the Rock Ridge continuation area (the ER entry, too long for the root
// record), then the path tables (primary L/M, Joliet L/M), the directory extents of both trees, and the file
// data, shared by both trees.
//
// Three names per file: the ISO 9660 level-2 identifier (upper case, d-characters, "USER_DATA.;1"), the
// Joliet name (UCS-2, up to 64 characters, what Windows shows) and the Rock Ridge NM name (the exact name
// with POSIX modes, what Linux shows). Names are limited to 64 characters so that every record fits its
// 255-byte limit without continuation areas.

export interface IsoFile {
  /** Slash-separated path inside the image, e.g. "user-data" or "openstack/latest/meta_data.json". */
  path: string;
  data: Uint8Array | string;
  /** POSIX permission bits for Rock Ridge; 0o444 unless given. */
  mode?: number;
}

export interface IsoOptions {
  /** The volume label, e.g. "cidata" (kept as written: NoCloud looks for "cidata" or "CIDATA"). */
  volumeId: string;
  files: readonly IsoFile[];
  /** Recording time of every record; fixed by the caller for reproducible output. Default: now. */
  date?: Date;
  applicationId?: string;
}

export class IsoError extends Error {
  override name = "IsoError";
}

const SECTOR = 2048;
const MAX_NAME = 64;
const MAX_FILE_BYTES = 0xffff_ffff;
const RR_ID = "RRIP_1991A";
const RR_DESCRIPTOR = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const RR_SOURCE =
  "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

interface FileNode {
  kind: "file";
  name: string;
  data: Uint8Array;
  mode: number;
  isoName: string;
  extent: number;
}

interface DirNode {
  kind: "dir";
  name: string;
  children: Node[];
  parent: DirNode | undefined;
  isoName: string;
  /** 1-based numbers in the path tables (the trees sort differently, so the numbers may differ). */
  number: { primary: number; joliet: number };
  extent: { primary: number; joliet: number };
  size: { primary: number; joliet: number };
}

type Node = FileNode | DirNode;

// ---------------------------------------------------------------------------------------------------------
// Byte helpers: ISO 9660 stores most numbers twice, little-endian then big-endian ("both-endian").

function both32(value: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(value, 0);
  b.writeUInt32BE(value, 4);
  return b;
}

function both16(value: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(value, 0);
  b.writeUInt16BE(value, 2);
  return b;
}

function ascii(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

function ucs2be(text: string): Uint8Array {
  const b = Buffer.alloc(text.length * 2);
  for (let i = 0; i < text.length; i++) b.writeUInt16BE(text.charCodeAt(i), i * 2);
  return b;
}

/** A fixed-width text field padded with spaces (ASCII, or UCS-2 spaces for Joliet). */
function field(text: string, width: number, joliet: boolean): Uint8Array {
  const b = Buffer.alloc(width, 0x20);
  if (joliet) {
    for (let i = 0; i + 1 < width; i += 2) b.writeUInt16BE(0x20, i);
    if (width % 2 === 1) b[width - 1] = 0;
    b.set(ucs2be(text).subarray(0, width - (width % 2)));
  } else {
    b.set(ascii(text).subarray(0, width));
  }
  return b;
}

function recordDate(date: Date): Uint8Array {
  return Uint8Array.from([
    date.getUTCFullYear() - 1900,
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    0,
  ]);
}

function volumeDate(date: Date | undefined): Uint8Array {
  const b = Buffer.alloc(17, 0x30);
  b[16] = 0;
  if (!date) return b;
  const p = (n: number, w: number) => String(n).padStart(w, "0");
  const text =
    p(date.getUTCFullYear(), 4) +
    p(date.getUTCMonth() + 1, 2) +
    p(date.getUTCDate(), 2) +
    p(date.getUTCHours(), 2) +
    p(date.getUTCMinutes(), 2) +
    p(date.getUTCSeconds(), 2) +
    p(Math.floor(date.getUTCMilliseconds() / 10), 2);
  b.write(text, 0, "latin1");
  return b;
}

const sectorsFor = (bytes: number) => Math.ceil(bytes / SECTOR);

// ---------------------------------------------------------------------------------------------------------
// The tree

function checkName(name: string, path: string): void {
  if (name === "" || name === "." || name === "..")
    throw new IsoError(`file path "${path}": empty, "." or ".." component; use plain relative paths`);
  if (name.length > MAX_NAME)
    throw new IsoError(`file path "${path}": the name "${name}" is longer than ${MAX_NAME} characters`);
  const controlOrAstral = [...name].some((c) => (c.codePointAt(0) ?? 0) < 0x20 || c.length > 1);
  if (controlOrAstral)
    throw new IsoError(`file path "${path}": control or non-BMP characters are not allowed in names`);
}

function newDir(name: string, parent: DirNode | undefined): DirNode {
  return {
    kind: "dir",
    name,
    children: [],
    parent,
    isoName: "",
    number: { primary: 0, joliet: 0 },
    extent: { primary: 0, joliet: 0 },
    size: { primary: 0, joliet: 0 },
  };
}

function buildTree(files: readonly IsoFile[]): DirNode {
  const root = newDir("", undefined);
  for (const file of files) {
    const parts = file.path.split("/");
    let dir = root;
    parts.forEach((part, i) => {
      checkName(part, file.path);
      const existing = dir.children.find((c) => c.name === part);
      if (i === parts.length - 1) {
        if (existing) throw new IsoError(`file path "${file.path}" is given twice`);
        const data = typeof file.data === "string" ? Buffer.from(file.data, "utf8") : file.data;
        if (data.length > MAX_FILE_BYTES)
          throw new IsoError(`file "${file.path}" is larger than 4 GiB, the ISO 9660 extent limit`);
        dir.children.push({
          kind: "file",
          name: part,
          data,
          mode: file.mode ?? 0o444,
          isoName: "",
          extent: 0,
        });
        return;
      }
      if (existing?.kind === "file")
        throw new IsoError(`file path "${file.path}": "${part}" is a file, not a directory`);
      if (existing) dir = existing;
      else {
        const child = newDir(part, dir);
        dir.children.push(child);
        dir = child;
      }
    });
  }
  assignIsoNames(root);
  return root;
}

/** ISO 9660 level-2 identifiers: d-characters (A-Z 0-9 _), at most 30 characters, unique per directory. */
function assignIsoNames(dir: DirNode): void {
  const taken = new Set<string>();
  const clean = (s: string) => s.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
  for (const child of dir.children) {
    let base: string;
    let ext = "";
    if (child.kind === "file") {
      const dot = child.name.lastIndexOf(".");
      base = clean(dot > 0 ? child.name.slice(0, dot) : child.name);
      ext = dot > 0 ? clean(child.name.slice(dot + 1)).slice(0, 8) : "";
    } else {
      base = clean(child.name);
    }
    const room = child.kind === "file" ? 30 - 1 - ext.length : 31;
    let candidate = base.slice(0, room);
    for (let n = 1; taken.has(candidate); n++) {
      const suffix = `_${n}`;
      candidate = base.slice(0, room - suffix.length) + suffix;
    }
    taken.add(candidate);
    child.isoName = child.kind === "file" ? `${candidate}.${ext};1` : candidate;
    if (child.kind === "dir") assignIsoNames(child);
  }
}

/** Directories in path-table order: breadth first, each level by parent number then name. */
function directoriesInOrder(root: DirNode, joliet: boolean): DirNode[] {
  const order: DirNode[] = [root];
  for (let i = 0; i < order.length; i++) {
    const dir = order[i] as DirNode;
    for (const child of sortedChildren(dir, joliet)) if (child.kind === "dir") order.push(child);
  }
  return order;
}

function sortedChildren(dir: DirNode, joliet: boolean): Node[] {
  const key = (n: Node) => (joliet ? n.name : n.isoName);
  return [...dir.children].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------------------
// Rock Ridge (SUSP) entries

function susp(signature: string, body: Uint8Array): Uint8Array {
  return Buffer.concat([ascii(signature), Uint8Array.from([4 + body.length, 1]), body]);
}

function rrPosix(mode: number, links: number): Uint8Array {
  return susp("PX", Buffer.concat([both32(mode), both32(links), both32(0), both32(0)]));
}

function rrTimes(date: Date): Uint8Array {
  // Modify, access and attribute-change times, short form.
  const stamp = recordDate(date);
  return susp("TF", Buffer.concat([Uint8Array.from([0b1110]), stamp, stamp, stamp]));
}

function rrFlags(withName: boolean): Uint8Array {
  // RRIP 1.09 "RR" entry: which entries follow (PX=1, NM=8, TF=128); read by older implementations.
  return susp("RR", Uint8Array.from([0x81 | (withName ? 0x08 : 0)]));
}

function rrName(name: string): Uint8Array {
  return susp("NM", Buffer.concat([Uint8Array.from([0]), Buffer.from(name, "utf8")]));
}

function rrContinuation(sector: number, length: number): Uint8Array {
  return susp("CE", Buffer.concat([both32(sector), both32(0), both32(length)]));
}

function rrExtensionReference(): Uint8Array {
  return susp(
    "ER",
    Buffer.concat([
      Uint8Array.from([RR_ID.length, RR_DESCRIPTOR.length, RR_SOURCE.length, 1]),
      ascii(RR_ID),
      ascii(RR_DESCRIPTOR),
      ascii(RR_SOURCE),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Directory records

interface RecordInput {
  extent: number;
  size: number;
  directory: boolean;
  identifier: Uint8Array;
  date: Date;
  systemUse?: Uint8Array;
}

function directoryRecord(r: RecordInput): Uint8Array {
  const idLength = r.identifier.length;
  const pad = idLength % 2 === 0 ? 1 : 0;
  const su = r.systemUse ?? new Uint8Array(0);
  let length = 33 + idLength + pad + su.length;
  if (length % 2 === 1) length += 1;
  if (length > 255) throw new IsoError("a directory record exceeds 255 bytes; use a shorter name");
  const b = Buffer.alloc(length);
  b[0] = length;
  b.set(both32(r.extent), 2);
  b.set(both32(r.size), 10);
  b.set(recordDate(r.date), 18);
  b[25] = r.directory ? 0x02 : 0x00;
  b.set(both16(1), 28);
  b[32] = idLength;
  b.set(r.identifier, 33);
  b.set(su, 33 + idLength + pad);
  return b;
}

/** Records packed into sectors; a record never straddles a sector boundary. */
function packRecords(records: readonly Uint8Array[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let used = 0;
  for (const record of records) {
    if (used + record.length > SECTOR) {
      chunks.push(new Uint8Array(SECTOR - used));
      used = 0;
    }
    chunks.push(record);
    used += record.length;
  }
  if (used > 0 && used < SECTOR) chunks.push(new Uint8Array(SECTOR - used));
  return Buffer.concat(chunks);
}

interface TreeContext {
  joliet: boolean;
  date: Date;
  /** The sector of the Rock Ridge continuation area (primary tree only). */
  continuationSector: number;
  continuationLength: number;
}

function subdirCount(dir: DirNode): number {
  return dir.children.filter((c) => c.kind === "dir").length;
}

function directoryExtent(dir: DirNode, ctx: TreeContext): Uint8Array {
  const key = ctx.joliet ? "joliet" : "primary";
  const parent = dir.parent ?? dir;
  const dirMode = 0o040555;
  const self: RecordInput = {
    extent: dir.extent[key],
    size: dir.size[key],
    directory: true,
    identifier: Uint8Array.from([0]),
    date: ctx.date,
  };
  const up: RecordInput = {
    extent: parent.extent[key],
    size: parent.size[key],
    directory: true,
    identifier: Uint8Array.from([1]),
    date: ctx.date,
  };
  if (!ctx.joliet) {
    const common = [rrFlags(false), rrPosix(dirMode, 2 + subdirCount(dir)), rrTimes(ctx.date)];
    // The root's "." record announces SUSP (SP, first) and points at the ER entry (CE).
    self.systemUse = dir.parent
      ? Buffer.concat(common)
      : Buffer.concat([
          susp("SP", Uint8Array.from([0xbe, 0xef, 0])),
          ...common,
          rrContinuation(ctx.continuationSector, ctx.continuationLength),
        ]);
    up.systemUse = Buffer.concat([
      rrFlags(false),
      rrPosix(dirMode, 2 + subdirCount(parent)),
      rrTimes(ctx.date),
    ]);
  }
  const records = [directoryRecord(self), directoryRecord(up)];
  for (const child of sortedChildren(dir, ctx.joliet)) {
    const directory = child.kind === "dir";
    const extent = directory ? child.extent[key] : child.data.length === 0 ? 0 : child.extent;
    const size = directory ? child.size[key] : child.data.length;
    // Joliet names carry no ";1" version, as genisoimage writes them (Linux and Windows accept both).
    const identifier = ctx.joliet ? ucs2be(child.name) : ascii(child.isoName);
    const systemUse = ctx.joliet
      ? undefined
      : Buffer.concat([
          rrFlags(true),
          rrPosix(directory ? dirMode : 0o100000 | child.mode, directory ? 2 + subdirCount(child) : 1),
          rrTimes(ctx.date),
          rrName(child.name),
        ]);
    records.push(directoryRecord({ extent, size, directory, identifier, date: ctx.date, systemUse }));
  }
  return packRecords(records);
}

function pathTable(dirs: readonly DirNode[], joliet: boolean, bigEndian: boolean): Uint8Array {
  const key = joliet ? "joliet" : "primary";
  const parts: Uint8Array[] = [];
  for (const dir of dirs) {
    const id = dir.parent ? (joliet ? ucs2be(dir.name) : ascii(dir.isoName)) : Uint8Array.from([0]);
    const b = Buffer.alloc(8 + id.length + (id.length % 2));
    b[0] = id.length;
    if (bigEndian) {
      b.writeUInt32BE(dir.extent[key], 2);
      b.writeUInt16BE((dir.parent ?? dir).number[key], 6);
    } else {
      b.writeUInt32LE(dir.extent[key], 2);
      b.writeUInt16LE((dir.parent ?? dir).number[key], 6);
    }
    b.set(id, 8);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------------
// Volume descriptors

interface DescriptorInput {
  joliet: boolean;
  volumeId: string;
  applicationId: string;
  totalSectors: number;
  pathTableSize: number;
  lPathTable: number;
  mPathTable: number;
  root: Uint8Array;
  date: Date;
}

function volumeDescriptor(d: DescriptorInput): Uint8Array {
  const b = Buffer.alloc(SECTOR);
  b[0] = d.joliet ? 2 : 1;
  b.write("CD001", 1, "latin1");
  b[6] = 1;
  b.set(field("LINUX", 32, d.joliet), 8);
  b.set(field(d.volumeId, 32, d.joliet), 40);
  b.set(both32(d.totalSectors), 80);
  if (d.joliet) b.write("%/E", 88, "latin1"); // UCS-2 level 3
  b.set(both16(1), 120);
  b.set(both16(1), 124);
  b.set(both16(SECTOR), 128);
  b.set(both32(d.pathTableSize), 132);
  b.writeUInt32LE(d.lPathTable, 140);
  b.writeUInt32BE(d.mPathTable, 148);
  b.set(d.root, 156);
  for (const [offset, width] of [
    [190, 128],
    [318, 128],
    [446, 128],
  ] as const)
    b.set(field("", width, d.joliet), offset);
  b.set(field(d.applicationId, 128, d.joliet), 574);
  for (const offset of [702, 739, 776]) b.set(field("", 37, d.joliet), offset);
  b.set(volumeDate(d.date), 813);
  b.set(volumeDate(d.date), 830);
  b.set(volumeDate(undefined), 847);
  b.set(volumeDate(undefined), 864);
  b[881] = 1;
  return b;
}

function terminator(): Uint8Array {
  const b = Buffer.alloc(SECTOR);
  b[0] = 255;
  b.write("CD001", 1, "latin1");
  b[6] = 1;
  return b;
}

// ---------------------------------------------------------------------------------------------------------

/** Builds the whole image in memory. Meant for small volumes (seeds of a few KiB to MiB). */
export function buildIso(options: IsoOptions): Buffer {
  if (options.volumeId.length === 0 || options.volumeId.length > 16)
    throw new IsoError(
      `volume id "${options.volumeId}" must be 1 to 16 characters (Joliet keeps 16 in UCS-2)`,
    );
  const date = options.date ?? new Date();
  const applicationId = options.applicationId ?? "OSIMG";
  const root = buildTree(options.files);
  const primaryDirs = directoriesInOrder(root, false);
  const jolietDirs = directoriesInOrder(root, true);
  primaryDirs.forEach((dir, i) => {
    dir.number.primary = i + 1;
  });
  jolietDirs.forEach((dir, i) => {
    dir.number.joliet = i + 1;
  });
  const ctxPrimary: TreeContext = {
    joliet: false,
    date,
    continuationSector: 19,
    continuationLength: rrExtensionReference().length,
  };
  const ctxJoliet: TreeContext = { ...ctxPrimary, joliet: true };

  // Sizes first: a directory's size depends only on its records, not on where anything is.
  for (const dir of primaryDirs) dir.size.primary = directoryExtent(dir, ctxPrimary).length;
  for (const dir of jolietDirs) dir.size.joliet = directoryExtent(dir, ctxJoliet).length;
  // Path table sizes do not depend on extents either.
  const primaryTableSize = pathTable(primaryDirs, false, false).length;
  const jolietTableSize = pathTable(jolietDirs, true, false).length;

  let next = 20;
  const take = (bytes: number) => {
    const at = next;
    next += Math.max(1, sectorsFor(bytes));
    return at;
  };
  const primaryL = take(primaryTableSize);
  const primaryM = take(primaryTableSize);
  const jolietL = take(jolietTableSize);
  const jolietM = take(jolietTableSize);
  for (const dir of primaryDirs) dir.extent.primary = take(dir.size.primary);
  for (const dir of jolietDirs) dir.extent.joliet = take(dir.size.joliet);
  const files: FileNode[] = [];
  const collect = (dir: DirNode) => {
    for (const child of sortedChildren(dir, false)) {
      if (child.kind === "file") files.push(child);
      else collect(child);
    }
  };
  collect(root);
  for (const file of files) if (file.data.length > 0) file.extent = take(file.data.length);
  const totalSectors = next;

  const image = Buffer.alloc(totalSectors * SECTOR);
  const put = (sector: number, bytes: Uint8Array) => image.set(bytes, sector * SECTOR);

  put(primaryL, pathTable(primaryDirs, false, false));
  put(primaryM, pathTable(primaryDirs, false, true));
  put(jolietL, pathTable(jolietDirs, true, false));
  put(jolietM, pathTable(jolietDirs, true, true));
  for (const dir of primaryDirs) put(dir.extent.primary, directoryExtent(dir, ctxPrimary));
  for (const dir of jolietDirs) put(dir.extent.joliet, directoryExtent(dir, ctxJoliet));
  for (const file of files) if (file.data.length > 0) put(file.extent, file.data);
  put(19, rrExtensionReference());

  const rootRecord = (joliet: boolean) =>
    directoryRecord({
      extent: joliet ? root.extent.joliet : root.extent.primary,
      size: joliet ? root.size.joliet : root.size.primary,
      directory: true,
      identifier: Uint8Array.from([0]),
      date,
    });
  const common = { volumeId: options.volumeId, applicationId, totalSectors, date };
  put(
    16,
    volumeDescriptor({
      ...common,
      joliet: false,
      pathTableSize: primaryTableSize,
      lPathTable: primaryL,
      mPathTable: primaryM,
      root: rootRecord(false),
    }),
  );
  put(
    17,
    volumeDescriptor({
      ...common,
      joliet: true,
      pathTableSize: jolietTableSize,
      lPathTable: jolietL,
      mPathTable: jolietM,
      root: rootRecord(true),
    }),
  );
  put(18, terminator());
  return image;
}
