// A disk image that boots under both SeaBIOS and OVMF, for test guests: the builder's own disk recipe
// (src/build/disk.ts: GPT with an ESP holding systemd-boot and SYSLINUX, an optional ext4 root, built in
// a plain file without loop devices or mounts), converted to qcow2.
import { rm } from "node:fs/promises";
import { dirname } from "node:path";
import { assembleDisk, GPT_MBR, SYSTEMD_BOOT } from "../../../src/build/disk.ts";
import { execStep } from "../../../src/build/run.ts";

export { GPT_MBR, SYSTEMD_BOOT };

/** The files' time on the ESP: fixed, so that the same inputs give the same image. */
const EPOCH = 1_700_000_000;

export interface BootableDiskSpec {
  /** The qcow2 to write. */
  output: string;
  /** A scratch raw file (deleted afterwards); boot loader files are written beside it. */
  scratch: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  espMiB: number;
  /** A directory to copy into an ext4 root partition (mkfs.ext4 -d), with its size. */
  root?: { dir: string; sizeMiB: number; partUuid: string; fsUuid: string };
  /** GPT disk and ESP identifiers, fixed for reproducible images. */
  diskUuid: string;
  espPartUuid: string;
}

export async function assembleBootableDisk(spec: BootableDiskSpec): Promise<void> {
  await assembleDisk({
    raw: spec.scratch,
    work: dirname(spec.scratch),
    kernel: spec.kernel,
    initrd: spec.initrd,
    cmdline: spec.cmdline,
    espMiB: spec.espMiB,
    ...(spec.root ? { root: { ...spec.root, label: "root" } } : {}),
    diskUuid: spec.diskUuid,
    espPartUuid: spec.espPartUuid,
    bios: true,
    epoch: EPOCH,
    qcow2: spec.output,
  });
  await rm(spec.scratch, { force: true });
}

/** Runs a tool with its argv (no shell); fails with its last output lines. */
export async function runTool(
  command: string,
  args: readonly string[],
  env?: Record<string, string>,
): Promise<void> {
  await execStep(
    {
      kind: "exec",
      id: command,
      stage: "bootstrap",
      title: command,
      argv: [command, ...args],
      ...(env ? { env } : {}),
    },
    { log: () => {}, planFile: "" },
  );
}
