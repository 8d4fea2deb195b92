// A test VM: a guest image booted on QEMU with a NoCloud seed, through the same pieces the QEMU provider
// uses (command-line builder, launcher, QMP), in a temporary directory removed by destroy().
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildNoCloudSeed, type NoCloudInput, writeNoCloudIso } from "../../../src/cloudinit/nocloud.ts";
import { probeAccelerator } from "../../../src/vms/providers/qemu/accel.ts";
import { buildQemuCommand, type MachineSpec } from "../../../src/vms/providers/qemu/cmdline.ts";
import { prepareFirmware } from "../../../src/vms/providers/qemu/firmware.ts";
import { isAlive, killProcess, launchQemu, waitForExit } from "../../../src/vms/providers/qemu/process.ts";
import type { QmpClient } from "../../../src/vms/providers/qemu/qmp.ts";
import type { GuestImage } from "../guest-images.ts";

const run = promisify(execFile);

export interface TestVmOptions {
  image: GuestImage;
  firmware: "bios" | "efi";
  /** The seed; instanceId and hostname default to the VM name. */
  seed: Partial<NoCloudInput> & Pick<NoCloudInput, "sshKeys">;
  name?: string;
  cpus?: number;
  memoryMiB?: number;
  /** Root disk size (the overlay grows the image to it); the image's size when absent. */
  diskSize?: string;
  sshPort?: number;
  /** swtpm's control socket (with FEATURES tpm in `spec.features`). */
  tpmSocket?: string;
  /** Extra spec fields (features, machine type...). */
  spec?: Partial<MachineSpec>;
}

export class TestVm {
  readonly dir: string;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly spec: MachineSpec;
  readonly serialLog: string;

  private constructor(dir: string, pid: number, qmp: QmpClient, spec: MachineSpec) {
    this.dir = dir;
    this.pid = pid;
    this.qmp = qmp;
    this.spec = spec;
    this.serialLog = spec.serialLog as string;
  }

  static async start(options: TestVmOptions): Promise<TestVm> {
    const name = options.name ?? `${options.image.name}-${options.firmware}`;
    const dir = await mkdtemp(join(tmpdir(), "osimg-vm-"));
    try {
      const root = join(dir, "root.qcow2");
      const create = ["create", "-q", "-f", "qcow2", "-b", options.image.path, "-F", "qcow2", root];
      await run("qemu-img", options.diskSize ? [...create, options.diskSize] : create);
      const seedPath = join(dir, "seed.iso");
      const seed = buildNoCloudSeed({
        cloudUser: options.image.cloudUser,
        instanceId: `${name}-${Date.now()}`,
        hostname: name,
        ...options.seed,
      });
      await writeNoCloudIso(seedPath, seed);
      const firmware = await prepareFirmware(options.firmware, { varsPath: join(dir, "vars.fd") });
      const { accel } = await probeAccelerator();
      const spec: MachineSpec = {
        name,
        cpus: options.cpus ?? 1,
        memoryBytes: (options.memoryMiB ?? 256) * 2 ** 20,
        accel,
        firmware,
        disks: [{ kind: "disk", path: root, format: "qcow2" }],
        seed: seedPath,
        network: { kind: "user", ...(options.sshPort ? { sshPort: options.sshPort } : {}) },
        sockets: {
          qmp: join(dir, "qmp.sock"),
          serial: join(dir, "serial.sock"),
          agent: join(dir, "agent.sock"),
          vnc: join(dir, "vnc.sock"),
          ...(options.tpmSocket ? { tpm: options.tpmSocket } : {}),
        },
        serialLog: join(dir, "serial.log"),
        pidfile: join(dir, "qemu.pid"),
        tcgTranslationCacheMiB: 128,
        ...options.spec,
      };
      const { pid, qmp } = await launchQemu(buildQemuCommand(spec), {
        logPath: join(dir, "qemu.log"),
        qmpSocket: spec.sockets.qmp,
      });
      return new TestVm(dir, pid, qmp, spec);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  async serial(): Promise<string> {
    return readFile(this.serialLog, "utf8").catch(() => "");
  }

  /**
   * Waits until the serial console shows a line matching `pattern` (after `fromOffset` characters) and
   * returns that line. On timeout the error carries the console's last lines.
   */
  async waitForSerial(pattern: RegExp, timeoutMs: number, fromOffset = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = (await this.serial()).slice(fromOffset);
      const line = text.split(/\r?\n/).find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline || !isAlive(this.pid))
        throw new Error(
          `serial console of ${this.spec.name} shows no ${pattern} after ${timeoutMs} ms` +
            `${isAlive(this.pid) ? "" : " (QEMU exited)"}; last lines:\n${text.split("\n").slice(-15).join("\n")}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Kills QEMU (if still running) and removes the VM's directory. */
  async destroy(): Promise<void> {
    this.qmp.close();
    if (isAlive(this.pid)) {
      killProcess(this.pid, "SIGKILL");
      await waitForExit(this.pid, 10_000);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
