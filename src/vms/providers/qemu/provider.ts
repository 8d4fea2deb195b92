// The local QEMU provider, the embedded default: each VM is a QEMU process with a qcow2 overlay on the
// verified base image from the image store, a NoCloud seed, and its sockets (QMP, serial, VNC, guest
// agent) in its own directory. Control goes through QMP; state is recorded in SQLite so that a restarted
// server re-attaches to running VMs and tells what happened to the others. Each phase and condition
// change, requested action and failure is recorded there too, as the VM's events.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import { buildNoCloudSeed, writeNoCloudIso } from "../../../cloudinit/nocloud.ts";
import type { ImageStore, StoredImage } from "../../../images/store.ts";
import {
  publicSpec,
  type Vm,
  type VmAction,
  type VmCondition,
  type VmEvent,
  type VmPhase,
  type VmSpec,
} from "../../model.ts";
import {
  type ConsoleKind,
  notFound,
  type RenderedVm,
  VmError,
  type VmProvider,
  type VmProviderEvents,
} from "../../provider.ts";
import { type NewVmEvent, RecordExists, type VmRecord, VmRecords } from "../../records.ts";
import { probeAccelerator } from "./accel.ts";
import { type GuestAgentClient, pingAgent } from "./agent.ts";
import { buildQemuCommand, type MachineFeature, type MachineSpec } from "./cmdline.ts";
import { openVnc, SerialHub } from "./console-hub.ts";
import { prepareFirmware } from "./firmware.ts";
import { findFreePort } from "./ports.ts";
import {
  isAlive,
  killProcess,
  launchQemu,
  processHasArgument,
  readPidfile,
  tailOf,
  waitForExit,
} from "./process.ts";
import { QmpClient } from "./qmp.ts";
import { createOverlay } from "./scratch-vm.ts";
import { CLOUD_INIT_FINISHED, LogChanges, LogFollower, logSize } from "./serial-log.ts";
import { startSwtpm, swtpmAvailable } from "./swtpm.ts";

const run = promisify(execFile);

/** The `source` of the events this provider records. */
export const EVENT_SOURCE = "osimg-qemu";

/** What each phase means, as the message of the event recorded when a VM enters it. */
const PHASE_MESSAGES: Record<Exclude<VmPhase, "Failed">, string> = {
  Provisioning: "preparing the VM: its image, its disk and its cloud-init seed",
  Starting: "starting QEMU",
  Running: "QEMU runs; waiting for the guest agent or cloud-init",
  Ready: "the guest is ready",
  Paused: "the VM is paused",
  Stopping: "the VM is shutting down",
  Stopped: "the VM is stopped",
};

const ACTION_REASONS: Record<VmAction, string> = {
  start: "StartRequested",
  stop: "StopRequested",
  restart: "RestartRequested",
  pause: "PauseRequested",
  unpause: "UnpauseRequested",
};

/** A failure (Failure=True) or a condition that gave up (a timeout, a failing step) is a warning. */
function conditionEventType(type: string, status: VmCondition["status"], reason: string): VmEvent["type"] {
  if (type === "Failure") return status === "True" ? "Warning" : "Normal";
  return status !== "True" && /Timeout|Fail/.test(reason) ? "Warning" : "Normal";
}

/** What is remembered about a VM across server restarts. */
interface Runtime {
  /** Whether the user wants it running (start/stop), as opposed to what it is. */
  desired: "running" | "stopped";
  /** The base image in the store (sha256) once pulled. */
  baseImage?: string;
  /** The base image is an installer ISO, attached as a cdrom. */
  installer?: boolean;
  provisioned?: boolean;
  pid?: number;
  sshPort?: number;
  startedAt?: string;
  readyAt?: string;
  timeToReadyMs?: number;
  failure?: { reason: string; message: string };
}

interface Live {
  record: VmRecord<Runtime>;
  phase: VmPhase;
  conditions: Map<string, VmCondition>;
  qmp?: QmpClient;
  serial?: SerialHub;
  readiness?: AbortController;
  /** Cancels an image pull under way, so that a delete does not wait for it. */
  provisioning?: AbortController;
  stopping?: boolean;
  ipAddresses: string[];
  importProgress?: number;
  runtime?: string;
  notes: string[];
  /** Lifecycle operations of one VM run one after another. */
  queue: Promise<unknown>;
  restarts: number;
  /** Re-attaching after a restart: the state found is not news, so no events are recorded for it. */
  quiet?: boolean;
}

