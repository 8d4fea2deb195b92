// Published checksums: the files distributions put beside their images (Ubuntu SHA256SUMS, Debian
// SHA512SUMS, Fedora/CentOS CHECKSUM with BSD-style lines inside a PGP-signed message, per-file
// .sha256 / .SHA256SUM), and the digests computed while an image streams by.
import { createHash, type Hash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { FetchPolicy } from "./fetch-policy.ts";
import { FetchError, httpRequest, readText } from "./http.ts";

export type DigestAlgorithm = "sha256" | "sha512";

export interface ChecksumLine {
  algorithm: DigestAlgorithm;
  digest: string;
  /** The file the line is for; undefined for a bare digest (a per-file checksum file). */
  name?: string;
}

export interface ExpectedDigest {
  algorithm: DigestAlgorithm;
  digest: string;
  /** Where it came from: "OS_IMAGE_SHA256", or the checksum file's URL or path. */
  source: string;
}

export type ChecksumStatus = "verified" | "mismatch" | "unverified";

export interface ChecksumResult {
  status: ChecksumStatus;
  algorithm?: DigestAlgorithm;
  expected?: string;
  actual?: string;
  source?: string;
  /** Why it is unverified, or what mismatched. */
  reason?: string;
}

const ALGORITHM_BY_LENGTH: Record<number, DigestAlgorithm> = { 64: "sha256", 128: "sha512" };

/** Parses GNU ("<hex>  name", "<hex> *name"), BSD ("SHA256 (name) = <hex>") and bare-digest lines. */
export function parseChecksumFile(text: string): ChecksumLine[] {
  const lines: ChecksumLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("-----") || /^Hash:/i.test(line)) continue;
    const bsd = /^(SHA-?256|SHA-?512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/i.exec(line);
    if (bsd) {
      const algorithm = ALGORITHM_BY_LENGTH[(bsd[3] as string).length];
      const named = (bsd[1] as string).replace("-", "").toLowerCase();
      if (algorithm && algorithm === named)
        lines.push({ algorithm, digest: (bsd[3] as string).toLowerCase(), name: bsd[2] as string });
      continue;
    }
    const gnu = /^\\?([0-9a-fA-F]{64}|[0-9a-fA-F]{128})(?:\s+\*?(.+))?$/.exec(line);
    if (gnu) {
      const digest = (gnu[1] as string).toLowerCase();
      const algorithm = ALGORITHM_BY_LENGTH[digest.length] as DigestAlgorithm;
      lines.push({ algorithm, digest, ...(gnu[2] !== undefined ? { name: (gnu[2] as string).trim() } : {}) });
    }
  }
  return lines;
}

