// Where an image's bytes come from while it is inspected: a local file, an HTTP server (Range requests,
// or a streamed prefix when the server ignores Range), or the decompressed prefix of a wrapped image.
// Each counts the bytes it read, so that the probe can say what it cost.

import { createReadStream } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ByteRange } from "./bytes.ts";
import { createDecompressor } from "./decompress.ts";
import type { Compression } from "./formats/types.ts";
import {
  expectStatus,
  FetchError,
  type HttpOptions,
  type HttpResponse,
  headerString,
  httpRequest,
  parseContentRange,
} from "./http.ts";

export interface ByteSource {
  /** What the source is called: a URL or a path (its name may declare a format). */
  readonly name: string;
  readonly size: number | undefined;
  /** Bytes taken from the file, the network or the decompressor so far. */
  readonly bytesRead: number;
  /** Why bytes out of reach cannot be read (shown in the inspection's "incomplete"). */
  readonly limitation: string;
  /** The bytes of the range, or undefined when this source cannot reach them. */
  read(range: ByteRange): Promise<Uint8Array | undefined>;
  /** The whole content as a stream, from the start. */
  stream(): Promise<Readable>;
  close(): Promise<void>;
}

export class FileSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  readonly limitation = "";
  bytesRead = 0;
  #handle: FileHandle;

  private constructor(path: string, handle: FileHandle, size: number) {
    this.name = path;
    this.#handle = handle;
    this.size = size;
  }

  static async open(path: string): Promise<FileSource> {
    const info = await stat(path);
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
    return new FileSource(path, await open(path, "r"), info.size);
  }

  async read(range: ByteRange): Promise<Uint8Array> {
    const buffer = Buffer.alloc(range.length);
    const { bytesRead } = await this.#handle.read(buffer, 0, range.length, range.offset);
    this.bytesRead += bytesRead;
    return buffer.subarray(0, bytesRead);
  }

  async stream(): Promise<Readable> {
    const s = createReadStream(this.name, { highWaterMark: 1 << 20 });
    s.on("data", (c) => {
      this.bytesRead += c.length;
    });
    return s;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}

/**
 * The start of a stream, kept in memory and extended on demand up to a cap. Used when an HTTP server
 * ignores Range (the prefix is all we can look at without downloading the image) and for the
 * decompressed start of a wrapped image.
 */
export class PrefixReader {
  readonly cap: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #ended = false;
  #error: Error | undefined;
  #stream: Readable;
  #waiters: (() => void)[] = [];

