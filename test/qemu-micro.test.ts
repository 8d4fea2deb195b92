// Real QEMU (TCG here) with the micro guest: the accelerator probe, QMP, the guest agent, BIOS and UEFI
// boots reading the NoCloud ISO, pause/continue, ACPI power-down, reset, a TPM from swtpm.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PROBE_EXIT_STATUS,
  probeAccelerator,
  reprobeAccelerator,
  runProbeGuest,
} from "../src/vms/providers/qemu/accel.ts";
import { GuestAgentClient, waitForAgent } from "../src/vms/providers/qemu/agent.ts";
import { buildQemuCommand } from "../src/vms/providers/qemu/cmdline.ts";
import { prepareFirmware } from "../src/vms/providers/qemu/firmware.ts";
import { QemuTimeoutError } from "../src/vms/providers/qemu/json-socket.ts";
import {
  isAlive,
  launchQemu,
  processHasArgument,
  QemuStartError,
  readPidfile,
  waitForExit,
} from "../src/vms/providers/qemu/process.ts";
import { QemuClosedError, QmpCommandError } from "../src/vms/providers/qemu/qmp.ts";
import { CLOUD_INIT_FINISHED } from "../src/vms/providers/qemu/serial-log.ts";
import { startSwtpm } from "../src/vms/providers/qemu/swtpm.ts";
import { startTestVm, type TestVm, type TestVmOptions } from "./support/guest/vm.ts";
import { type GuestImage, microGuestImage } from "./support/guest-images.ts";

const BOOT_MS = 120_000;
let image: GuestImage;
const vms: TestVm[] = [];

beforeAll(async () => {
  image = await microGuestImage();
}, 600_000);
afterAll(async () => {
  await Promise.all(vms.map((vm) => vm.destroy()));
});

async function start(options: Omit<TestVmOptions, "image">): Promise<TestVm> {
  const vm = await startTestVm({ image, ...options });
  vms.push(vm);
  return vm;
}

describe("accelerator probe", () => {
  it("runs the probe guest to completion under TCG", async () => {
    const result = await runProbeGuest("tcg", "qemu-system-x86_64", 30_000);
    expect(result).toMatchObject({ status: PROBE_EXIT_STATUS, timedOut: false });
  });

  it("decides once per process and says why", async () => {
    const first = probeAccelerator();
    expect(probeAccelerator()).toBe(first);
    const probe = await first;
    expect(["kvm", "tcg"]).toContain(probe.accel);
    expect(probe.reason).toMatch(probe.accel === "kvm" ? /KVM guest ran/ : /using TCG$/);
    const forced = await reprobeAccelerator({ env: { OSIMG_ACCEL: "tcg" } });
    expect(forced).toMatchObject({ accel: "tcg", reason: "OSIMG_ACCEL=tcg" });
    expect(await reprobeAccelerator({ env: {}, kvmDevice: "/nonexistent/kvm" })).toMatchObject({
      accel: "tcg",
      reason: "/nonexistent/kvm does not exist; using TCG",
    });
    await reprobeAccelerator();
  }, 60_000);
});

