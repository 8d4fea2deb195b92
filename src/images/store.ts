// The local image store: content-addressed, in the data directory. A pull probes the image first (and
// refuses an unsafe one before downloading it), streams it to a partial file while hashing it (sha256 and
// sha512 in the same pass) and decompressing it, resumes an interrupted download with a Range request,
// verifies the digests and inspects the result before it becomes visible, and then publishes it with a
// rename: an image in the store is always complete, verified as far as a checksum exists, and safe.
//
//   <root>/sha256/<hex>        the image (read-only), named by the sha256 of its (decompressed) bytes
//   <root>/sha256/<hex>.json   its record (StoredImage)
//   <root>/partial/<key>.*     downloads in progress: .part (the bytes as downloaded), .json (what they
//                              are, to resume), .out (decompressed output), .lock (the pulling process)
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { writeFileAtomic } from "../util/atomic-write.ts";
import {
  type ChecksumResult,
  compareDigest,
  Digests,
  type ExpectedDigest,
  pinnedDigest,
} from "./checksums.ts";
import { createDecompressor } from "./decompress.ts";
import { FetchPolicy } from "./fetch-policy.ts";
import type { Compression, DiskFormat } from "./formats/types.ts";
import { expectStatus, FetchError, headerString, httpRequest, parseContentRange } from "./http.ts";
import { type Declared, judge, type Verdict, verdictSummary } from "./policy.ts";
import { inspectSource, isUrl, type ProbeReport, probe } from "./probe.ts";
import { FileSource } from "./sources.ts";

export interface StoredImage {
  /** sha256 of the stored image: its name in the store. */
  sha256: string;
  sha512: string;
  /** The URL (or path) it was pulled from. */
  sourceUrl: string;
  format: DiskFormat;
  virtualSize: number;
  /** Bytes of the stored (decompressed) image. */
  size: number;
  fetchedAt: string;
  /** The compression it was downloaded in, when it was. */
  compression?: Compression;
  /** What was downloaded (differs from the stored image when compressed). */
  download: { size: number; sha256: string; sha512: string; etag?: string; lastModified?: string };
  checksum: ChecksumResult;
  /** The catalog entry it was pulled for, if any. */
  catalogEntry?: string;
}

export type PullPhase = "probe" | "waiting" | "download" | "verify" | "publish" | "done";

export interface PullProgress {
  phase: PullPhase;
  /** Bytes downloaded so far, counting those of an interrupted earlier attempt. */
  received: number;
  total?: number;
  /** Bytes reused from an interrupted earlier attempt. */
  resumedFrom?: number;
  /** Decompressed bytes written, for a compressed image. */
  written?: number;
}

export interface PullOptions {
  onProgress?: (progress: PullProgress) => void;
  /** OS_IMAGE_SHA256 of the catalog entry. */
  pinnedSha256?: string;
  declared?: Declared;
  catalogEntry?: string;
  signal?: AbortSignal;
  /** Refuse an image whose checksum cannot be verified (default: pull it and record "unverified"). */
  requireChecksum?: boolean;
}

export type PullErrorCode =
  | "unreachable"
  | "not_inspectable"
  | "unsafe"
  | "checksum_mismatch"
  | "unverified"
  | "interrupted"
  | "too_large"
  | "changed";

export class PullError extends Error {
  readonly code: PullErrorCode;
  readonly verdict: Verdict | undefined;
  readonly checksum: ChecksumResult | undefined;
  constructor(
    code: PullErrorCode,
    message: string,
    extra: { verdict?: Verdict; checksum?: ChecksumResult } = {},
  ) {
    super(message);
    this.code = code;
    this.verdict = extra.verdict;
    this.checksum = extra.checksum;
  }
}

interface PartialMeta {
  source: string;
  etag?: string;
  lastModified?: string;
  size?: number;
  compression?: Compression;
}

const HEX64 = /^[0-9a-f]{64}$/;
const PROGRESS_EVERY_MS = 100;

export interface ImageStoreOptions {
  /** The store's directory (usually <data dir>/images). */
  root: string;
  /** What uses a stored image (VM disks made on it, as "namespace/name"): such an image is not removed. */
  usersOf?: (sha256: string) => string[] | Promise<string[]>;
  /** The fetch policy of pulls: FetchPolicy.open() for the CLI (default), FetchPolicy.server() on the server. */
  policy?: FetchPolicy;
  timeoutMs?: number;
}

