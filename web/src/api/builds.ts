// Image builds as the UI reads them (src/server/routes/builds.ts): the list (polled, faster while one is
// queued or running), one build with its findings and record, and its log followed as server-sent events
// (the backlog first, then live lines, then the build as it ended); and a build submitted (admins), whose
// refusal names the spec's findings at their lines.
import { queryOptions } from "@tanstack/react-query";
import type { Finding } from "../../../src/catalog/findings.ts";
import { followEvents, HttpError, requestJson } from "./http.ts";

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

/** What a build makes (src/build/spec.ts BUILD_KINDS). */
export type BuildKind = "vm-img" | "pxe-img" | "upgrade-img" | "container-disk" | "admin-container";

/** POST /api/v1/builds. */
export interface BuildRequest {
  spec: string;
  kind: BuildKind;
  /** The files the spec names, by relative path, base64. */
  files?: Record<string, string>;
  push?: { reference: string; tlsVerify: boolean };
}

/** Submits a build: the build, queued (202), or an HttpError (400 with the spec's findings: specFindings). */
export function submitBuild(request: BuildRequest): Promise<BuildView> {
  return requestJson<BuildView>("/api/v1/builds", { method: "POST", body: JSON.stringify(request) });
}

const SPEC_FIELD = /^spec:(\d+):(\d+)(?: (.*))?$/s;
const FIX = /^(.*) \(fix: (.*)\)$/s;

/**
 * The spec's findings of a refused build (400): the server names each in its details as
 * `spec:LINE:COL path` with the fix in the message ("… (fix: …)"). Empty for other errors.
 */
export function specFindings(error: unknown): Finding[] {
  if (!(error instanceof HttpError) || error.status !== 400) return [];
  const findings: Finding[] = [];
  for (const detail of error.body.details ?? []) {
    const at = SPEC_FIELD.exec(detail.field);
    if (!at) continue;
    const fix = FIX.exec(detail.message);
    findings.push({
      severity: "error",
      code: "spec",
      path: at[3] ?? "",
      line: Number(at[1]),
      column: Number(at[2]),
      message: fix ? (fix[1] as string) : detail.message,
      ...(fix ? { hint: fix[2] as string } : {}),
    });
  }
  return findings;
}
