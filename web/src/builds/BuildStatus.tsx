// A build's state in words with its icon, and how long it took (or has been running).
import type { BuildView } from "../api/builds.ts";
import { CheckIcon, SeverityIcon, ValidIcon } from "../components/icons.tsx";
import { formatDuration } from "../format.ts";

export function BuildStatus({ build }: { build: BuildView }) {
  return (
    <span className="osimg-status" data-state={build.state}>
      {build.state === "succeeded" ? (
        <ValidIcon />
      ) : build.state === "failed" ? (
        <SeverityIcon severity="error" />
      ) : (
        <CheckIcon status="pending" label={build.state} decorative />
      )}{" "}
      {build.state}
    </span>
  );
}

/** How long the build took, or has taken so far; "—" before it started. */
export function buildDuration(build: BuildView, now: number): string {
  if (!build.startedAt) return "—";
  const end = build.finishedAt ? Date.parse(build.finishedAt) : now;
  return formatDuration(end - Date.parse(build.startedAt));
}
