// A pull job's progress in words, pure: its phase, and the percentage when the size is known.
import type { PullJob } from "../../../src/images/schemas.ts";
import { formatBytes } from "../../../src/units/quantity.ts";

const PHASES: Record<PullJob["progress"]["phase"], string> = {
  probe: "Checking the source",
  waiting: "Waiting for another pull of the same image",
  download: "Downloading",
  verify: "Verifying",
  publish: "Storing",
  done: "Done",
};

export function pullProgress(job: PullJob): { label: string; percent?: number } {
  const { phase, received, total } = job.progress;
  if (phase !== "download") return { label: PHASES[phase] };
  if (total === undefined || total <= 0) return { label: `Downloading: ${formatBytes(received)}` };
  return {
    label: `Downloading: ${formatBytes(received)} of ${formatBytes(total)}`,
    percent: Math.min(100, (received / total) * 100),
  };
}