export interface QemuProviderOptions {
  dataDir: string;
  images: ImageStore;
  logger: Logger;
  /** How long a guest gets to power off after an ACPI power-down before QEMU is stopped hard. */
  stopTimeoutMs?: number;
  /** How long a VM may take from start to Ready before it is reported as not ready. */
  readyTimeoutMs?: number;
  qemuBinary?: string;
}

export class QemuProvider extends EventEmitter<VmProviderEvents> implements VmProvider {
  readonly name = "qemu";
  readonly #options: Required<Omit<QemuProviderOptions, "qemuBinary">> & { qemuBinary: string };
  readonly #records: VmRecords<Runtime>;
  readonly #live = new Map<string, Live>();
  #closed = false;

  constructor(options: QemuProviderOptions) {
    super();
    this.#options = {
      stopTimeoutMs: 60_000,
      readyTimeoutMs: 15 * 60_000,
      qemuBinary: "qemu-system-x86_64",
      ...options,
    };
    this.#records = new VmRecords<Runtime>(recordsPath(options.dataDir));
  }

  /** Finds the VMs of an earlier run: re-attaches to those still running, tells what happened to the others. */
  async init(): Promise<void> {
    for (const record of this.#records.list()) {
      if (record.provider !== this.name) continue;
      const live = this.#track(record);
      await this.#reattach(live).catch((error: unknown) => this.#fail(live, "ReattachFailed", String(error)));
    }
  }

  async create(spec: VmSpec): Promise<Vm> {
    const { password } = spec;
    const record: VmRecord<Runtime> = {
      namespace: spec.namespace,
      name: spec.name,
      provider: this.name,
      spec: publicSpec(spec),
      createdAt: new Date().toISOString(),
      instanceId: randomUUID(),
      runtime: {
        desired: spec.runStrategy === "Halted" || spec.runStrategy === "Manual" ? "stopped" : "running",
      },
    };
    try {
      this.#records.insert(record);
    } catch (error) {
      if (error instanceof RecordExists)
        throw new VmError("exists", `VM "${spec.name}" already exists in namespace "${spec.namespace}"`);
      throw error;
    }
    const dir = this.#dir(record);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (password !== undefined) await writeFile(join(dir, "password"), password, { mode: 0o600 });
    const live = this.#track(record);
    this.#record(live, {
      type: "Normal",
      reason: "Created",
      message: `created: ${spec.image.osName} (catalog entry ${spec.image.entryId}), ${spec.cpu} vCPU, ${spec.memory} memory, ${spec.storage} disk`,
    });
    this.#setPhase(live, "Provisioning");
    this.#enqueue(live, () => this.#provision(live));
    return this.#view(live);
  }

  async events(namespace: string, name: string): Promise<VmEvent[]> {
    this.#require(namespace, name);
    return this.#records.events(namespace, name);
  }

  async get(namespace: string, name: string): Promise<Vm | undefined> {
    const live = this.#live.get(key(namespace, name));
    return live && this.#view(live);
  }

  async list(namespace?: string): Promise<Vm[]> {
    return [...this.#live.values()]
      .filter((l) => namespace === undefined || l.record.namespace === namespace)
      .sort((a, b) => a.record.name.localeCompare(b.record.name))
      .map((l) => this.#view(l));
  }

  async act(namespace: string, name: string, action: VmAction): Promise<Vm> {
    const live = this.#require(namespace, name);
    this.#record(live, { type: "Normal", reason: ACTION_REASONS[action], message: `${action} requested` });
    this.#changed(live);
    await this.#enqueue(live, async () => {
      switch (action) {
        case "start":
          this.#saveRuntime(live, { desired: "running" });
          live.restarts = 0;
          if (!live.record.runtime.provisioned) await this.#provision(live);
          else await this.#start(live);
          return;
        case "stop":
          this.#saveRuntime(live, { desired: "stopped" });
          await this.#stop(live);
          return;
        case "restart":
          await this.#qmp(live).execute("system_reset");
          await this.#markBooted(live);
          return;
        case "pause":
          await this.#qmp(live).execute("stop");
          this.#setPhase(live, "Paused");
          return;
        case "unpause":
          await this.#qmp(live).execute("cont");
          this.#setPhase(
            live,
            live.record.runtime.readyAt && live.conditions.get("Ready")?.status === "True"
              ? "Ready"
              : "Running",
          );
          return;
      }
    });
    return this.#view(live);
  }

  async delete(namespace: string, name: string): Promise<void> {
    const live = this.#require(namespace, name);
    live.provisioning?.abort();
    await this.#enqueue(live, async () => {
      live.stopping = true;
      live.readiness?.abort();
      await this.#kill(live);
      live.serial?.close();
      await rm(this.#dir(live.record), { recursive: true, force: true });
      await rmdir(join(this.#options.dataDir, "vms", namespace)).catch(() => undefined);
      this.#records.delete(namespace, name);
      this.#live.delete(key(namespace, name));
    });
    this.emit("changed", { namespace, name, deleted: true });
  }

  async render(spec: VmSpec): Promise<RenderedVm> {
    const record = { namespace: spec.namespace, name: spec.name } as VmRecord<Runtime>;
    const dir = this.#dir(record);
    const { accel } = await probeAccelerator({ qemuBinary: this.#options.qemuBinary });
    const firmware =
      spec.image.firmware === "efi"
        ? {
            type: "efi" as const,
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
            vars: join(dir, "efi-vars.fd"),
            secureBoot: spec.image.features.includes("smm"),
          }
        : { type: "bios" as const };
    const command = buildQemuCommand(
      this.#machineSpec(spec, dir, accel, firmware, 2222, true),
      this.#options.qemuBinary,
    );
    const notes = command.notes.map((n) => `# ${n.message}`);
    return { format: "argv", text: [...notes, command.binary, ...command.argv].join("\n") };
  }

  async openConsole(namespace: string, name: string, kind: ConsoleKind) {
    const live = this.#require(namespace, name);
    if (!live.qmp || live.qmp.closed)
      throw new VmError("conflict", `VM "${name}" is not running`, "start it first");
    const dir = this.#dir(live.record);
    if (kind === "vnc") return openVnc(join(dir, "vnc.sock"));
    live.serial ??= new SerialHub(join(dir, "serial.sock"), join(dir, "serial.log"));
    return live.serial.open();
  }

  /** Stops watching; VMs keep running (QEMU runs detached) and are re-attached by the next init(). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const live of this.#live.values()) {
      live.readiness?.abort();
      live.serial?.close();
      live.qmp?.removeAllListeners("close");
      live.qmp?.close();
    }
    this.#records.close();
  }

  // --- lifecycle ---------------------------------------------------------------------------------------

  async #provision(live: Live): Promise<void> {
    const { spec } = live.record;
    const dir = this.#dir(live.record);
    live.provisioning = new AbortController();
    try {
      // A new attempt is news even when the condition still says so from the last one.
      const pulling = `pulling ${spec.image.url}`;
      if (!this.#setCondition(live, "ImageReady", "False", "Pulling", pulling))
        this.#recordCondition(live, "ImageReady", "False", "Pulling", pulling);
      const base = await this.#baseImage(live);
      if (base.virtualSize > spec.storageBytes) {
        throw new VmError(
          "invalid",
          `the image is ${base.virtualSize} bytes, larger than the disk (${spec.storage})`,
          "create the VM with more storage",
        );
      }
      live.importProgress = undefined;
      this.#setCondition(
        live,
        "ImageReady",
        "True",
        "Pulled",
        `sha256:${base.sha256.slice(0, 12)} (${base.format}, verified: ${base.checksum.status})`,
      );
      const disk = join(dir, "disk.qcow2");
      await rm(disk, { force: true });
      // A disk image becomes the backing file of the VM's overlay; an installer ISO is attached as a cdrom
      // beside an empty disk.
      if (base.format === "iso")
        await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, String(spec.storageBytes)]);
      else
        await createOverlay(
          disk,
          { path: this.#options.images.pathOf(base.sha256), format: base.format },
          spec.storageBytes,
        );
      const seed = buildNoCloudSeed({
        catalogCloudInit: spec.image.cloudInit,
        cloudUser: spec.image.cloudUser,
        sshKeys: spec.sshKeys,
        password: await this.#password(live),
        userData: spec.userData,
        instanceId: live.record.instanceId,
        hostname: spec.name,
      });
      await writeNoCloudIso(join(dir, "seed.iso"), seed);
      this.#saveRuntime(live, {
        baseImage: base.sha256,
        installer: base.format === "iso" || undefined,
        provisioned: true,
        failure: undefined,
      });
      if (live.record.runtime.desired === "running") await this.#start(live);
      else this.#setPhase(live, "Stopped");
    } catch (error) {
      if (live.provisioning?.signal.aborted) return;
      this.#fail(
        live,
        error instanceof VmError ? "ProvisioningFailed" : "ImagePullFailed",
        error instanceof Error ? error.message : String(error),
      );
    } finally {
      live.provisioning = undefined;
    }
  }

  async #baseImage(live: Live): Promise<StoredImage> {
    const { image } = live.record.spec;
    const stored = live.record.runtime.baseImage
      ? await this.#options.images.get(live.record.runtime.baseImage)
      : undefined;
    if (stored) return stored;
    const known = await this.#options.images.findBySource(image.url);
    if (known && (!image.sha256 || known.sha256 === image.sha256 || known.download.sha256 === image.sha256))
      return known;
    return this.#options.images.pull(image.url, {
      pinnedSha256: image.sha256,
      catalogEntry: image.entryId,
      signal: live.provisioning?.signal,
      onProgress: (p) => {
        if (p.total) {
          const percent = Math.floor((100 * p.received) / p.total);
          if (percent !== live.importProgress) {
            live.importProgress = percent;
            this.#changed(live);
          }
        }
      },
    });
  }

  async #start(live: Live): Promise<void> {
    if (live.qmp && !live.qmp.closed) return;
    const { spec } = live.record;
    const dir = this.#dir(live.record);
    this.#setPhase(live, "Starting");
    live.stopping = false;
    try {
      const probe = await probeAccelerator({ qemuBinary: this.#options.qemuBinary });
      const secureBoot = spec.image.firmware === "efi" && spec.image.features.includes("smm");
      const firmware = await prepareFirmware(spec.image.firmware, {
        varsPath: join(dir, "efi-vars.fd"),
        secureBoot,
      });
      const tpm = spec.image.features.includes("tpm") && (await swtpmAvailable());
      if (tpm) {
        await startSwtpm({
          stateDir: join(dir, "tpm"),
          socketPath: join(dir, "tpm.sock"),
          logPath: join(dir, "swtpm.log"),
        });
      }
      const sshPort = await findFreePort();
      const consoleOffset = await logSize(join(dir, "serial.log"));
      const installer =
        live.record.runtime.installer && live.record.runtime.baseImage
          ? this.#options.images.pathOf(live.record.runtime.baseImage)
          : undefined;
      const command = buildQemuCommand(
        this.#machineSpec(spec, dir, probe.accel, firmware, sshPort, tpm, installer),
        this.#options.qemuBinary,
      );
      live.conditions.delete("Failure");
      for (const f of ["qmp.sock", "serial.sock", "vnc.sock", "agent.sock"])
        await rm(join(dir, f), { force: true });
      const { pid, qmp } = await launchQemu(command, {
        logPath: join(dir, "qemu.log"),
        qmpSocket: join(dir, "qmp.sock"),
      });
      live.runtime = `qemu ${probe.accel}, machine ${command.machine}`;
      live.notes = [
        probe.reason,
        ...command.notes.map((n) => n.message),
        ...unsupportedDisks(spec.image.additionalDisks),
      ];
      this.#saveRuntime(live, {
        pid,
        sshPort,
        startedAt: new Date().toISOString(),
        readyAt: undefined,
        timeToReadyMs: undefined,
        failure: undefined,
      });
      this.#attach(live, qmp);
      this.#setCondition(live, "Ready", "False", "Booting", "waiting for the guest agent or cloud-init");
      this.#setPhase(live, "Running");
      this.#watchReadiness(live, consoleOffset);
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code === "ENOENT" &&
        String((error as Error).message).includes("qemu")
      ) {
        this.#fail(
          live,
          "QemuMissing",
          "QEMU is not installed: install the Debian package qemu-system-x86 (npm start does, as root)",
        );
      } else {
        this.#fail(live, "StartFailed", error instanceof Error ? error.message : String(error));
      }
    }
  }

  #attach(live: Live, qmp: QmpClient): void {
    live.qmp = qmp;
    qmp.on("event", (event) => {
      if (event.event === "STOP" && live.phase !== "Stopping") this.#setPhase(live, "Paused");
      if (event.event === "RESUME")
        this.#setPhase(live, live.conditions.get("Ready")?.status === "True" ? "Ready" : "Running");
      if (event.event === "SHUTDOWN") this.#setPhase(live, "Stopping");
      if (event.event === "RESET") void this.#markBooted(live);
    });
    qmp.once("close", () => void this.#exited(live));
  }

  /** QEMU ended: by our stop, by the guest powering off, or by a crash. */
  async #exited(live: Live): Promise<void> {
    live.readiness?.abort();
    live.serial?.close();
    live.serial = undefined;
    live.qmp = undefined;
    const pid = live.record.runtime.pid;
    if (pid !== undefined) await waitForExit(pid, 5000);
    this.#saveRuntime(live, { pid: undefined });
    live.ipAddresses = [];
    if (live.stopping || !this.#live.has(key(live.record.namespace, live.record.name))) {
      this.#setPhase(live, "Stopped");
      return;
    }
    const strategy = live.record.spec.runStrategy;
    const log = await tailOf(join(this.#dir(live.record), "qemu.log"), 3);
    const guestShutdown = live.phase === "Stopping";
    if (guestShutdown) this.#setPhase(live, "Stopped");
    else this.#fail(live, "QemuExited", log ? `QEMU exited: ${log}` : "QEMU exited unexpectedly");
    const restart = strategy === "Always" || (strategy === "RerunOnFailure" && !guestShutdown);
    if (restart && live.record.runtime.desired === "running" && live.restarts < 5) {
      live.restarts++;
      const delay = Math.min(30_000, 1000 * 2 ** (live.restarts - 1));
      setTimeout(() => void this.#enqueue(live, () => this.#start(live)), delay).unref();
    } else if (strategy === "Once" || !restart) {
      this.#saveRuntime(live, { desired: "stopped" });
    }
  }

  async #stop(live: Live): Promise<void> {
    const qmp = live.qmp;
    if (!qmp || qmp.closed) {
      this.#setPhase(live, "Stopped");
      return;
    }
    live.stopping = true;
    live.readiness?.abort();
    this.#setPhase(live, "Stopping");
    const pid = live.record.runtime.pid;
    const status = await qmp.execute("query-status").catch(() => undefined);
    if (status?.running) {
      await qmp.execute("system_powerdown").catch(() => undefined);
      if (pid !== undefined && (await waitForExit(pid, this.#options.stopTimeoutMs))) {
        await qmp.waitForClose(5000).catch(() => undefined);
        return;
      }
    }
    await this.#kill(live);
  }

  /** Ends QEMU now (quit, then SIGKILL) and waits until it is gone. */
  async #kill(live: Live): Promise<void> {
    const pid = live.record.runtime.pid;
    live.stopping = true;
    await live.qmp?.execute("quit", undefined, { timeoutMs: 5000 }).catch(() => undefined);
    if (pid !== undefined && !(await waitForExit(pid, 5000))) {
      killProcess(pid, "SIGKILL");
      await waitForExit(pid, 5000);
    }
    await live.qmp?.waitForClose(5000).catch(() => undefined);
    live.qmp?.close();
    live.qmp = undefined;
    this.#saveRuntime(live, { pid: undefined });
  }

  async #reattach(live: Live): Promise<void> {
    const dir = this.#dir(live.record);
    const runtime = live.record.runtime;
    const qmpSocket = join(dir, "qmp.sock");
    const pid = runtime.pid ?? (await readPidfile(join(dir, "qemu.pid")));
    if (pid !== undefined && isAlive(pid) && (await processHasArgument(pid, qmpSocket))) {
      const qmp = await QmpClient.connect(qmpSocket, { connectTimeoutMs: 5000 });
      this.#saveRuntime(live, { pid });
      live.runtime = "qemu (re-attached)";
      this.#attach(live, qmp);
      const status = await qmp.execute("query-status");
      // The state found is what the VM was in before the restart, not a change.
      this.#quietly(live, () => {
        if (status.status === "paused") this.#setPhase(live, "Paused");
        else {
          this.#setPhase(live, runtime.readyAt ? "Ready" : "Running");
          if (runtime.readyAt)
            this.#setCondition(live, "Ready", "True", "Reattached", `ready since ${runtime.readyAt}`);
        }
      });
      this.#record(live, {
        type: "Normal",
        reason: "Reattached",
        message: `osimg restarted and re-attached to QEMU (pid ${pid}), which kept running`,
      });
      if (status.status !== "paused" && !runtime.readyAt)
        this.#watchReadiness(live, await logSize(join(dir, "serial.log")));
      return;
    }
    if (runtime.failure) {
      const { reason, message } = runtime.failure;
      this.#quietly(live, () => this.#fail(live, reason, message));
      return;
    }
    if (runtime.desired === "running" && runtime.provisioned && runtime.pid !== undefined) {
      const log = await tailOf(join(dir, "qemu.log"), 3);
      this.#fail(live, "ExitedWhileAway", `QEMU exited while osimg was not running${log ? `: ${log}` : ""}`);
      this.#saveRuntime(live, { pid: undefined });
      return;
    }
    if (runtime.desired === "running" && !runtime.provisioned) {
      this.#quietly(live, () => this.#setPhase(live, "Provisioning"));
      this.#enqueue(live, () => this.#provision(live));
      return;
    }
    this.#quietly(live, () => this.#setPhase(live, "Stopped"));
  }

  // --- readiness -----------------------------------------------------------------------------------------

  async #markBooted(live: Live): Promise<void> {
    const consoleOffset = await logSize(join(this.#dir(live.record), "serial.log"));
    live.ipAddresses = [];
    this.#saveRuntime(live, {
      startedAt: new Date().toISOString(),
      readyAt: undefined,
      timeToReadyMs: undefined,
    });
    this.#setCondition(live, "Ready", "False", "Rebooting", "a new boot started");
    if (live.phase === "Ready") this.#setPhase(live, "Running");
    this.#watchReadiness(live, consoleOffset);
  }

  /**
   * Ready when the guest agent answers guest-ping, or when cloud-init reports completion on the console.
   * Only console output after `fromOffset` counts: the serial log keeps earlier boots (QEMU appends).
   */
  #watchReadiness(live: Live, fromOffset: number): void {
    live.readiness?.abort();
    const controller = new AbortController();
    live.readiness = controller;
    const { signal } = controller;
    const dir = this.#dir(live.record);
    const deadline = Date.now() + this.#options.readyTimeoutMs;
    const startedAt = Date.parse(live.record.runtime.startedAt ?? new Date().toISOString());
    const ready = async (how: string, agent?: GuestAgentClient) => {
      if (signal.aborted) return;
      controller.abort();
      const readyAt = new Date();
      const alreadyReady = live.conditions.get("Ready")?.status === "True";
      if (!alreadyReady)
        this.#saveRuntime(live, {
          readyAt: readyAt.toISOString(),
          timeToReadyMs: readyAt.getTime() - startedAt,
        });
      // With user-mode networking the guest has QEMU's default address when the agent does not say.
      const reported = agent ? await guestAddresses(agent) : [];
      live.ipAddresses = reported.length > 0 ? reported : ["10.0.2.15"];
      agent?.close();
      this.#setCondition(
        live,
        "Ready",
        "True",
        how === "agent" ? "AgentConnected" : "CloudInitFinished",
        how === "agent" ? "the guest agent answers" : "cloud-init finished",
      );
      if (live.phase === "Running") this.#setPhase(live, "Ready");
      else this.#changed(live);
    };
    const consoleLog = new LogFollower(join(dir, "serial.log"), fromOffset);
    const consoleChanges = new LogChanges(join(dir, "serial.log"));
    const tryConsole = async () => (await consoleLog.next()).some((line) => CLOUD_INIT_FINISHED.test(line));
    // The agent is pinged beside the console checks, one try at a time: a guest without a running agent
    // lets each try wait for its timeout, and the console line must not wait for that.
    let agentTrying = false;
    const tryAgent = () => {
      if (agentTrying) return;
      agentTrying = true;
      void pingAgent(join(dir, "agent.sock"), { connectTimeoutMs: 500, timeoutMs: 1000 })
        .then(
          (agent) => {
            if (signal.aborted) agent.close();
            else void ready("agent", agent);
          },
          () => undefined,
        )
        .finally(() => {
          agentTrying = false;
          consoleChanges.poke();
        });
    };
    void (async () => {
      while (!signal.aborted && Date.now() < deadline) {
        if (live.phase === "Paused") {
          await sleep(1000, signal);
          continue;
        }
        if (await tryConsole().catch(() => false)) {
          consoleChanges.close();
          return ready("console");
        }
        tryAgent();
        await consoleChanges.wait(1000, signal);
      }
      consoleChanges.close();
      if (!signal.aborted)
        this.#setCondition(
          live,
          "Ready",
          "False",
          "ReadyTimeout",
          "neither the guest agent nor cloud-init reported in time",
        );
    })();
  }

  // --- helpers -----------------------------------------------------------------------------------------------

  #machineSpec(
    spec: Pick<VmSpec, "name" | "cpu" | "memoryBytes" | "image">,
    dir: string,
    accel: "kvm" | "tcg",
    firmware: MachineSpec["firmware"],
    sshPort: number,
    tpm: boolean,
    installer?: string,
  ): MachineSpec {
    const cdroms = installer ? [{ kind: "cdrom" as const, path: installer }] : [];
    return {
      name: spec.name,
      cpus: spec.cpu,
      memoryBytes: spec.memoryBytes,
      accel,
      firmware,
      machineType: spec.image.machineType,
      features: spec.image.features.filter((f): f is MachineFeature => f !== "tpm" || tpm),
      disks: [{ kind: "disk", path: join(dir, "disk.qcow2"), format: "qcow2" }, ...cdroms],
      seed: join(dir, "seed.iso"),
      bootOrder: spec.image.bootOrder.length > 0 ? spec.image.bootOrder : undefined,
      network: { kind: "user", sshPort },
      sockets: {
        qmp: join(dir, "qmp.sock"),
        serial: join(dir, "serial.sock"),
        vnc: join(dir, "vnc.sock"),
        agent: join(dir, "agent.sock"),
        tpm: tpm ? join(dir, "tpm.sock") : undefined,
      },
      serialLog: join(dir, "serial.log"),
      pidfile: join(dir, "qemu.pid"),
    };
  }

  #dir(record: Pick<VmRecord<Runtime>, "namespace" | "name">): string {
    return join(this.#options.dataDir, "vms", record.namespace, record.name);
  }

  async #password(live: Live): Promise<string | undefined> {
    if (!live.record.spec.hasPassword) return undefined;
    return readFile(join(this.#dir(live.record), "password"), "utf8");
  }

  #track(record: VmRecord<Runtime>): Live {
    const live: Live = {
      record,
      phase: "Stopped",
      conditions: new Map(),
      ipAddresses: [],
      notes: [],
      queue: Promise.resolve(),
      restarts: 0,
    };
    this.#live.set(key(record.namespace, record.name), live);
    return live;
  }

  #require(namespace: string, name: string): Live {
    const live = this.#live.get(key(namespace, name));
    if (!live) throw notFound(namespace, name);
    return live;
  }

  #qmp(live: Live): QmpClient {
    if (!live.qmp || live.qmp.closed)
      throw new VmError("conflict", `VM "${live.record.name}" is not running`);
    return live.qmp;
  }

  #enqueue<T>(live: Live, operation: () => Promise<T>): Promise<T> {
    const result = live.queue.then(operation);
    live.queue = result.catch(() => undefined);
    return result;
  }

  #saveRuntime(live: Live, patch: Partial<Runtime>): void {
    live.record.runtime = { ...live.record.runtime, ...patch };
    for (const [k, v] of Object.entries(patch))
      if (v === undefined) delete (live.record.runtime as unknown as Record<string, unknown>)[k];
    if (this.#live.has(key(live.record.namespace, live.record.name))) {
      this.#records.updateRuntime(live.record.namespace, live.record.name, live.record.runtime);
    }
  }

  #setPhase(live: Live, phase: VmPhase): void {
    if (live.phase === phase) return;
    live.phase = phase;
    this.#options.logger.debug({ vm: `${live.record.namespace}/${live.record.name}`, phase }, "vm phase");
    if (phase === "Failed") {
      const failure = live.record.runtime.failure;
      this.#record(live, {
        type: "Warning",
        reason: "Failed",
        message: failure ? `the VM failed (${failure.reason})` : "the VM failed",
      });
    } else this.#record(live, { type: "Normal", reason: phase, message: PHASE_MESSAGES[phase] });
    this.#changed(live);
  }

  /** Sets a condition; a change is recorded as an event. Returns whether anything changed. */
  #setCondition(
    live: Live,
    type: string,
    status: VmCondition["status"],
    reason: string,
    message?: string,
  ): boolean {
    const previous = live.conditions.get(type);
    if (previous?.status === status && previous.reason === reason && previous.message === message)
      return false;
    live.conditions.set(type, {
      type,
      status,
      reason,
      message,
      lastTransitionTime: new Date().toISOString(),
    });
    this.#recordCondition(live, type, status, reason, message);
    this.#changed(live);
    return true;
  }

  #fail(live: Live, reason: string, message: string): void {
    this.#options.logger.warn({ vm: `${live.record.namespace}/${live.record.name}`, reason }, message);
    this.#saveRuntime(live, { failure: { reason, message } });
    // The same failure again (a start that fails like the last one) is recorded too: its count goes up.
    if (!this.#setCondition(live, "Failure", "True", reason, message)) {
      this.#recordCondition(live, "Failure", "True", reason, message);
      this.#changed(live);
    }
    this.#setPhase(live, "Failed");
  }

  #recordCondition(
    live: Live,
    type: string,
    status: VmCondition["status"],
    reason: string,
    message?: string,
  ): void {
    this.#record(live, {
      type: conditionEventType(type, status, reason),
      reason,
      message: `${type}=${status}${message ? `: ${message}` : ""}`,
    });
  }

  /** Appends to the VM's event log (unless re-attaching); a failure to write it never fails the VM. */
  #record(live: Live, event: Omit<NewVmEvent, "source">): void {
    if (live.quiet || this.#closed) return;
    const { namespace, name } = live.record;
    // A VM being deleted (or a provider being closed) has no log left to write to.
    if (!this.#live.has(key(namespace, name))) return;
    try {
      this.#records.recordEvent(namespace, name, { ...event, source: EVENT_SOURCE });
    } catch (error) {
      this.#options.logger.warn({ vm: `${namespace}/${name}`, err: error }, "cannot record a VM event");
    }
  }

  #quietly(live: Live, work: () => void): void {
    live.quiet = true;
    try {
      work();
    } finally {
      live.quiet = false;
    }
  }

  #changed(live: Live): void {
    this.emit("changed", { namespace: live.record.namespace, name: live.record.name, deleted: false });
  }

  #view(live: Live): Vm {
    const { record } = live;
    const runtime = record.runtime;
    const base = `/api/v1/namespaces/${record.namespace}/vms/${record.name}`;
    return {
      namespace: record.namespace,
      name: record.name,
      provider: this.name,
      createdAt: record.createdAt,
      spec: record.spec,
      status: {
        phase: live.phase,
        conditions: [...live.conditions.values()],
        ipAddresses: live.ipAddresses,
        importProgress: live.importProgress,
        runtime: live.runtime,
        notes: live.notes,
        consoles: { serial: `${base}/console`, vnc: `${base}/vnc` },
        ssh:
          runtime.sshPort && live.qmp
            ? { host: "127.0.0.1", port: runtime.sshPort, user: record.spec.image.cloudUser }
            : undefined,
        startedAt: runtime.startedAt,
        readyAt: runtime.readyAt,
        timeToReadyMs: runtime.timeToReadyMs,
      },
    };
  }
}

