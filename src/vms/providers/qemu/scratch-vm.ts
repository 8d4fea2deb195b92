// A throw-away VM: a disk image booted on QEMU through an overlay (the image itself is never written), with
// a NoCloud seed, in a temporary directory that destroy() removes with the QEMU process. Boot tests, the
// VM benchmark's ceiling and the QEMU tests use it; VMs users create live in the provider instead.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildNoCloudSeed, type NoCloudInput, writeNoCloudIso } from "../../../cloudinit/nocloud.ts";
import { probeAccelerator } from "./accel.ts";
import { buildQemuCommand, type MachineSpec } from "./cmdline.ts";
import { prepareFirmware } from "./firmware.ts";
import { isAlive, killProcess, launchQemu, waitForExit } from "./process.ts";
import type { QmpClient } from "./qmp.ts";
import { LogChanges, LogFollower, lastConsoleLines } from "./serial-log.ts";

const run = promisify(execFile);

/** The format of a disk image as QEMU sees it (qemu-img info): "qcow2", "raw", "vmdk"... */
export async function diskImageFormat(path: string): Promise<string> {
  const { stdout } = await run("qemu-img", ["info", "--output=json", path]);
  return (JSON.parse(stdout) as { format: string }).format;
}

/**
 * A qcow2 overlay at `path` on `base`: writes go to the overlay, the base stays as it is. `size` (bytes or
 * a qemu-img size such as "4G") grows the disk beyond the base's size; the base's size when absent.
 */
export async function createOverlay(
  path: string,
  base: { path: string; format: string },
  size?: number | string,
): Promise<void> {
  const args = ["create", "-q", "-f", "qcow2", "-b", base.path, "-F", base.format, path];
  await run("qemu-img", size === undefined ? args : [...args, String(size)]);
}

export interface ScratchVmOptions {
  /** The disk image to boot (any format qemu-img reads); used read-only as the overlay's backing file. */
  image: string;
  /** Its format; asked of qemu-img when absent. */
  imageFormat?: string;
  firmware: "bios" | "efi";
  secureBoot?: boolean;
  /** The NoCloud seed's input. */
  seed: NoCloudInput;
  /** The VM name (QEMU's -name). */
  name: string;
  cpus?: number;
  memoryMiB?: number;
  /** Root disk size (the overlay grows the image to it); the image's size when absent. */
  diskSize?: number | string;
  /** Host port on 127.0.0.1 forwarded to the guest's SSH port. */
  sshPort?: number;
  /** A guest-agent channel (default true) and a VNC display (default true). */
  agent?: boolean;
  vnc?: boolean;
  /** Keep SeaBIOS's debug output in firmware.log (BIOS only). */
  firmwareLog?: boolean;
  /** swtpm's control socket (with "tpm" in `spec.features`). */
  tpmSocket?: string;
  /** Anything else of the machine (features, machine type...). */
  spec?: Partial<MachineSpec>;
}

export type ConsoleWatch<T> =
  | { kind: "found"; value: T }
  | { kind: "exited" }
  | { kind: "timeout" }
  | { kind: "aborted" };

export class ScratchVm {
  readonly dir: string;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly spec: MachineSpec;
  readonly serialLog: string;
  /** From QEMU's start (before the launch) to now: what times to Ready are measured from. */
  readonly startedAt: number;

  protected constructor(dir: string, pid: number, qmp: QmpClient, spec: MachineSpec, startedAt: number) {
    this.dir = dir;
    this.pid = pid;
    this.qmp = qmp;
    this.spec = spec;
    this.serialLog = spec.serialLog as string;
    this.startedAt = startedAt;
  }

  static async start(options: ScratchVmOptions): Promise<ScratchVm> {
    const { dir, pid, qmp, spec, startedAt } = await launchScratch(options);
    return new ScratchVm(dir, pid, qmp, spec, startedAt);
  }

  get alive(): boolean {
    return isAlive(this.pid);
  }

  /** Everything on the console so far, one character a byte (so `length` is a byte offset for watchConsole). */
  async serial(): Promise<string> {
    return readFile(this.serialLog, "latin1").catch(() => "");
  }