/** A removal refused because VMs' disks are made on the image. */
export class ImageInUse extends Error {
  override name = "ImageInUse";
  readonly users: string[];
  constructor(sha256: string, users: string[]) {
    super(
      `image ${sha256.slice(0, 12)} is the base of the disk of ${users.length === 1 ? "VM" : "VMs"} ${users.join(", ")}`,
    );
    this.users = users;
  }
}

export class ImageStore {
  readonly root: string;
  readonly policy: FetchPolicy;
  readonly #timeoutMs: number;
  readonly #usersOf: ImageStoreOptions["usersOf"];
  readonly #inflight = new Map<
    string,
    { promise: Promise<StoredImage>; listeners: Set<(p: PullProgress) => void> }
  >();

  constructor(options: ImageStoreOptions) {
    this.root = resolve(options.root);
    this.policy = options.policy ?? FetchPolicy.open();
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#usersOf = options.usersOf;
  }

  static forDataDir(dataDir: string, options: Omit<ImageStoreOptions, "root"> = {}): ImageStore {
    return new ImageStore({ ...options, root: join(dataDir, "images") });
  }

  get #blobs(): string {
    return join(this.root, "sha256");
  }
  get #partial(): string {
    return join(this.root, "partial");
  }

  /** The image file of a stored image (full sha256). */
  pathOf(sha256: string): string {
    const hex = sha256.replace(/^sha256:/, "");
    if (!HEX64.test(hex)) throw new Error(`"${sha256}" is not a sha256 digest`);
    return join(this.#blobs, hex);
  }

  async list(): Promise<StoredImage[]> {
    let names: string[];
    try {
      names = await readdir(this.#blobs);
    } catch {
      return [];
    }
    const out: StoredImage[] = [];
    for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
      const record = await this.#readRecord(name.slice(0, -5));
      if (record) out.push(record);
    }
    return out.sort((a, b) => b.fetchedAt.localeCompare(a.fetchedAt));
  }

  async #readRecord(sha256: string): Promise<StoredImage | undefined> {
    try {
      const record = JSON.parse(await readFile(join(this.#blobs, `${sha256}.json`), "utf8")) as StoredImage;
      await stat(join(this.#blobs, sha256));
      return record;
    } catch {
      return undefined;
    }
  }

  /** A stored image by its sha256, a unique prefix of it (6+ digits), or "sha256:<hex>". */
  async get(id: string): Promise<StoredImage | undefined> {
    const hex = id.replace(/^sha256:/, "").toLowerCase();
    if (HEX64.test(hex)) return this.#readRecord(hex);
    if (!/^[0-9a-f]{6,63}$/.test(hex)) return undefined;
    const matches = (await this.list()).filter((r) => r.sha256.startsWith(hex));
    if (matches.length > 1)
      throw new Error(`"${id}" matches ${matches.length} stored images; give more digits`);
    return matches[0];
  }

  /** The image last pulled from this URL or path. */
  async findBySource(source: string): Promise<StoredImage | undefined> {
    const key = normalizeSource(source);
    return (await this.list()).find((r) => r.sourceUrl === key);
  }

  /** Removes a stored image. Returns its record, or undefined when there was none. */
  /** Removes an image; refused (ImageInUse) while VMs' disks are made on it. */
  async remove(id: string): Promise<StoredImage | undefined> {
    const record = await this.get(id);
    if (!record) return undefined;
    const users = (await this.#usersOf?.(record.sha256)) ?? [];
    if (users.length > 0) throw new ImageInUse(record.sha256, users);
    await rm(join(this.#blobs, `${record.sha256}.json`), { force: true });
    await rm(join(this.#blobs, record.sha256), { force: true });
    return record;
  }

  /**
   * Pulls an image (an http(s) URL or a local path) into the store. Two pulls of the same source at once
   * share one download (in this process, and across processes through a lock file).
   */
  pull(source: string, options: PullOptions = {}): Promise<StoredImage> {
    const key = sourceKey(source);
    const running = this.#inflight.get(key);
    if (running) {
      if (options.onProgress) running.listeners.add(options.onProgress);
      return running.promise;
    }
    const listeners = new Set<(p: PullProgress) => void>();
    if (options.onProgress) listeners.add(options.onProgress);
    const emit = (p: PullProgress) => {
      for (const l of listeners) l(p);
    };
    const promise = this.#pull(normalizeSource(source), key, options, emit).finally(() =>
      this.#inflight.delete(key),
    );
    this.#inflight.set(key, { promise, listeners });
    return promise;
  }

  async #pull(
    source: string,
    key: string,
    options: PullOptions,
    emit: (p: PullProgress) => void,
  ): Promise<StoredImage> {
    await mkdir(this.#blobs, { recursive: true });
    await mkdir(this.#partial, { recursive: true });
    emit({ phase: "probe", received: 0 });
    const release = await this.#lock(key, options.signal, () => emit({ phase: "waiting", received: 0 }));
    try {
      const pinned = pinnedDigest(options.pinnedSha256);
      if (options.pinnedSha256 && !pinned)
        throw new PullError("unverified", `OS_IMAGE_SHA256 "${options.pinnedSha256}" is not 64 hex digits`);
      const report = await probe(source, {
        policy: this.policy,
        ...(options.declared ? { declared: options.declared } : {}),
        ...(pinned ? { pinned } : {}),
        hash: false,
        timeoutMs: this.#timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (!report.reachable) throw new PullError("unreachable", report.error ?? "unreachable");
      if (!report.inspection || !report.safety)
        throw new PullError("not_inspectable", report.error ?? "the image could not be inspected");
      if (!report.safety.safe)
        throw new PullError("unsafe", `refused before download: ${verdictSummary(report.safety)}`, {
          verdict: report.safety,
        });
      const expected: ExpectedDigest | undefined =
        pinned ??
        (report.checksum.expected && report.checksum.algorithm && report.checksum.source
          ? {
              algorithm: report.checksum.algorithm,
              digest: report.checksum.expected,
              source: report.checksum.source,
            }
          : undefined);
      if (!expected && options.requireChecksum)
        throw new PullError(
          "unverified",
          `refused: ${report.checksum.reason ?? "no checksum to verify against"}`,
          {
            checksum: report.checksum,
          },
        );
      const existing = await this.findBySource(source);
      const mtime = report.kind === "file" ? (await stat(source)).mtime.toISOString() : undefined;
      if (existing && sameContent(existing, report, expected, mtime)) {
        emit({ phase: "done", received: existing.download.size, total: existing.download.size });
        return existing;
      }
      return await this.#download(source, key, report, expected, options, emit);
    } finally {
      await release();
    }
  }

  /** A lock file per source, so that another process pulling the same image is waited for, not raced. */
  async #lock(
    key: string,
    signal: AbortSignal | undefined,
    waiting: () => void,
  ): Promise<() => Promise<void>> {
    const path = join(this.#partial, `${key}.lock`);
    let told = false;
    for (;;) {
      try {
        const handle = await open(path, "wx");
        await handle.writeFile(JSON.stringify({ pid: process.pid, at: new Date().toISOString() }));
        await handle.close();
        return () => rm(path, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      let pid = 0;
      try {
        pid = Number(JSON.parse(await readFile(path, "utf8")).pid);
      } catch {
        // Being written right now, or garbage: look again shortly.
      }
      if (pid > 0 && (pid === process.pid || !alive(pid))) {
        await rm(path, { force: true });
        continue;
      }
      if (!told) {
        waiting();
        told = true;
      }
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async #download(
    source: string,
    key: string,
    report: ProbeReport,
    expected: ExpectedDigest | undefined,
    options: PullOptions,
    emit: (p: PullProgress) => void,
  ): Promise<StoredImage> {
    const partPath = join(this.#partial, `${key}.part`);
    const metaPath = join(this.#partial, `${key}.json`);
    const outPath = join(this.#partial, `${key}.out`);
    const compression = report.inspection?.compression;
    const total = report.size;
    if (total !== undefined && total > this.policy.maxBytes)
      throw new PullError(
        "too_large",
        `the image is ${total} bytes, more than the limit of ${this.policy.maxBytes}`,
      );
    const meta: PartialMeta = {
      source,
      ...(report.http?.etag ? { etag: report.http.etag } : {}),
      ...(report.http?.lastModified ? { lastModified: report.http.lastModified } : {}),
      ...(total !== undefined ? { size: total } : {}),
      ...(compression ? { compression } : {}),
    };
    if (report.kind === "file") {
      const info = await stat(source);
      meta.lastModified = info.mtime.toISOString();
    }

    // Resume only what the same remote file started: same validators, and a server that does ranges.
    let offset = 0;
    const previous = await readJson<PartialMeta>(metaPath);
    const have = (await stat(partPath).catch(() => undefined))?.size ?? 0;
    const canRange = report.kind === "file" || report.http?.rangeSupported === true;
    if (
      previous &&
      have > 0 &&
      canRange &&
      previous.source === meta.source &&
      previous.etag === meta.etag &&
      previous.lastModified === meta.lastModified &&
      previous.size === meta.size &&
      (total === undefined || have < total)
    )
      offset = have;
    else {
      await rm(partPath, { force: true });
      await writeFileAtomic(metaPath, JSON.stringify(meta));
    }

    // Open the rest of the image first: a server that answers 200 to a Range request starts over.
    let body: Readable;
    if (report.kind === "file") {
      body = createReadStream(source, { start: offset, highWaterMark: 1 << 20 });
    } else {
      const validator = meta.etag ?? meta.lastModified;
      const res = await httpRequest(source, {
        policy: this.policy,
        timeoutMs: this.#timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
        headers:
          offset > 0 ? { range: `bytes=${offset}-`, ...(validator ? { "if-range": validator } : {}) } : {},
      }).catch((error: Error) => {
        throw new PullError(
          error instanceof FetchError && error.kind === "refused" ? "unreachable" : "interrupted",
          error.message,
        );
      });
      if (offset > 0 && res.status === 206) {
        const range = parseContentRange(headerString(res.headers, "content-range"));
        if (range?.start !== offset) {
          res.body.destroy();
          throw new PullError(
            "changed",
            `the server resumed at ${range?.start ?? "?"} instead of ${offset}; pull again`,
          );
        }
      } else {
        expectStatus(res, 200);
        if (offset > 0) {
          offset = 0;
          await rm(partPath, { force: true });
        }
      }
      body = res.body;
    }

    const downloaded = new Digests();
    const image = compression ? new Digests() : downloaded;
    const part = createWriteStream(partPath, { flags: offset > 0 ? "a" : "w", highWaterMark: 1 << 20 });
    let decompressor: Writable | undefined;
    let out: WriteStream | undefined;
    let decompressed: Promise<void> = Promise.resolve();
    if (compression) {
      const d = createDecompressor(compression);
      out = createWriteStream(outPath, { flags: "w", highWaterMark: 1 << 20 });
      const o = out;
      decompressed = (async () => {
        for await (const chunk of d as AsyncIterable<Buffer>) {
          image.update(chunk);
          if (!o.write(chunk)) await once(o, "drain");
        }
        o.end();
        await once(o, "finish");
      })();
      decompressed.catch(() => undefined);
      decompressor = d;
    }
    const feed = async (chunk: Buffer, toPart: boolean) => {
      downloaded.update(chunk);
      const waits: Promise<unknown>[] = [];
      if (toPart && !part.write(chunk)) waits.push(once(part, "drain"));
      if (decompressor && !decompressor.write(chunk))
        waits.push(Promise.race([once(decompressor, "drain"), decompressed]));
      if (waits.length > 0) await Promise.all(waits);
    };

    let lastEmit = 0;
    const progress = (phase: PullPhase, force = false) => {
      const now = Date.now();
      if (!force && now - lastEmit < PROGRESS_EVERY_MS) return;
      lastEmit = now;
      emit({
        phase,
        received: downloaded.bytes,
        ...(total !== undefined ? { total } : {}),
        ...(offset > 0 ? { resumedFrom: offset } : {}),
        ...(compression ? { written: image.bytes } : {}),
      });
    };
    const discard = async () => {
      part.destroy();
      out?.destroy();
      await rm(partPath, { force: true });
      await rm(metaPath, { force: true });
      await rm(outPath, { force: true });
    };

    try {
      // The bytes an earlier attempt kept are hashed (and decompressed) again from disk.
      if (offset > 0) {
        for await (const chunk of createReadStream(partPath, {
          end: offset - 1,
          highWaterMark: 1 << 20,
        }) as AsyncIterable<Buffer>)
          await feed(chunk, false);
      }
      progress("download", true);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        await feed(chunk, true);
        if (downloaded.bytes > this.policy.maxBytes) {
          body.destroy();
          await discard();
          throw new PullError("too_large", `the download passed the limit of ${this.policy.maxBytes} bytes`);
        }
        progress("download");
      }
      if (total !== undefined && downloaded.bytes !== total)
        throw new Error(`the connection ended after ${downloaded.bytes} of ${total} bytes`);
      part.end();
      await once(part, "finish");
      decompressor?.end();
      await decompressed;
    } catch (error) {
      if (error instanceof PullError) throw error;
      // Keep what arrived for the next attempt; the decompressed output is redone from it then.
      body.destroy();
      part.end();
      await once(part, "close").catch(() => undefined);
      decompressor?.destroy();
      out?.destroy();
      await rm(outPath, { force: true });
      const kept = (await stat(partPath).catch(() => undefined))?.size ?? 0;
      if (
        compression &&
        /incorrect header|invalid|corrupt|unexpected end|data error/i.test((error as Error).message) &&
        kept === total
      ) {
        await discard();
        throw new PullError(
          "not_inspectable",
          `the ${compression} stream is corrupt: ${(error as Error).message}`,
        );
      }
      throw new PullError(
        "interrupted",
        `download interrupted after ${kept}${total !== undefined ? ` of ${total}` : ""} bytes (${(error as Error).message}); pull again to resume`,
      );
    }
    progress("verify", true);

    const downloadDigests = downloaded.digest();
    const imageDigests = compression ? image.digest() : downloadDigests;
    const checksum = compareDigest(
      expected,
      downloadDigests,
      report.checksum.reason ?? "no checksum was found",
    );
    if (checksum.status === "mismatch") {
      await discard();
      throw new PullError("checksum_mismatch", `checksum mismatch: ${checksum.reason}; nothing was stored`, {
        checksum,
      });
    }
    const finalPath = compression ? outPath : partPath;
    // What is stored is what was inspected: inspect the finished file itself (all of it is at hand now).
    const file = await FileSource.open(finalPath);
    let inspection: Awaited<ReturnType<typeof inspectSource>>;
    try {
      inspection = await inspectSource(file);
    } finally {
      await file.close();
    }
    const innerDeclared = options.declared?.format ?? report.declared?.format;
    const verdict = judge(
      inspection,
      innerDeclared ? { format: innerDeclared, by: report.declared?.by ?? "the declaration" } : undefined,
    );
    if (!verdict.safe || inspection.format !== report.format) {
      await discard();
      throw new PullError(
        "unsafe",
        verdict.safe
          ? `the downloaded image is ${inspection.format}, but its start looked like ${report.format}; nothing was stored`
          : `the downloaded image is unsafe: ${verdictSummary(verdict)}; nothing was stored`,
        { verdict },
      );
    }
    progress("publish", true);

    const sha256 = imageDigests.sha256;
    const blob = join(this.#blobs, sha256);
    const handle = await open(finalPath, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(finalPath, 0o444);
    if (await stat(blob).catch(() => undefined)) await rm(finalPath, { force: true });
    else await rename(finalPath, blob);
    const record: StoredImage = {
      sha256,
      sha512: imageDigests.sha512 as string,
      sourceUrl: source,
      format: inspection.format as DiskFormat,
      virtualSize: inspection.virtualSize ?? image.bytes,
      size: image.bytes,
      fetchedAt: new Date().toISOString(),
      ...(compression ? { compression } : {}),
      download: {
        size: downloaded.bytes,
        sha256: downloadDigests.sha256,
        sha512: downloadDigests.sha512 as string,
        ...(meta.etag ? { etag: meta.etag } : {}),
        ...(meta.lastModified ? { lastModified: meta.lastModified } : {}),
      },
      checksum,
      ...(options.catalogEntry ? { catalogEntry: options.catalogEntry } : {}),
    };
    // Another source with the same content keeps its own record only if it is this one's: last pull wins.
    await writeFileAtomic(join(this.#blobs, `${sha256}.json`), `${JSON.stringify(record, null, 2)}\n`);
    await rm(partPath, { force: true });
    await rm(outPath, { force: true });
    await rm(metaPath, { force: true });
    emit({ phase: "done", received: downloaded.bytes, ...(total !== undefined ? { total } : {}) });
    return record;
  }
}

/** A URL as given; a local path made absolute. */
export function normalizeSource(source: string): string {
  return isUrl(source) ? source : resolve(source);
}

function sourceKey(source: string): string {
  return createHash("sha256").update(normalizeSource(source)).digest("hex").slice(0, 32);
}

/** Whether a stored image is what the source serves now: the pinned digest, else the HTTP validators. */
function sameContent(
  stored: StoredImage,
  report: ProbeReport,
  expected: ExpectedDigest | undefined,
  fileMtime: string | undefined,
): boolean {
  if (expected) return stored.download[expected.algorithm] === expected.digest;
  if (report.size !== undefined && report.size !== stored.download.size) return false;
  if (fileMtime) return fileMtime === stored.download.lastModified;
  if (report.http?.etag) return report.http.etag === stored.download.etag;
  if (report.http?.lastModified) return report.http.lastModified === stored.download.lastModified;
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}