/** The VM records in a data directory. */
const recordsPath = (dataDir: string) => join(dataDir, "osimg.db");

/** Local VMs whose disks are made on a stored image ("namespace/name"), read from a data directory's records. */
export function localVmsOnImage(dataDir: string, sha256: string): string[] {
  const path = recordsPath(dataDir);
  if (!existsSync(path)) return [];
  const records = new VmRecords<Runtime>(path);
  try {
    return records
      .list()
      .filter((r) => r.runtime.baseImage === sha256)
      .map((r) => `${r.namespace}/${r.name}`);
  } finally {
    records.close();
  }
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

async function guestAddresses(agent: GuestAgentClient): Promise<string[]> {
  try {
    const interfaces = await agent.networkInterfaces({ timeoutMs: 3000 });
    return interfaces
      .filter((i) => i.name !== "lo")
      .flatMap((i) =>
        (i["ip-addresses"] ?? []).filter((a) => a["ip-address-type"] === "ipv4").map((a) => a["ip-address"]),
      );
  } catch {
    return [];
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** ADDITIONAL_DISKS that the local provider cannot attach (the virtio-win drivers ISO is not packaged). */
function unsupportedDisks(disks: readonly string[]): string[] {
  return disks.map(
    (d) =>
      `ADDITIONAL_DISKS ${d}: not available on the local QEMU provider (no virtio-win ISO); attach drivers yourself`,
  );
}