/** The line for `file`: by exact name, by its last path component, or a bare digest. */
export function findChecksum(lines: readonly ChecksumLine[], file: string): ChecksumLine | undefined {
  const strip = (n: string) => n.replace(/^\.\//, "").split("/").pop() ?? n;
  return (
    lines.find((l) => l.name === file) ??
    lines.find((l) => l.name !== undefined && strip(l.name) === file) ??
    (lines.length === 1 && lines[0]?.name === undefined ? lines[0] : undefined)
  );
}

/** The checksum files to look for beside an image, in the order tried. */
export function checksumCandidates(file: string): string[] {
  return [
    "SHA256SUMS",
    "SHA512SUMS",
    "CHECKSUM",
    `${file}.sha256`,
    `${file}.SHA256SUM`,
    `${file}.sha256sum`,
    `${file}.sha512`,
    `${file}.SHA512SUM`,
  ];
}

/** Names of checksum files a directory listing (an HTML index) links to, e.g. Fedora's "*-CHECKSUM". */
export function checksumLinks(html: string): string[] {
  const out = new Set<string>();
  for (const m of html.matchAll(/href\s*=\s*"([^"?#]+)"/gi)) {
    const href = decodeURIComponent(m[1] as string);
    const name = href.split("/").filter(Boolean).pop() ?? "";
    if (/CHECKSUM$|SHA256SUMS?$|SHA512SUMS?$/i.test(name) && !name.includes("..")) out.add(name);
  }
  return [...out];
}

export interface Discovery {
  expected?: ExpectedDigest;
  /** The places looked at, for the "unverified" reason. */
  tried: string[];
}

const MAX_CHECKSUM_FILE = 4 * 2 ** 20;

/** Finds the published checksum of the image at `url` in the files beside it. */
export async function discoverRemoteChecksum(
  url: string,
  options: { policy: FetchPolicy; timeoutMs?: number; also?: string },
): Promise<Discovery> {
  const tried: string[] = [];
  const urls = [url, ...(options.also && options.also !== url ? [options.also] : [])];
  for (const imageUrl of urls) {
    const u = new URL(imageUrl);
    const file = decodeURIComponent(u.pathname.split("/").pop() ?? "");
    if (file === "") continue;
    const fetchText = async (name: string): Promise<string | undefined> => {
      const target = new URL(encodeURIComponent(name).replace(/%2F/g, "/"), u).href;
      tried.push(target);
      try {
        const res = await httpRequest(target, {
          policy: options.policy,
          timeoutMs: options.timeoutMs ?? 10_000,
        });
        if (res.status !== 200) {
          res.body.resume();
          return undefined;
        }
        return await readText(res, MAX_CHECKSUM_FILE);
      } catch (error) {
        if (error instanceof FetchError && (error.kind === "http" || error.kind === "too_large"))
          return undefined;
        throw error;
      }
    };
    const found = await search(file, fetchText, async () => {
      const listing = await fetchText("./");
      return listing ? checksumLinks(listing) : [];
    });
    if (found) return { expected: { ...found, source: new URL(found.source, u).href }, tried };
  }
  return { tried };
}

/** Finds a published checksum for a local file in the files beside it. */
export async function discoverLocalChecksum(path: string): Promise<Discovery> {
  const tried: string[] = [];
  const dir = dirname(path);
  const found = await search(basename(path), async (name) => {
    const p = join(dir, name);
    tried.push(p);
    try {
      return await readFile(p, "utf8");
    } catch {
      return undefined;
    }
  });
  return found ? { expected: { ...found, source: join(dir, found.source) }, tried } : { tried };
}

async function search(
  file: string,
  fetchText: (name: string) => Promise<string | undefined>,
  listed?: () => Promise<string[]>,
): Promise<ExpectedDigest | undefined> {
  const seen = new Set<string>();
  const tryName = async (name: string): Promise<ExpectedDigest | undefined> => {
    if (seen.has(name)) return undefined;
    seen.add(name);
    const text = await fetchText(name);
    if (text === undefined) return undefined;
    const line = findChecksum(parseChecksumFile(text), file);
    return line ? { algorithm: line.algorithm, digest: line.digest, source: name } : undefined;
  };
  for (const name of checksumCandidates(file)) {
    const found = await tryName(name);
    if (found) return found;
  }
  for (const name of (await listed?.()) ?? []) {
    const found = await tryName(name);
    if (found) return found;
  }
  return undefined;
}

/** The expected digest of an OS_IMAGE_SHA256 value (64 hex digits, an optional "sha256:" prefix). */
export function pinnedDigest(value: string | undefined): ExpectedDigest | undefined {
  if (!value) return undefined;
  const hex = value
    .trim()
    .replace(/^sha256:/i, "")
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
  return { algorithm: "sha256", digest: hex, source: "OS_IMAGE_SHA256" };
}

/** sha256 and sha512 of one stream, computed in the same pass. */
export class Digests {
  readonly #sha256: Hash = createHash("sha256");
  readonly #sha512: Hash | undefined;
  bytes = 0;

  constructor(options: { sha512?: boolean } = {}) {
    this.#sha512 = options.sha512 === false ? undefined : createHash("sha512");
  }

  update(chunk: Uint8Array): void {
    this.#sha256.update(chunk);
    this.#sha512?.update(chunk);
    this.bytes += chunk.length;
  }

  digest(): { sha256: string; sha512?: string } {
    return {
      sha256: this.#sha256.digest("hex"),
      ...(this.#sha512 ? { sha512: this.#sha512.digest("hex") } : {}),
    };
  }
}

export function compareDigest(
  expected: ExpectedDigest | undefined,
  actual: { sha256: string; sha512?: string } | undefined,
  whyUnverified: string,
): ChecksumResult {
  if (!expected) return { status: "unverified", reason: whyUnverified };
  const base = { algorithm: expected.algorithm, expected: expected.digest, source: expected.source };
  const got = actual?.[expected.algorithm];
  if (got === undefined)
    return {
      status: "unverified",
      ...base,
      reason: actual ? `no ${expected.algorithm} was computed` : whyUnverified,
    };
  if (got === expected.digest) return { status: "verified", ...base, actual: got };
  return {
    status: "mismatch",
    ...base,
    actual: got,
    reason: `${expected.algorithm} is ${got}, but ${expected.source} says ${expected.digest}`,
  };
}
