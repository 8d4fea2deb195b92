// Does an image boot? It is started on QEMU (an overlay: the image is never written) under the given
// firmware with a test cloud-init whose runcmd prints a marker (with a nonce made for this run) on the
// serial console: the marker proves the whole chain, firmware → boot loader → kernel → userland →
// cloud-init reading the NoCloud seed → user-data run. Where the image has a guest agent, its answer to
// guest-ping is recorded too. Known dead ends fail at once instead of at the timeout: the firmware found
// nothing to boot, a kernel panic, emergency mode. The VM and its directory are gone afterwards, whatever
// happened. `osimg image test`, the server's boot-test jobs and the builder's --register use this.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { probeAccelerator } from "../vms/providers/qemu/accel.ts";
import { pingAgent } from "../vms/providers/qemu/agent.ts";
import { tailOf } from "../vms/providers/qemu/process.ts";
import { ScratchVm } from "../vms/providers/qemu/scratch-vm.ts";
import { CLOUD_INIT_FINISHED, LogFollower } from "../vms/providers/qemu/serial-log.ts";

export interface BootTestOptions {
  /** A disk image (qcow2, raw or another format qemu-img reads). */
  image: string;
  /** Its format, when known (the store knows it); asked of qemu-img otherwise. */
  imageFormat?: string;
  firmware: "bios" | "efi";
  timeoutMs: number;
  /** UEFI with secure boot (OVMF's secboot build with the Microsoft keys). */
  secureBoot?: boolean;
  /** The user cloud-init creates; default "debian". */
  cloudUser?: string;
  memoryMiB?: number;
  cpus?: number;
  /**
   * The console line that means ready; default the test cloud-init's marker (then the ready line is
   * cloud-init's finished line that follows it, or the marker when cloud-init does not print one).
   */
  readyPattern?: RegExp;
  /** How long the guest agent gets to answer once the marker is there. Default 5 s. */
  agentGraceMs?: number;
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
  /** Why it failed: timeout, the firmware found nothing to boot, a kernel panic, QEMU exited... */
  reason?: string;
  accelerator?: string;
  /** What was seen on the way: the test marker, cloud-init's "finished" line, a guest-agent answer. */
  seen?: { marker: boolean; cloudInitFinished: boolean; agent: boolean };
}

/** The test user-data: one runcmd that prints the marker on the serial port (and on the console). */
export function bootTestUserData(nonce: string): { userData: string; marker: RegExp } {
  if (!/^[a-z0-9]+$/.test(nonce)) throw new Error("a boot-test nonce is lower-case letters and digits");
  return {
    userData: `#cloud-config\nruncmd:\n  - echo osimg-boot-test ${nonce} passed | tee /dev/ttyS0\n`,
    marker: new RegExp(`osimg-boot-test ${nonce} passed`),
  };
}

/** Console lines that mean the boot is over and failed: no need to wait for the timeout. */
const DEAD_ENDS: { pattern: RegExp; reason: string }[] = [
  {
    pattern: /UEFI Interactive Shell|BdsDxe: No bootable option/,
    reason: "the UEFI firmware found nothing to boot and started its shell",
  },
  { pattern: /Kernel panic - not syncing/, reason: "the kernel panicked" },
  {
    pattern: /You are in emergency mode|Give root password for maintenance/,
    reason: "the system stopped in emergency mode",
  },
  {
    pattern: /ALERT! .* does not exist\.|Gave up waiting for root (file system )?device/,
    reason: "the initramfs did not find the root file system",
  },
];

/** How long cloud-init's finished line may follow the marker (the rest of its final stage). */
const FINISHED_GRACE_MS = 30_000;

/** SeaBIOS says on its debug console (firmware.log) what it tried; the serial console stays silent. */
const BIOS_NOTHING_TO_BOOT = /No bootable device/;
const BIOS_BOOTING = /Booting from (.*?)\.*$/;
const BIOS_BOOT_FAILED = /Boot failed: (.*)/;

/** Why a console line ends the boot, when it does. */
export function deadEnd(line: string): string | undefined {
  const found = DEAD_ENDS.find((d) => d.pattern.test(line));
  return found && `${found.reason}: ${line.trim()}`;
}

