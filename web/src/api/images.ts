// The local image store and pulls into it: the stored images, a pull of a catalog entry's image (a job
// followed through its server-sent events until done or failed), and removal. Pull jobs started here are
// remembered for the browser tab (sessionStorage), so a reload finds them again.
import { queryOptions } from "@tanstack/react-query";
import type { z } from "zod";
import type { PullJob, StoredImage as StoredImageSchema } from "../../../src/images/schemas.ts";
import { followEvents, requestJson } from "./http.ts";

export type { PullJob };

/** An image of GET /api/v1/store. */
export type StoredImage = z.infer<typeof StoredImageSchema>;

export const storeQuery = queryOptions({
  queryKey: ["store"],
  queryFn: ({ signal }) => requestJson<StoredImage[]>("/api/v1/store", { signal }),
});

export function startPull(entryId: string): Promise<PullJob> {
  return requestJson<PullJob>(`/api/v1/images/${encodeURIComponent(entryId)}/pull`, { method: "POST" });
}

export function getPull(id: string): Promise<PullJob> {
  return requestJson<PullJob>(`/api/v1/pulls/${encodeURIComponent(id)}`);
}

export function removeStored(sha256: string): Promise<StoredImage> {
  return requestJson<StoredImage>(`/api/v1/store/${encodeURIComponent(sha256)}`, { method: "DELETE" });
}

/** Follows a pull job's events until it is done or failed; returns the stop function. */
export function followPull(id: string, onUpdate: (job: PullJob) => void): () => void {
  const stop = followEvents(`/api/v1/pulls/${encodeURIComponent(id)}/events`, {
    onEvent: (event) => {
      let job: PullJob;
      try {
        job = JSON.parse(event.data) as PullJob;
      } catch {
        return;
      }
      onUpdate(job);
      if (job.state !== "running") stop();
    },
  });
  return stop;
}

const PULLS_KEY = "osimg.pulls";

export function rememberedPulls(): string[] {
  try {
    const ids = JSON.parse(sessionStorage.getItem(PULLS_KEY) ?? "[]") as unknown;
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

export function rememberPulls(ids: readonly string[]): void {
  try {
    sessionStorage.setItem(PULLS_KEY, JSON.stringify(ids.slice(-20)));
  } catch {
    // A convenience only.
  }
}
