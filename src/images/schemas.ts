// The image intake's shapes on the HTTP API (zod: validated, serialized and described in OpenAPI).
import { z } from "zod";

export const Reason = z.object({
  code: z.string(),
  severity: z.enum(["error", "warning", "info"]),
  message: z.string(),
});

export const Verdict = z.object({
  safe: z.boolean(),
  reasons: z.array(Reason).describe("why: the errors that refuse it, or what was checked to accept it"),
});

export const ChecksumResult = z.object({
  status: z.enum(["verified", "mismatch", "unverified"]),
  algorithm: z.enum(["sha256", "sha512"]).optional(),
  expected: z.string().optional(),
  actual: z.string().optional(),
  source: z.string().optional().describe("OS_IMAGE_SHA256, or the URL of the checksum file"),
  reason: z.string().optional(),
});

export const EntryCheck = z.object({
  entry: z.string(),
  name: z.string().optional(),
  url: z.string().optional(),
  reachable: z.boolean(),
  format: z.string().optional(),
  compression: z.string().optional(),
  virtualSize: z.number().optional(),
  minStorage: z.number().optional(),
  sizeCheck: z.enum(["ok", "too_small", "unknown"]),
  checksum: ChecksumResult,
  safety: Verdict.optional(),
  contentLength: z.number().optional(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  finalUrl: z.string().optional(),
  problems: z.array(Reason),
  ok: z.boolean(),
  bytesRead: z.number(),
  ms: z.number(),
  checkedAt: z.string(),
});

export const EntryVerification = z.object({
  entry: z.string(),
  state: z.enum(["pending", "running", "done"]),
  url: z.string().optional(),
  check: EntryCheck.optional().describe("the latest result (kept while a re-check runs)"),
});

export const StoredImage = z.object({
  sha256: z.string(),
  sha512: z.string(),
  sourceUrl: z.string(),
  format: z.string(),
  virtualSize: z.number(),
  size: z.number(),
  fetchedAt: z.string(),
  compression: z.string().optional(),
  download: z.object({
    size: z.number(),
    sha256: z.string(),
    sha512: z.string(),
    etag: z.string().optional(),
    lastModified: z.string().optional(),
  }),
  checksum: ChecksumResult,
  catalogEntry: z.string().optional(),
});

export const PullProgress = z.object({
  phase: z.enum(["probe", "waiting", "download", "verify", "publish", "done"]),
  received: z.number(),
  total: z.number().optional(),
  resumedFrom: z.number().optional(),
  written: z.number().optional(),
});

export const PullJob = z.object({
  id: z.string(),
  source: z.string(),
  entry: z.string().optional(),
  state: z.enum(["running", "done", "failed"]),
  progress: PullProgress,
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  image: StoredImage.optional(),
  error: z.object({ code: z.string(), message: z.string(), safety: Verdict.optional() }).optional(),
});
export type PullJob = z.infer<typeof PullJob>;