export async function bootTest(options: BootTestOptions): Promise<BootTestResult> {
  const tail = options.tailLines ?? 20;
  const nonce = randomBytes(6).toString("hex");
  const test = bootTestUserData(nonce);
  const pattern = options.readyPattern ?? test.marker;
  const seen = { marker: false, cloudInitFinished: false, agent: false };
  const failed = (reason: string, lastConsoleLines: string[], accelerator?: string): BootTestResult => ({
    ok: false,
    firmware: options.firmware,
    reason,
    lastConsoleLines,
    seen,
    ...(accelerator ? { accelerator } : {}),
  });
  let vm: ScratchVm | undefined;
  let accelerator: string | undefined;
  try {
    accelerator = (await probeAccelerator()).accel;
    vm = await ScratchVm.start({
      image: options.image,
      ...(options.imageFormat ? { imageFormat: options.imageFormat } : {}),
      firmware: options.firmware,
      ...(options.secureBoot ? { secureBoot: true } : {}),
      name: `boot-test-${options.firmware}`,
      cpus: options.cpus ?? 1,
      memoryMiB: options.memoryMiB ?? 1024,
      firmwareLog: true,
      vnc: false,
      seed: {
        cloudUser: options.cloudUser ?? "debian",
        instanceId: `boot-test-${nonce}`,
        hostname: "boot-test",
        sshKeys: [],
        userData: test.userData,
      },
    });
    const running = vm;
    const agentSocket = running.spec.sockets.agent as string;
    const firmwareLog = new LogFollower(join(running.dir, "firmware.log"));
    // What SeaBIOS tried, and why each failed ("Hard Disk: not a bootable disk").
    const biosTries: string[] = [];
    let biosDevice = "";
    let lastAgentTry = 0;
    const tryAgent = async () => {
      if (seen.agent || Date.now() - lastAgentTry < 2000) return;
      lastAgentTry = Date.now();
      const client = await pingAgent(agentSocket, { connectTimeoutMs: 200, timeoutMs: 1500 }).catch(
        () => undefined,
      );
      client?.close();
      if (client) seen.agent = true;
    };
    type Outcome = { ready: string; at: number } | { dead: string };
    const watched = await running.watchConsole<Outcome>(
      (line) => {
        if (CLOUD_INIT_FINISHED.test(line)) seen.cloudInitFinished = true;
        if (test.marker.test(line)) seen.marker = true;
        if (pattern.test(line)) return { ready: line.trim(), at: Date.now() };
        const dead = deadEnd(line);
        return dead ? { dead } : undefined;
      },
      {
        timeoutMs: options.timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
        poll: async () => {
          for (const line of await firmwareLog.next()) {
            biosDevice = BIOS_BOOTING.exec(line)?.[1] ?? biosDevice;
            const failure = BIOS_BOOT_FAILED.exec(line)?.[1];
            if (failure) biosTries.push(`${biosDevice || "boot"}: ${failure.trim()}`);
            if (BIOS_NOTHING_TO_BOOT.test(line))
              return {
                dead: `the BIOS found no bootable device${biosTries.length > 0 ? ` (${biosTries.join("; ")})` : ""}`,
              };
          }
          await tryAgent();
          return undefined;
        },
      },
    );
    if (watched.kind === "found" && "ready" in watched.value) {
      // cloud-init prints its finished line right after the final stage that ran the marker (when its
      // console is this serial port), and some agents start late (the micro guest's after cloud-init):
      // both get a grace period. Ready is the finished line when it comes, else the marker.
      let ready = watched.value;
      const agentEnd = Date.now() + (options.agentGraceMs ?? 5000);
      const finishedEnd = Date.now() + FINISHED_GRACE_MS;
      const follower = new LogFollower(running.serialLog, 0);
      for (;;) {
        for (const line of await follower.next())
          if (CLOUD_INIT_FINISHED.test(line) && !seen.cloudInitFinished && !options.readyPattern) {
            seen.cloudInitFinished = true;
            ready = { ready: line.trim(), at: Date.now() };
          }
        if (!seen.agent && Date.now() < agentEnd) {
          lastAgentTry = 0;
          await tryAgent();
        }
        const agentDone = seen.agent || Date.now() >= agentEnd;
        const finishedDone = seen.cloudInitFinished || options.readyPattern || Date.now() >= finishedEnd;
        if ((agentDone && finishedDone) || !running.alive) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      return {
        ok: true,
        firmware: options.firmware,
        timeToReadyMs: ready.at - running.startedAt,
        readyLine: ready.ready,
        lastConsoleLines: await running.lastConsoleLines(tail),
        seen,
        accelerator,
      };
    }
    const lines = await running.lastConsoleLines(tail);
    if (watched.kind === "found" && "dead" in watched.value)
      return failed(watched.value.dead, lines, accelerator);
    if (watched.kind === "exited") {
      const log = await tailOf(join(running.dir, "qemu.log"), 3);
      return failed(`QEMU exited before the image was ready${log ? `: ${log}` : ""}`, lines, accelerator);
    }
    if (watched.kind === "aborted") return failed("interrupted", lines, accelerator);
    const what = options.readyPattern ? String(pattern) : "test marker";
    return failed(
      `no ${what} on the serial console within ${Math.round(options.timeoutMs / 1000)} s` +
        (lines.length === 0 ? " (the console stayed empty)" : ""),
      lines,
      accelerator,
    );
  } catch (error) {
    return failed((error as Error).message, vm ? await vm.lastConsoleLines(tail) : [], accelerator);
  } finally {
    await vm?.destroy();
  }
}