  readonly #onData = (chunk: Buffer) => {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length >= this.cap) this.#stream.pause();
    this.#wake();
  };
  readonly #onEnd = () => {
    this.#ended = true;
    this.#wake();
  };
  readonly #onError = (error: Error) => {
    this.#error = error;
    this.#wake();
  };

  constructor(stream: Readable, cap: number) {
    this.cap = cap;
    this.#stream = stream;
    stream.pause();
    stream.on("data", this.#onData);
    stream.on("end", this.#onEnd);
    stream.on("close", this.#onEnd);
    stream.on("error", this.#onError);
  }

  /** Stops buffering and hands back the underlying stream, paused where the prefix ends. */
  detach(): Readable {
    this.#stream.pause();
    this.#stream.off("data", this.#onData);
    this.#stream.off("end", this.#onEnd);
    this.#stream.off("close", this.#onEnd);
    this.#stream.off("error", this.#onError);
    return this.#stream;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  get length(): number {
    return this.#length;
  }
  /** True once the whole stream is held (its total length is then known). */
  get complete(): boolean {
    return this.#ended && !this.#error;
  }

  /** Reads until `n` bytes are held, the stream ends, or the cap is reached. */
  async ensure(n: number): Promise<void> {
    while (this.#length < Math.min(n, this.cap) && !this.#ended && !this.#error) {
      const woken = new Promise<void>((resolve) => this.#waiters.push(resolve));
      this.#stream.resume();
      await woken;
      if (this.#length >= n) this.#stream.pause();
    }
    this.#stream.pause();
    if (this.#error && this.#length < n) throw this.#error;
  }

  slice(offset: number, length: number): Uint8Array {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    const all = this.#chunks[0] ?? Buffer.alloc(0);
    return all.subarray(offset, Math.min(all.length, offset + length));
  }

  close(): void {
    this.#stream.destroy();
  }
}

export interface HttpSourceMeta {
  url: string;
  finalUrl: string;
  redirects: string[];
  status: number;
  contentType?: string;
  contentLength?: number;
  etag?: string;
  lastModified?: string;
  rangeSupported: boolean;
}

export class HttpSource implements ByteSource {
  readonly name: string;
  readonly meta: HttpSourceMeta;
  readonly size: number | undefined;
  bytesRead = 0;
  #options: HttpOptions;
  #prefix: PrefixReader | undefined;
  #head: Uint8Array | undefined;

  private constructor(name: string, meta: HttpSourceMeta, options: HttpOptions) {
    this.name = name;
    this.meta = meta;
    this.size = meta.contentLength;
    this.#options = options;
  }

  get limitation(): string {
    return this.meta.rangeSupported
      ? ""
      : "the server does not support Range requests and the streamed prefix is capped";
  }

  #count(res: HttpResponse): void {
    res.body.on("data", (c: Buffer) => {
      this.bytesRead += c.length;
    });
  }

  /**
   * Opens the URL with a Range request for its first `headBytes`. A 206 answer means later reads are Range
   * requests too; a 200 answer (Range unsupported) keeps the body open as a prefix, capped at prefixCap.
   */
  static async open(
    url: string,
    options: HttpOptions & { headBytes: number; prefixCap?: number },
  ): Promise<HttpSource> {
    const res = await httpRequest(url, {
      ...options,
      headers: { ...options.headers, range: `bytes=0-${options.headBytes - 1}` },
    });
    if (res.status === 416) {
      // Range not satisfiable for bytes=0-…: an empty file.
      res.body.resume();
      return new HttpSource(url, HttpSource.#meta(url, res, true, 0), options);
    }
    expectStatus(res, 200, 206);
    const ranged = res.status === 206;
    const total = ranged ? parseContentRange(headerString(res.headers, "content-range"))?.total : undefined;
    const length = ranged ? total : numberHeader(res, "content-length");
    const source = new HttpSource(url, HttpSource.#meta(url, res, ranged, length), options);
    source.#count(res);
    if (ranged) {
      const chunks: Buffer[] = [];
      for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
      source.#head = Buffer.concat(chunks);
    } else {
      source.#prefix = new PrefixReader(res.body, options.prefixCap ?? 8 * 2 ** 20);
    }
    return source;
  }

  static #meta(
    url: string,
    res: HttpResponse,
    rangeSupported: boolean,
    size: number | undefined,
  ): HttpSourceMeta {
    const contentType = headerString(res.headers, "content-type");
    const etag = headerString(res.headers, "etag");
    const lastModified = headerString(res.headers, "last-modified");
    return {
      url,
      finalUrl: res.url,
      redirects: res.redirects,
      status: res.status,
      rangeSupported,
      ...(contentType ? { contentType } : {}),
      ...(size !== undefined ? { contentLength: size } : {}),
      ...(etag ? { etag } : {}),
      ...(lastModified ? { lastModified } : {}),
    };
  }

  async read(range: ByteRange): Promise<Uint8Array | undefined> {
    if (this.#head && range.offset + range.length <= this.#head.length)
      return this.#head.subarray(range.offset, range.offset + range.length);
    if (this.#prefix) {
      if (range.offset + range.length > this.#prefix.cap) return undefined;
      await this.#prefix.ensure(range.offset + range.length);
      return this.#prefix.slice(range.offset, range.length);
    }
    const res = await httpRequest(this.meta.finalUrl, {
      ...this.#options,
      headers: {
        ...this.#options.headers,
        range: `bytes=${range.offset}-${range.offset + range.length - 1}`,
        ...(this.meta.etag ? { "if-range": this.meta.etag } : {}),
      },
    });
    if (res.status !== 206) {
      res.body.destroy();
      if (res.status === 200) return undefined;
      expectStatus(res, 206);
    }
    this.#count(res);
    const chunks: Buffer[] = [];
    for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  async stream(): Promise<Readable> {
    // Without Range, the open body goes on where the prefix stops: the prefix, then the rest of it.
    if (this.#prefix) return prefixThenRest(this.#prefix);
    const res = await httpRequest(this.meta.finalUrl, this.#options);
    expectStatus(res, 200);
    this.#count(res);
    return res.body;
  }

  async close(): Promise<void> {
    this.#prefix?.close();
  }
}

function numberHeader(res: HttpResponse, name: string): number | undefined {
  const v = headerString(res.headers, name);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The start of a compressed image, decompressed on demand (capped): enough to inspect what is inside. */
export class DecompressedSource implements ByteSource {
  readonly name: string;
  readonly limitation: string;
  #reader: PrefixReader;
  #compressed: Readable;

  private constructor(name: string, compressed: Readable, kind: Compression, cap: number) {
    this.name = name;
    this.#compressed = compressed;
    const decompressor = createDecompressor(kind);
    compressed.on("error", (e) => decompressor.destroy(e));
    compressed.pipe(decompressor);
    this.#reader = new PrefixReader(decompressor, cap);
    this.limitation = `only the first ${cap / 2 ** 20} MiB of the ${kind} stream are decompressed to inspect it`;
  }

  static async open(outer: ByteSource, kind: Compression, cap = 16 * 2 ** 20): Promise<DecompressedSource> {
    const compressed = await outer.stream();
    return new DecompressedSource(
      outer.name.replace(/\.(gz|gzip|xz|zst|zstd|bz2)$/i, ""),
      compressed,
      kind,
      cap,
    );
  }

  get size(): number | undefined {
    return this.#reader.complete ? this.#reader.length : undefined;
  }
  get bytesRead(): number {
    return this.#reader.length;
  }

  async read(range: ByteRange): Promise<Uint8Array | undefined> {
    if (range.offset + range.length > this.#reader.cap) return undefined;
    await this.#reader.ensure(range.offset + range.length);
    return this.#reader.slice(range.offset, range.length);
  }

  async stream(): Promise<Readable> {
    throw new Error("a decompressed prefix cannot be streamed whole");
  }

  async close(): Promise<void> {
    this.#reader.close();
    this.#compressed.destroy();
  }
}

/** A stream of what a PrefixReader holds, then whatever its underlying stream still gives. */
function prefixThenRest(prefix: PrefixReader): Readable {
  const held = prefix.slice(0, prefix.length);
  const rest = prefix.detach();
  return Readable.from(
    (async function* () {
      yield Buffer.from(held);
      for await (const chunk of rest as AsyncIterable<Buffer>) yield chunk;
    })(),
  );
}

export { FetchError };
