// Our own OCI image writer (no container engine exists here): an image layout directory (oci-layout,
// index.json, blobs/sha256/…) holding one image: layers built from host files at chosen paths and owners
// (e.g. a containerDisk's /disk/system.qcow2 owned 107:107) or from an existing tar, a config and a
// manifest. Each layer is written in one pass: the tar stream is hashed (its diff_id), optionally
// compressed (gzip, zstd), hashed again (its digest) and written. Timestamps come from `created`, so the
// same inputs give the same digests.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, link, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip, createZstdCompress, constants as zlibConstants } from "node:zlib";
import { END_OF_ARCHIVE, encodeHeader, padding } from "../build/tar.ts";

export type OciCompression = "none" | "gzip" | "zstd";

export const MEDIA_TYPES = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: {
    none: "application/vnd.oci.image.layer.v1.tar",
    gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
    zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  },
} as const;

export type LayerEntry =
  | { path: string; type: "dir"; mode: number; uid: number; gid: number }
  | { path: string; type: "file"; from: string; mode: number; uid: number; gid: number };

export type LayerSource = { kind: "tar"; path: string } | { kind: "files"; entries: LayerEntry[] };

export interface ImageConfigInput {
  cmd?: string[];
  entrypoint?: string[];
  exposedPorts?: string[];
  labels?: Record<string, string>;
  workingDir?: string;
  user?: string;
}

export interface OciImageInput {
  layout: string;
  /** The tag recorded in index.json (annotation org.opencontainers.image.ref.name). */
  tag: string;
  layers: LayerSource[];
  config: ImageConfigInput;
  compression: OciCompression;
  /** Seconds since the epoch: the image's and every file's time. */
  created: number;
  annotations?: Record<string, string>;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciImageResult {
  manifest: Descriptor;
  config: Descriptor;
  layers: (Descriptor & { diffId: string })[];
}

/** Counts and hashes what passes through. */
class HashingStream extends Transform {
  readonly hash: Hash = createHash("sha256");
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** The tar stream of a "files" layer: headers from encodeHeader, data straight from the files. */
async function* filesTar(entries: readonly LayerEntry[], mtime: number): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    const path = entry.path.replace(/^\/+/, "").replace(/\/+$/, "");
    const base = { path, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime, linkname: "" };
    if (entry.type === "dir") {
      yield encodeHeader({ ...base, type: "dir", size: 0, rawPath: `${path}/` });
      continue;
    }
    const { size } = await stat(entry.from);
    yield encodeHeader({ ...base, type: "file", size, rawPath: path });
    let copied = 0;
    for await (const chunk of createReadStream(entry.from, { highWaterMark: 8 << 20 })) {
      copied += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (copied !== size) throw new Error(`${entry.from} changed size while it was packed`);
    yield padding(size);
  }
  yield END_OF_ARCHIVE;
}

function compressor(compression: OciCompression): Transform | undefined {
  if (compression === "gzip") return createGzip({ level: 6 });
  if (compression === "zstd")
    return createZstdCompress({
      params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 },
    }) as unknown as Transform;
  return undefined;
}

const hex = (hash: Hash) => `sha256:${hash.digest("hex")}`;

export function blobPath(layout: string, digest: string): string {
  return join(layout, "blobs", "sha256", digest.replace(/^sha256:/, ""));
}

async function writeBlob(layout: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(data);
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  await writeFile(blobPath(layout, digest), bytes);
  return { digest, size: bytes.length };
}