  /** The console's last `count` non-empty lines, cleaned of terminal escapes. */
  lastConsoleLines(count = 20): Promise<string[]> {
    return lastConsoleLines(this.serialLog, count);
  }

  /**
   * Reads the console line by line as the guest writes it until `match` returns a value for a line (or
   * `poll`, called about twice a second, returns one), QEMU exits, `timeoutMs` passes or `signal` aborts.
   * `fromOffset` (bytes) skips what an earlier boot wrote.
   */
  async watchConsole<T>(
    match: (line: string) => T | undefined,
    options: {
      timeoutMs: number;
      fromOffset?: number;
      signal?: AbortSignal;
      poll?: () => Promise<T | undefined>;
    },
  ): Promise<ConsoleWatch<T>> {
    const follower = new LogFollower(this.serialLog, options.fromOffset ?? 0);
    const changes = new LogChanges(this.serialLog);
    const deadline = Date.now() + options.timeoutMs;
    try {
      return await this.#watch(match, follower, changes, deadline, options);
    } finally {
      changes.close();
    }
  }

  async #watch<T>(
    match: (line: string) => T | undefined,
    follower: LogFollower,
    changes: LogChanges,
    deadline: number,
    options: { signal?: AbortSignal; poll?: () => Promise<T | undefined> },
  ): Promise<ConsoleWatch<T>> {
    for (;;) {
      // Read once more after QEMU exited: its last words may be what was waited for.
      const exited = !this.alive;
      for (const line of await follower.next()) {
        const value = match(line);
        if (value !== undefined) return { kind: "found", value };
      }
      const polled = await options.poll?.();
      if (polled !== undefined) return { kind: "found", value: polled };
      if (exited) return { kind: "exited" };
      if (options.signal?.aborted) return { kind: "aborted" };
      if (Date.now() > deadline) return { kind: "timeout" };
      await changes.wait(250, options.signal);
    }
  }

  /** The first console line matching `pattern`; throws with the console's last lines when none comes. */
  async waitForConsole(pattern: RegExp, timeoutMs: number, fromOffset = 0): Promise<string> {
    const found = await this.watchConsole((line) => (pattern.test(line) ? line : undefined), {
      timeoutMs,
      fromOffset,
    });
    if (found.kind === "found") return found.value;
    const tail = await this.lastConsoleLines(15);
    throw new Error(
      `the serial console of ${this.spec.name} shows no ${pattern} after ${timeoutMs} ms` +
        `${found.kind === "exited" ? " (QEMU exited)" : ""}; last lines:\n${tail.join("\n")}`,
    );
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

async function launchScratch(options: ScratchVmOptions) {
  const dir = await mkdtemp(join(tmpdir(), "osimg-vm-"));
  try {
    const root = join(dir, "root.qcow2");
    const format = options.imageFormat ?? (await diskImageFormat(options.image));
    await createOverlay(root, { path: options.image, format }, options.diskSize);
    const seedPath = join(dir, "seed.iso");
    await writeNoCloudIso(seedPath, buildNoCloudSeed(options.seed));
    const firmware = await prepareFirmware(options.firmware, {
      varsPath: join(dir, "vars.fd"),
      ...(options.secureBoot ? { secureBoot: true } : {}),
    });
    const { accel } = await probeAccelerator();
    const spec: MachineSpec = {
      name: options.name,
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
        ...(options.agent === false ? {} : { agent: join(dir, "agent.sock") }),
        ...(options.vnc === false ? {} : { vnc: join(dir, "vnc.sock") }),
        ...(options.tpmSocket ? { tpm: options.tpmSocket } : {}),
      },
      serialLog: join(dir, "serial.log"),
      ...(options.firmwareLog ? { firmwareLog: join(dir, "firmware.log") } : {}),
      pidfile: join(dir, "qemu.pid"),
      // QEMU's default translation cache (1 GiB) is much for a throw-away guest.
      tcgTranslationCacheMiB: 128,
      ...options.spec,
    };
    const startedAt = Date.now();
    const { pid, qmp } = await launchQemu(buildQemuCommand(spec), {
      logPath: join(dir, "qemu.log"),
      qmpSocket: spec.sockets.qmp,
    });
    return { dir, pid, qmp, spec, startedAt };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
