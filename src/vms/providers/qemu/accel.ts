// Which accelerator VMs run on: KVM when it works, else TCG. "Works" is decided by running a tiny guest on
// it: on some machines /dev/kvm exists and opens, yet a guest hangs as soon as it enters long mode. The
// probe guest (probe-guest.S, assembled below) is a 182-byte firmware that switches to 64-bit mode and
// writes to QEMU's isa-debug-exit port, so QEMU exits with status 85 within milliseconds when the
// accelerator is sound. The answer is cached for the process.
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Accelerator } from "./cmdline.ts";

/** probe-guest.S as assembled by `as --32` and `ld -m elf_i386 -Ttext=0 --oformat binary` (test checks). */
export const PROBE_GUEST_CODE = Buffer.from(
  "fa31c08ed88ec08ed0bf00106631c066b9000c0000fc66f3ab66c70600100320000066c70600200330000066c7060030830000002e660f0116b0000f20c06683c8010f22c066ea4d000f00080066b810008ed88ec08ed00f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea88000f001800b02ae6f4f4ebfd900000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf001f0090000f00",
  "hex",
);

/** The exit status QEMU gives when the probe guest writes 0x2a to isa-debug-exit: (0x2a << 1) | 1. */
export const PROBE_EXIT_STATUS = 85;

/** A 64 KiB BIOS image: the probe code at 0xF0000 and, at the reset vector 0xFFFF0, `ljmp $0xf000, $0`. */
export function probeFirmware(): Buffer {
  const rom = Buffer.alloc(0x10000);
  PROBE_GUEST_CODE.copy(rom, 0);
  Buffer.from([0xea, 0x00, 0x00, 0x00, 0xf0]).copy(rom, 0xfff0);
  return rom;
}

export interface AccelProbe {
  accel: Accelerator;
  /** Why: said in the VM status ("KVM guest did not finish within 5000 ms; using TCG"). */
  reason: string;
  /** How long the probe took. */
  elapsedMs: number;
}

export interface ProbeOptions {
  qemuBinary?: string;
  kvmDevice?: string;
  /** How long the KVM guest may take. Default 3 s (it takes ~50 ms where KVM works). */
  timeoutMs?: number;
  /** OSIMG_ACCEL=kvm|tcg skips the probe. */
  env?: NodeJS.ProcessEnv;
}

interface RunResult {
  status: number | null;
  timedOut: boolean;
  stderr: string;
}

/** Runs the probe guest on `accel`; the QEMU process is killed at the timeout. */
export async function runProbeGuest(
  accel: Accelerator,
  qemuBinary: string,
  timeoutMs: number,
): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), "osimg-accel-"));
  try {
    const rom = join(dir, "probe.rom");
    await writeFile(rom, probeFirmware());
    const args = [
      ...[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        "pc",
        "-accel",
        accel,
        "-m",
        "16",
      ],
      ...["-bios", rom, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
    ];
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(qemuBinary, args, { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      let timedOut = false;
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once("close", (status) => {
        clearTimeout(timer);
        resolve({ status, timedOut, stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function probe(options: ProbeOptions): Promise<AccelProbe> {
  const started = Date.now();
  const done = (accel: Accelerator, reason: string): AccelProbe => ({
    accel,
    reason,
    elapsedMs: Date.now() - started,
  });
  const forced = (options.env ?? process.env).OSIMG_ACCEL;
  if (forced === "kvm" || forced === "tcg") return done(forced, `OSIMG_ACCEL=${forced}`);
  const device = options.kvmDevice ?? "/dev/kvm";
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return done(
      "tcg",
      code === "ENOENT"
        ? `${device} does not exist; using TCG`
        : `${device} is not usable (${code}); using TCG`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 3000;
  const result = await runProbeGuest("kvm", options.qemuBinary ?? "qemu-system-x86_64", timeoutMs);
  if (result.status === PROBE_EXIT_STATUS) return done("kvm", "a KVM guest ran to completion");
  if (result.timedOut)
    return done("tcg", `a KVM guest did not finish within ${timeoutMs} ms (KVM hangs here); using TCG`);
  const message = result.stderr.trim().split("\n").pop() ?? "";
  return done("tcg", `a KVM guest failed (exit ${result.status}${message ? `: ${message}` : ""}); using TCG`);
}

let cached: Promise<AccelProbe> | undefined;

/** The accelerator for this process's VMs, probed once (later calls get the same answer). */
export function probeAccelerator(options: ProbeOptions = {}): Promise<AccelProbe> {
  // A probe that could not run (no QEMU) is not cached: installing QEMU fixes it without a restart.
  cached ??= probe(options).catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}

/** Probes again, ignoring the cache (tests, or after the host changed). */
export function reprobeAccelerator(options: ProbeOptions = {}): Promise<AccelProbe> {
  cached = probe(options);
  return cached;
}
