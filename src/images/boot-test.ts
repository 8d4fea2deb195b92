// Does an image boot? It is started on QEMU (an overlay: the image is never written) under the given
// firmware with a NoCloud seed, and it passes when cloud-init's "finished" line appears on the serial
// console. The VM and its directory are gone afterwards, whatever happened. `osimg image test` and the
// builder's --register use this.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildNoCloudSeed, writeNoCloudIso } from "../cloudinit/nocloud.ts";
import { probeAccelerator } from "../vms/providers/qemu/accel.ts";
import { buildQemuCommand, type MachineSpec } from "../vms/providers/qemu/cmdline.ts";
import { prepareFirmware } from "../vms/providers/qemu/firmware.ts";
import { isAlive, killProcess, launchQemu, waitForExit } from "../vms/providers/qemu/process.ts";

const run = promisify(execFile);

/** The line cloud-init prints on the console when it has finished. */
export const CLOUD_INIT_FINISHED = /Cloud-init v\. \S+ finished at/;

export interface BootTestOptions {
  /** A disk image (qcow2 or raw). */
  image: string;
  firmware: "bios" | "efi";
  timeoutMs: number;
  /** The user cloud-init creates; default "debian". */
  cloudUser?: string;
  memoryMiB?: number;
  cpus?: number;
  /** The console line that means ready; default cloud-init's finished line. */
  readyPattern?: RegExp;
  /** How many console lines to return. */
  tailLines?: number;
  signal?: AbortSignal;
}

export interface BootTestResult {
  ok: boolean;
  firmware: "bios" | "efi";
  /** From QEMU's start to the ready line (when ok). */
  timeToReadyMs?: number;
  /** The ready line, when it came. */
  readyLine?: string;
  lastConsoleLines: string[];
  /** Why it failed: timeout, QEMU exited, could not start. */
  reason?: string;
  accelerator?: string;
}

async function imageFormat(path: string): Promise<"qcow2" | "raw"> {
  const { stdout } = await run("qemu-img", ["info", "--output=json", path]);
  return (JSON.parse(stdout) as { format: string }).format === "qcow2" ? "qcow2" : "raw";
}

export async function bootTest(options: BootTestOptions): Promise<BootTestResult> {
  const dir = await mkdtemp(join(tmpdir(), "osimg-boottest-"));
  const tail = options.tailLines ?? 20;
  const serialLog = join(dir, "serial.log");
  const console = async () => (await readFile(serialLog, "utf8").catch(() => "")).split(/\r?\n/);
  const lastLines = async () => (await console()).filter((l) => l.trim() !== "").slice(-tail);
  let pid: number | undefined;
  let qmp: { close(): void } | undefined;
  try {
    const overlay = join(dir, "root.qcow2");
    await run("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-b",
      options.image,
      "-F",
      await imageFormat(options.image),
      overlay,
    ]);
    const seed = buildNoCloudSeed({
      cloudUser: options.cloudUser ?? "debian",
      instanceId: `boot-test-${Date.now()}`,
      hostname: "boot-test",
      sshKeys: [],
    });
    await writeNoCloudIso(join(dir, "seed.iso"), seed);
    const firmware = await prepareFirmware(options.firmware, { varsPath: join(dir, "vars.fd") });
    const { accel } = await probeAccelerator();
    const spec: MachineSpec = {
      name: `boot-test-${options.firmware}`,
      cpus: options.cpus ?? 1,
      memoryBytes: (options.memoryMiB ?? 1024) * 2 ** 20,
      accel,
      firmware,
      disks: [{ kind: "disk", path: overlay, format: "qcow2" }],
      seed: join(dir, "seed.iso"),
      network: { kind: "user" },
      sockets: { qmp: join(dir, "qmp.sock"), serial: join(dir, "serial.sock") },
      serialLog,
      pidfile: join(dir, "qemu.pid"),
      tcgTranslationCacheMiB: 128,
    };
    const started = Date.now();
    const launched = await launchQemu(buildQemuCommand(spec), {
      logPath: join(dir, "qemu.log"),
      qmpSocket: spec.sockets.qmp,
    });
    pid = launched.pid;
    qmp = launched.qmp;
    const pattern = options.readyPattern ?? CLOUD_INIT_FINISHED;
    const deadline = started + options.timeoutMs;
    for (;;) {
      const line = (await console()).find((l) => pattern.test(l));
      if (line !== undefined)
        return {
          ok: true,
          firmware: options.firmware,
          timeToReadyMs: Date.now() - started,
          readyLine: line.trim(),
          lastConsoleLines: await lastLines(),
          accelerator: accel,
        };
      if (!isAlive(pid))
        return {
          ok: false,
          firmware: options.firmware,
          reason: "QEMU exited before the image was ready",
          lastConsoleLines: await lastLines(),
          accelerator: accel,
        };
      if (Date.now() > deadline || options.signal?.aborted)
        return {
          ok: false,
          firmware: options.firmware,
          reason: options.signal?.aborted
            ? "interrupted"
            : `no ${pattern} on the console within ${Math.round(options.timeoutMs / 1000)} s`,
          lastConsoleLines: await lastLines(),
          accelerator: accel,
        };
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (error) {
    return {
      ok: false,
      firmware: options.firmware,
      reason: (error as Error).message,
      lastConsoleLines: await lastLines(),
    };
  } finally {
    qmp?.close();
    if (pid !== undefined && isAlive(pid)) {
      killProcess(pid, "SIGKILL");
      await waitForExit(pid, 10_000);
    }
    await rm(dir, { recursive: true, force: true });
  }
}
