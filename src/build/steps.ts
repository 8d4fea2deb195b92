// The steps of a build plan. A step either runs a program (argv, never a shell string made from values)
// or does one thing in osimg's own code (a "native" step: editing the root filesystem tar, writing an
// OCI image, pushing it). Steps are plain JSON, so a plan can be written out (--debug) and a native step
// can be run on its own: `osimg build-step PLAN.json STEP`.
import type { OciImageInput } from "../oci/layout.ts";
import type { RootfsEdits } from "./rootfs.ts";

export const STAGES = [
  "bootstrap",
  "customize",
  "chroot",
  "filesystem",
  "disk",
  "package",
  "publish",
] as const;
export type Stage = (typeof STAGES)[number];

interface StepBase {
  /** Unique in the plan, e.g. "disk.sfdisk". */
  id: string;
  stage: Stage;
  title: string;
}

export interface ExecStep extends StepBase {
  kind: "exec";
  argv: string[];
  /** Set on top of the runner's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** A file fed to the program's standard input. */
  stdin?: string;
  /**
   * A cached result: the step is skipped when `path` exists; otherwise it runs (holding `lock`) writing
   * `partial`, which is then renamed to `path`.
   */
  cache?: { path: string; partial: string; lock: string };
}

export type NativeOp =
  | { op: "write-file"; path: string; content: string; mode: number; mtime: number }
  /** A file under `root` (no symlink or ".." leads out of it) copied to `to`. */
  | { op: "copy-in"; root: string; path: string; to: string; mode: number; field: string }
  | { op: "customize-rootfs"; input: string; output: string; edits: RootfsEdits; result: string }
  | { op: "extract-boot-files"; tar: string; kernel: string; initrd: string; mtime: number }
  /** An OCI image layout written by osimg's writer (src/oci/layout.ts). */
  | ({ op: "oci-image" } & OciImageInput)
  | { op: "push"; layout: string; tag: string; reference: string; tlsVerify: boolean };

export interface NativeStep extends StepBase {
  kind: "native";
  op: NativeOp;
}

export type Step = ExecStep | NativeStep;