describe("micro guest under SeaBIOS", () => {
  let vm: TestVm;
  beforeAll(async () => {
    vm = await start({
      firmware: "bios",
      name: "micro-bios",
      seed: {
        sshKeys: [],
        userData: "#cloud-config\nruncmd:\n  - echo osimg-marker-$((6*7))\n  - 'echo ''quoted'' item'\n",
      },
    });
  }, 60_000);

  it("speaks QMP: greeting, typed commands, errors as exceptions", async () => {
    expect(vm.qmp.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await vm.qmp.execute("query-name")).toEqual({ name: "micro-bios" });
    expect(await vm.qmp.execute("query-status")).toMatchObject({ running: true, status: "running" });
    const vnc = await vm.qmp.execute("query-vnc");
    expect(vnc.enabled).toBe(true);
    const error = await vm.qmp.executeUntyped("no-such-command").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ errorClass: "CommandNotFound", command: "no-such-command" });
  });

  it(
    "boots, reads the NoCloud ISO and applies hostname and runcmd",
    async () => {
      await vm.waitForConsole(CLOUD_INIT_FINISHED, BOOT_MS);
      const serial = await vm.serial();
      expect(serial).toContain("osimg-micro: hostname=micro-bios");
      expect(serial).toContain("osimg-marker-42");
      expect(serial).toContain("quoted item");
    },
    BOOT_MS,
  );

  it("answers the guest agent", async () => {
    const agent = await waitForAgent(vm.spec.sockets.agent as string, 30_000);
    try {
      expect(await agent.hostName()).toBe("micro-bios");
      expect(await agent.networkInterfaces()).toEqual([
        { name: "lo", "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "127.0.0.1", prefix: 8 }] },
      ]);
      await expect(agent.execute("guest-exec", { path: "/bin/true" })).rejects.toMatchObject({
        errorClass: "CommandNotFound",
      });
      await agent.ping();
    } finally {
      agent.close();
    }
  }, 60_000);

  it("pause stops the guest and cont resumes it", async () => {
    const agent = await GuestAgentClient.connect(vm.spec.sockets.agent as string);
    try {
      await agent.ping();
      const stopped = vm.qmp.waitForEvent("STOP", 10_000);
      await vm.qmp.execute("stop");
      await stopped;
      expect(await vm.qmp.execute("query-status")).toMatchObject({ running: false, status: "paused" });
      // A paused guest runs no code: its agent cannot answer.
      await expect(agent.ping({ timeoutMs: 3000 })).rejects.toBeInstanceOf(QemuTimeoutError);
      const resumed = vm.qmp.waitForEvent("RESUME", 10_000);
      await vm.qmp.execute("cont");
      await resumed;
      expect(await vm.qmp.execute("query-status")).toMatchObject({ running: true, status: "running" });
      await agent.ping({ timeoutMs: 20_000 });
    } finally {
      agent.close();
    }
  }, 60_000);

  it("powers off cleanly on system_powerdown", async () => {
    const shutdown = vm.qmp.waitForEvent("SHUTDOWN", 60_000);
    await vm.qmp.execute("system_powerdown");
    expect((await shutdown).data).toEqual({ guest: true, reason: "guest-shutdown" });
    await vm.qmp.waitForClose(30_000);
    expect(await waitForExit(vm.pid, 30_000)).toBe(true);
    expect(await vm.serial()).toContain("osimg-micro: power button pressed, powering off");
    await expect(vm.qmp.execute("query-status")).rejects.toBeInstanceOf(QemuClosedError);
  }, 90_000);
});

