// The probe: what an image is, read cheaply. Over HTTP it reads the first 36 KiB and the last 512 bytes
// with Range requests (more only when a format points further), or a streamed prefix from a server that
// ignores Range; a compressed image is decompressed only as far as its inner header. Then the safety
// policy, and the checksum: the one pinned in the catalog or the one published beside the image.
import { ByteMap } from "./bytes.ts";
import {
  type ChecksumResult,
  compareDigest,
  Digests,
  type Discovery,
  discoverLocalChecksum,
  discoverRemoteChecksum,
  type ExpectedDigest,
} from "./checksums.ts";
import { FetchPolicy } from "./fetch-policy.ts";
import { FetchError } from "./http.ts";
import { HEAD_BYTES, type Inspection, initialRanges, inspectBytes } from "./inspect.ts";
import { type Declared, declaredByName, judge, type Verdict } from "./policy.ts";
import {
  type ByteSource,
  DecompressedSource,
  FileSource,
  HttpSource,
  type HttpSourceMeta,
} from "./sources.ts";

const MAX_ROUNDS = 12;

/** Inspects whatever a source holds, fetching the ranges the detectors ask for. */
export async function inspectSource(source: ByteSource): Promise<Inspection> {
  const bytes = new ByteMap(source.size);
  const fill = async (ranges: { offset: number; length: number }[]) => {
    for (const range of ranges) {
      const length =
        source.size === undefined ? range.length : Math.min(range.length, source.size - range.offset);
      if (length <= 0) continue;
      let data: Uint8Array | undefined;
      try {
        data = await source.read({ offset: range.offset, length });
      } catch (error) {
        bytes.markUnreadable(range, (error as Error).message);
        continue;
      }
      if (data === undefined) bytes.markUnreadable(range, source.limitation || "out of reach");
      else {
        bytes.add(range.offset, data);
        // A short read ends the file (a stream whose size was not announced).
        if (data.length < length)
          bytes.markUnreadable(
            { offset: range.offset + data.length, length: length - data.length },
            "past the end of the file",
          );
      }
    }
  };
  await fill(initialRanges(source.size));
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const step = inspectBytes(bytes);
    if (step.done) {
      const inspection = step.inspection;
      if (inspection.compression) inspection.inner = await inspectInner(source, inspection);
      return inspection;
    }
    await fill(step.needs);
  }
  throw new Error(`inspection did not settle after ${MAX_ROUNDS} rounds of reads`);
}

async function inspectInner(source: ByteSource, outer: Inspection): Promise<Inspection | undefined> {
  const kind = outer.compression;
  if (!kind) return undefined;
  let inner: DecompressedSource | undefined;
  try {
    inner = await DecompressedSource.open(source, kind);
    return await inspectSource(inner);
  } catch (error) {
    outer.incomplete.push(`the ${kind} stream could not be decompressed: ${(error as Error).message}`);
    return undefined;
  } finally {
    await inner?.close();
  }
}

