// The bytes an inspection has seen: a sparse map of ranges of one file, filled by whoever can read it (a
// local file, HTTP Range requests, a streamed prefix). Format detectors are pure functions over it: when
// a detector wants bytes the map does not hold, it throws NeedBytes and the caller fetches them and runs
// the detectors again. Bytes the caller could not get (no Range support, past a cap) are "unreadable".

export interface ByteRange {
  offset: number;
  length: number;
}

/** Thrown by a detector that needs bytes not held yet: fetch them and inspect again. */
export class NeedBytes extends Error {
  readonly ranges: ByteRange[];
  constructor(ranges: ByteRange[]) {
    super(`need bytes ${ranges.map((r) => `${r.offset}+${r.length}`).join(", ")}`);
    this.ranges = ranges;
  }
}

/** Thrown when bytes a detector needs cannot be had at all (the source cannot seek there). */
export class UnreadableBytes extends Error {
  readonly range: ByteRange;
  constructor(range: ByteRange, why: string) {
    super(`bytes ${range.offset}..${range.offset + range.length} could not be read: ${why}`);
    this.range = range;
  }
}

export class ByteMap {
  /** The file's size, when the source told it. */
  readonly size: number | undefined;
  #chunks: { offset: number; data: Uint8Array }[] = [];
  #unreadable: { range: ByteRange; why: string }[] = [];

  constructor(size: number | undefined) {
    this.size = size;
  }

  add(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push({ offset, data });
    // Keep them ordered; merging is not needed for the handful of chunks an inspection holds.
    this.#chunks.sort((a, b) => a.offset - b.offset);
  }

  markUnreadable(range: ByteRange, why: string): void {
    this.#unreadable.push({ range, why });
  }

  /** Bytes held in total (what the inspection has read). */
  get held(): number {
    return this.#chunks.reduce((n, c) => n + c.data.length, 0);
  }

  /**
   * The bytes at [offset, offset + length), clipped at the end of the file when its size is known.
   * Throws NeedBytes when they are not held, UnreadableBytes when they cannot be had.
   */
  read(offset: number, length: number): Uint8Array {
    let end = offset + length;
    if (this.size !== undefined) end = Math.min(end, this.size);
    if (end <= offset) return new Uint8Array(0);
    const want = end - offset;
    for (const c of this.#chunks) {
      if (c.offset <= offset && c.offset + c.data.length >= end)
        return c.data.subarray(offset - c.offset, end - c.offset);
    }
    // Assemble from adjacent chunks when they cover the range together.
    const out = new Uint8Array(want);
    let covered = offset;
    for (const c of this.#chunks) {
      if (c.offset > covered) break;
      const cEnd = c.offset + c.data.length;
      if (cEnd <= covered) continue;
      const from = covered - c.offset;
      const to = Math.min(cEnd, end) - c.offset;
      out.set(c.data.subarray(from, to), covered - offset);
      covered = c.offset + to;
      if (covered >= end) return out;
    }
    // A source that ended early (a prefix stream that reached EOF) holds everything there is.
    for (const u of this.#unreadable) {
      if (u.range.offset < end && u.range.offset + u.range.length > covered)
        throw new UnreadableBytes({ offset: covered, length: end - covered }, u.why);
    }
    throw new NeedBytes([{ offset: covered, length: end - covered }]);
  }

  /** Like read, but undefined instead of UnreadableBytes: for optional looks. */
  tryRead(offset: number, length: number): Uint8Array | undefined {
    try {
      return this.read(offset, length);
    } catch (error) {
      if (error instanceof UnreadableBytes) return undefined;
      throw error;
    }
  }
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

export const u16le = (b: Uint8Array, at: number) => view(b).getUint16(at, true);
export const u32le = (b: Uint8Array, at: number) => view(b).getUint32(at, true);
export const u16be = (b: Uint8Array, at: number) => view(b).getUint16(at, false);
export const u32be = (b: Uint8Array, at: number) => view(b).getUint32(at, false);

/** A 64-bit integer as a number; values past 2^53 become Infinity so that range checks reject them. */
export function u64le(b: Uint8Array, at: number): number {
  const v = view(b).getBigUint64(at, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}
export function u64be(b: Uint8Array, at: number): number {
  const v = view(b).getBigUint64(at, false);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}
export const u64beBig = (b: Uint8Array, at: number) => view(b).getBigUint64(at, false);

export function ascii(b: Uint8Array, at = 0, length = b.length - at): string {
  let s = "";
  for (let i = at; i < at + length && i < b.length; i++) s += String.fromCharCode(b[i] as number);
  return s;
}

export function startsWith(b: Uint8Array, magic: readonly number[] | string, at = 0): boolean {
  const bytes = typeof magic === "string" ? [...magic].map((c) => c.charCodeAt(0)) : magic;
  if (b.length < at + bytes.length) return false;
  return bytes.every((x, i) => b[at + i] === x);
}

/** A Microsoft GUID as stored on disk (first three fields little-endian), in its usual text form. */
export function guidLe(b: Uint8Array, at: number): string {
  const hex = (i: number) => (b[at + i] as number).toString(16).padStart(2, "0");
  const order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15];
  return order
    .map((i) => (i < 0 ? "-" : hex(i)))
    .join("")
    .toUpperCase();
}

export function isAllZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}