describe("micro guest under OVMF with a TPM", () => {
  let vm: TestVm;
  let swtpmPid: number;
  let tpmDir: string;
  afterAll(() => rm(tpmDir, { recursive: true, force: true }));
  beforeAll(async () => {
    tpmDir = await mkdtemp(join(tmpdir(), "osimg-tpm-"));
    const tpm = await startSwtpm({
      stateDir: join(tpmDir, "state"),
      socketPath: join(tpmDir, "swtpm.sock"),
      logPath: join(tpmDir, "swtpm.log"),
    });
    swtpmPid = tpm.pid;
    vm = await start({
      firmware: "efi",
      name: "micro-efi",
      seed: { sshKeys: [], userData: "#cloud-config\nruncmd:\n  - echo efi-marker\n" },
      spec: { features: ["acpi", "apic", "smm", "tpm"] },
      tpmSocket: tpm.socketPath,
    }).catch(async (error) => {
      await tpm.stop();
      throw error;
    });
  }, 60_000);

  it(
    "boots from the same disk under UEFI and reads the seed",
    async () => {
      await vm.waitForConsole(/osimg-micro: ready/, BOOT_MS);
      const serial = await vm.serial();
      expect(serial).toContain("osimg-micro: hostname=micro-efi");
      expect(serial).toContain("efi-marker");
      expect(await vm.qmp.execute("query-tpm")).toEqual([
        expect.objectContaining({
          id: "tpm0",
          model: "tpm-crb",
          options: expect.objectContaining({ type: "emulator" }),
        }),
      ]);
    },
    BOOT_MS,
  );

  it(
    "restarts into a new boot on system_reset",
    async () => {
      const before = await vm.serial();
      const firstBoot = /boot id=(\S+)/.exec(before)?.[1];
      const reset = vm.qmp.waitForEvent("RESET", 10_000);
      await vm.qmp.execute("system_reset");
      expect((await reset).data).toMatchObject({ guest: false });
      const line = await vm.waitForConsole(/osimg-micro: boot id=/, BOOT_MS, before.length);
      expect(line).not.toContain(firstBoot as string);
      await vm.waitForConsole(/osimg-micro: ready/, BOOT_MS, before.length);
    },
    BOOT_MS,
  );

  it("ends swtpm with QEMU", async () => {
    await vm.qmp.execute("quit");
    await vm.qmp.waitForClose(30_000);
    expect(await waitForExit(vm.pid, 30_000)).toBe(true);
    expect(await waitForExit(swtpmPid, 30_000)).toBe(true);
  }, 60_000);
});

describe("secure boot", () => {
  it("starts a q35 machine with SMM, secboot OVMF and the Microsoft-keyed vars", async () => {
    const dir = await mkdtemp(join(tmpdir(), "osimg-sb-"));
    try {
      const firmware = await prepareFirmware("efi", { secureBoot: true, varsPath: join(dir, "vars.fd") });
      expect(firmware).toMatchObject({
        type: "efi",
        secureBoot: true,
        code: expect.stringContaining("secboot"),
      });
      const command = buildQemuCommand({
        name: "sb",
        cpus: 1,
        memoryBytes: 256 * 2 ** 20,
        accel: (await probeAccelerator()).accel,
        firmware,
        disks: [{ kind: "disk", path: image.path, format: "qcow2", readOnly: true }],
        network: { kind: "none" },
        sockets: { qmp: join(dir, "qmp.sock"), serial: join(dir, "serial.sock") },
        pidfile: join(dir, "qemu.pid"),
      });
      const { pid, qmp } = await launchQemu(command, {
        logPath: join(dir, "qemu.log"),
        qmpSocket: join(dir, "qmp.sock"),
      });
      try {
        expect(await qmp.execute("query-status")).toMatchObject({ running: true });
        expect(await readPidfile(join(dir, "qemu.pid"))).toBe(pid);
        expect(await processHasArgument(pid, join(dir, "qmp.sock"))).toBe(true);
      } finally {
        await qmp.execute("quit").catch(() => undefined);
        expect(await waitForExit(pid, 30_000)).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("launch failures", () => {
  it("reports QEMU's own words when it cannot start", async () => {
    const dir = await mkdtemp(join(tmpdir(), "osimg-broken-"));
    try {
      const qmpSocket = join(dir, "qmp.sock");
      const command = buildQemuCommand({
        name: "broken",
        cpus: 1,
        memoryBytes: 64 * 2 ** 20,
        accel: "tcg",
        firmware: { type: "bios" },
        disks: [{ kind: "disk", path: "/nonexistent/disk.qcow2", format: "qcow2" }],
        network: { kind: "none" },
        sockets: { qmp: qmpSocket, serial: join(dir, "serial.sock") },
        pidfile: join(dir, "qemu.pid"),
      });
      const error = await launchQemu(command, { logPath: join(dir, "qemu.log"), qmpSocket }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(QemuStartError);
      expect((error as QemuStartError).log).toMatch(/nonexistent\/disk\.qcow2.*No such file/);
      expect(isAlive(0x7fffffff)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