/** Writes one layer blob; returns its digest, size and diff_id. */
async function writeLayer(
  layout: string,
  source: LayerSource,
  input: OciImageInput,
  index: number,
): Promise<Descriptor & { diffId: string }> {
  const mediaType = MEDIA_TYPES.layer[input.compression];
  // An uncompressed tar that already exists is its own blob: hashed once, then hard-linked when it can be.
  if (source.kind === "tar" && input.compression === "none") {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of createReadStream(source.path, { highWaterMark: 8 << 20 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const digest = hex(hash);
    const target = blobPath(layout, digest);
    await rm(target, { force: true });
    try {
      await link(source.path, target);
    } catch {
      // Another file system: a copy.
      await copyFile(source.path, target);
    }
    return { mediaType, digest, size, diffId: digest };
  }
  const partial = join(layout, "blobs", "sha256", `.layer-${index}.partial`);
  const uncompressed = new HashingStream();
  const compressed = new HashingStream();
  const file = await open(partial, "w", 0o644);
  try {
    const compress = compressor(input.compression);
    const sourceStream =
      source.kind === "tar"
        ? createReadStream(source.path, { highWaterMark: 8 << 20 })
        : filesTar(source.entries, input.created);
    if (compress) await pipeline(sourceStream, uncompressed, compress, compressed, file.createWriteStream());
    else await pipeline(sourceStream, uncompressed, file.createWriteStream());
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  } finally {
    await file.close().catch(() => {});
  }
  const diffId = hex(uncompressed.hash);
  const digest = input.compression === "none" ? diffId : hex(compressed.hash);
  const size = input.compression === "none" ? uncompressed.bytes : compressed.bytes;
  await rename(partial, blobPath(layout, digest));
  return { mediaType, digest, size, diffId };
}

/** Writes the image layout; index.json names the image by `tag`. */
export async function buildOciImage(
  input: OciImageInput,
  options: { log?: (line: string) => void } = {},
): Promise<OciImageResult> {
  await mkdir(join(input.layout, "blobs", "sha256"), { recursive: true });
  await writeFile(join(input.layout, "oci-layout"), `${JSON.stringify({ imageLayoutVersion: "1.0.0" })}\n`);
  const layers: OciImageResult["layers"] = [];
  for (const [i, source] of input.layers.entries()) {
    layers.push(await writeLayer(input.layout, source, input, i));
    options.log?.(`    layer ${i}: ${layers[i]?.digest} (${layers[i]?.size} bytes)`);
  }
  const created = new Date(input.created * 1000).toISOString();
  const c = input.config;
  const config = {
    created,
    architecture: "amd64",
    os: "linux",
    config: {
      ...(c.user ? { User: c.user } : {}),
      ...(c.exposedPorts ? { ExposedPorts: Object.fromEntries(c.exposedPorts.map((p) => [p, {}])) } : {}),
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      ...(c.entrypoint ? { Entrypoint: c.entrypoint } : {}),
      ...(c.cmd ? { Cmd: c.cmd } : {}),
      ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
      ...(c.labels ? { Labels: c.labels } : {}),
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created, created_by: "osimg build" })),
  };
  const configBlob = await writeBlob(input.layout, JSON.stringify(config));
  const configDescriptor: Descriptor = { mediaType: MEDIA_TYPES.config, ...configBlob };
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: configDescriptor,
    layers: layers.map(({ diffId: _, ...d }) => d),
    annotations: { "org.opencontainers.image.created": created, ...input.annotations },
  };
  const manifestBlob = await writeBlob(input.layout, JSON.stringify(manifest));
  const manifestDescriptor: Descriptor = {
    mediaType: MEDIA_TYPES.manifest,
    ...manifestBlob,
    annotations: { "org.opencontainers.image.ref.name": input.tag },
  };
  await writeFile(
    join(input.layout, "index.json"),
    `${JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: [manifestDescriptor] })}\n`,
  );
  return { manifest: manifestDescriptor, config: configDescriptor, layers };
}

export interface LayoutImage {
  manifest: Descriptor;
  manifestBytes: Buffer;
  blobs: Descriptor[];
}

/** Reads the image tagged `tag` from a layout (the manifest and the blobs it names). */
export async function readLayoutImage(layout: string, tag: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const manifest =
    index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag) ??
    (index.manifests.length === 1 ? index.manifests[0] : undefined);
  if (!manifest) throw new Error(`${layout} has no image tagged "${tag}"`);
  const manifestBytes = await readFile(blobPath(layout, manifest.digest));
  const parsed = JSON.parse(manifestBytes.toString("utf8")) as { config: Descriptor; layers: Descriptor[] };
  return { manifest, manifestBytes, blobs: [...parsed.layers, parsed.config] };
}