export interface ProbeOptions {
  /** Fetch policy: FetchPolicy.open() for the CLI, FetchPolicy.server() on the server. */
  policy?: FetchPolicy;
  /** What the image is declared to be; default: what its file name says. */
  declared?: Declared;
  /** A digest pinned by the catalog (OS_IMAGE_SHA256). */
  pinned?: ExpectedDigest;
  /** Look for SHA256SUMS & co. beside the image when nothing is pinned (default true). */
  discover?: boolean;
  /** Download (or read) the whole image to compute its digests (default: only for local files). */
  hash?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ProbeReport {
  target: string;
  kind: "url" | "file";
  reachable: boolean;
  /** Why it is unreachable or could not be inspected. */
  error?: string;
  http?: HttpSourceMeta;
  declared?: Declared;
  inspection?: Inspection;
  /** The disk format (inside the compression wrapper, if any). */
  format?: string;
  compression?: string;
  virtualSize?: number;
  /** Bytes of the file (compressed size for a wrapper). */
  size?: number;
  safety?: Verdict;
  checksum: ChecksumResult;
  /** Bytes the probe read (from the network for a URL): the cost of classifying the image. */
  bytesRead: number;
  /** Bytes read to compute digests, when hashing was asked for. */
  bytesHashed?: number;
  ms: number;
}

export function isUrl(target: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(target);
}

/** Opens a URL or a local path as a byte source. */
export async function openSource(target: string, options: ProbeOptions = {}): Promise<ByteSource> {
  if (!isUrl(target)) return FileSource.open(target);
  return HttpSource.open(target, {
    policy: options.policy ?? FetchPolicy.open(),
    headBytes: HEAD_BYTES,
    timeoutMs: options.timeoutMs ?? 15_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export async function probe(target: string, options: ProbeOptions = {}): Promise<ProbeReport> {
  const started = Date.now();
  const kind = isUrl(target) ? "url" : "file";
  const declared = options.declared ?? declaredByName(target);
  const base = { target, kind, ...(declared ? { declared } : {}) } as const;
  let source: ByteSource;
  try {
    source = await openSource(target, options);
  } catch (error) {
    const message = error instanceof FetchError || error instanceof Error ? error.message : String(error);
    return {
      ...base,
      reachable: false,
      error: kind === "url" ? `unreachable: ${message}` : message,
      checksum: compareDigest(options.pinned, undefined, "the image could not be read"),
      bytesRead: 0,
      ms: Date.now() - started,
    };
  }
  const http = source instanceof HttpSource ? source.meta : undefined;
  let inspection: Inspection | undefined;
  let error: string | undefined;
  try {
    inspection = await inspectSource(source);
  } catch (e) {
    error = `could not inspect: ${(e as Error).message}`;
  } finally {
    await source.close();
  }
  const bytesRead = source.bytesRead;

  let discovery: Discovery | undefined;
  if (!options.pinned && options.discover !== false) {
    try {
      discovery =
        kind === "url"
          ? await discoverRemoteChecksum(target, {
              policy: options.policy ?? FetchPolicy.open(),
              ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
              ...(http && http.finalUrl !== target ? { also: http.finalUrl } : {}),
            })
          : await discoverLocalChecksum(target);
    } catch (e) {
      discovery = { tried: [`(lookup failed: ${(e as Error).message})`] };
    }
  }
  const expected = options.pinned ?? discovery?.expected;
  let actual: { sha256: string; sha512?: string } | undefined;
  let bytesHashed: number | undefined;
  const hash = options.hash ?? kind === "file";
  if (hash && !error) {
    const digests = new Digests();
    const whole = await openSource(target, options);
    try {
      for await (const chunk of (await whole.stream()) as AsyncIterable<Buffer>) digests.update(chunk);
      actual = digests.digest();
      bytesHashed = digests.bytes;
    } finally {
      await whole.close();
    }
  }
  const why = !expected
    ? `no checksum is pinned (OS_IMAGE_SHA256) and none was found beside the image${discovery ? ` (tried ${discovery.tried.length} places)` : ""}`
    : "the image was not downloaded (the probe reads only its headers); pass --hash, or pull it";
  const checksum = compareDigest(expected, actual, why);

  const disk = inspection?.inner ?? inspection;
  return {
    ...base,
    reachable: true,
    ...(error ? { error } : {}),
    ...(http ? { http } : {}),
    ...(inspection ? { inspection, safety: judge(inspection, declared) } : {}),
    ...(disk ? { format: disk.format } : {}),
    ...(inspection?.compression ? { compression: inspection.compression } : {}),
    ...(disk?.virtualSize !== undefined ? { virtualSize: disk.virtualSize } : {}),
    ...(source.size !== undefined ? { size: source.size } : {}),
    checksum,
    bytesRead,
    ...(bytesHashed !== undefined ? { bytesHashed } : {}),
    ms: Date.now() - started,
  };
}
