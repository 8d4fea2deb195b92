// Image builds as the UI reads them (src/server/routes/builds.ts): the list (polled, faster while one is
// queued or running), one build with its findings and record, and its log followed as server-sent events
// (the backlog first, then live lines, then the build as it ended).
import { queryOptions } from "@tanstack/react-query";
import type { Finding } from "../../../src/catalog/findings.ts";
import { followEvents, requestJson } from "./http.ts";

export type BuildState = "queued" | "running" | "succeeded" | "failed";

/** What the UI shows of a build record (build.json, src/build/build.ts BuildRecord). */
export interface BuildRecordView {
  durationMs?: number;
  rootless?: boolean;
  baseCached?: boolean;
  steps?: { id: string; ms: number; cached: boolean }[];
  outputs?: {
    name: string;
    path: string;
    kind: "file" | "oci-layout" | "directory";
    sha256?: string;
    size?: number;
    manifestDigest?: string;
  }[];
  packages?: { name: string; version: string }[];
}

/** GET /api/v1/builds[/{id}]. */
export interface BuildView {
  id: string;
  kind: string;
  state: BuildState;
  runner: "local" | "cluster";
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
  findings?: Finding[];
  record?: BuildRecordView;
  logLines: number;
}

const active = (builds: readonly BuildView[] | undefined) =>
  builds?.some((b) => b.state === "queued" || b.state === "running") ?? false;

export const buildsQuery = queryOptions({
  queryKey: ["builds"],
  queryFn: ({ signal }) => requestJson<BuildView[]>("/api/v1/builds", { signal }),
  refetchInterval: (query) => (active(query.state.data) ? 2000 : 10_000),
});

export function buildQuery(id: string) {
  return queryOptions({
    queryKey: ["builds", id],
    queryFn: ({ signal }) => requestJson<BuildView>(`/api/v1/builds/${encodeURIComponent(id)}`, { signal }),
  });
}

/**
 * Follows a build's log: each line, then the build as it ended (the stream ends too). A reconnection
 * starts over with the backlog, so `onStart` clears what was shown. Returns the stop function.
 */
export function followBuildLog(
  id: string,
  handlers: { onStart: () => void; onLine: (line: string) => void; onEnd: (build: BuildView) => void },
): () => void {
  const stop = followEvents(`/api/v1/builds/${encodeURIComponent(id)}/logs`, {
    onOpen: handlers.onStart,
    onEvent: (event) => {
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (event.event === "log" && typeof data === "string") handlers.onLine(data);
      else if (event.event === "done" || event.event === "failed") {
        stop();
        handlers.onEnd(data as BuildView);
      }
    },
  });
  return stop;
}
