// The full path with a real distribution: Debian with cloud-init, sshd and the guest agent, booted under
// OVMF with a NoCloud ISO from osimg's writer. Checked from inside the guest (agent guest-exec) and over
// SSH through the user-mode port forward with a key made for the test.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GuestAgentClient, waitForAgent } from "../src/vms/providers/qemu/agent.ts";
import { findFreePort } from "../src/vms/providers/qemu/ports.ts";
import { waitForExit } from "../src/vms/providers/qemu/process.ts";
import { CLOUD_INIT_FINISHED } from "../src/vms/providers/qemu/serial-log.ts";
import { startTestVm, type TestVm } from "./support/guest/vm.ts";
import { debianGuestImage, type GuestImage } from "./support/guest-images.ts";

const run = promisify(execFile);
const READY_MS = 300_000;

describe("Debian guest with cloud-init under OVMF", () => {
  let image: GuestImage;
  let vm: TestVm;
  let agent: GuestAgentClient;
  let keyDir: string;
  let publicKey: string;
  let sshPort: number;

  beforeAll(async () => {
    keyDir = await mkdtemp(join(tmpdir(), "osimg-key-"));
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "osimg-test", "-f", join(keyDir, "id")]);
    publicKey = (await readFile(join(keyDir, "id.pub"), "utf8")).trim();
    image = await debianGuestImage({ log: (line) => process.stderr.write(`${line}\n`) });
    sshPort = await findFreePort();
    vm = await startTestVm({
      image,
      firmware: "efi",
      name: "deb1",
      cpus: 2,
      memoryMiB: 1024,
      diskSize: "4G",
      sshPort,
      seed: {
        sshKeys: [publicKey],
        password: "osimg-pass",
        catalogCloudInit: "#cloud-config\nruncmd:\n  - echo catalog-ran > /run/osimg-catalog\n",
        userData: "#cloud-config\nwrite_files:\n  - path: /etc/osimg-user\n    content: from-user-data\n",
      },
    });
  }, 1_800_000);

  afterAll(async () => {
    agent?.close();
    await vm?.destroy();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  it(
    "becomes Ready: the guest agent answers and cloud-init reports completion",
    async () => {
      agent = await waitForAgent(vm.spec.sockets.agent as string, READY_MS);
      await vm.waitForConsole(CLOUD_INIT_FINISHED, READY_MS);
    },
    READY_MS * 2,
  );

  it("applied hostname, SSH key, runcmd and write_files", async () => {
    const sh = async (script: string) => {
      const result = await agent.exec("/bin/sh", ["-c", script], { timeoutMs: 60_000 });
      expect(result.exitcode, result.stderr).toBe(0);
      return result.stdout.trim();
    };
    expect(await sh("hostname")).toBe("deb1");
    // Every module of the image's cloud-init succeeded (the locale module fails without a usable locale).
    expect(await sh("cloud-init status --long")).toMatch(/^status: done$/m);
    expect(await sh("cat /home/debian/.ssh/authorized_keys")).toContain(publicKey);
    expect(await sh("cat /run/osimg-catalog")).toBe("catalog-ran");
    expect(await sh("cat /etc/osimg-user")).toBe("from-user-data");
    // The password from chpasswd is set (a hash in shadow, not locked).
    expect(await sh("getent shadow debian | cut -d: -f2")).toMatch(/^\$[0-9a-z]+\$/);
    // growpart + resizefs took the root filesystem to the 4G disk.
    expect(Number(await sh("df --output=size -B1M / | tail -1"))).toBeGreaterThan(3000);
    expect((await agent.networkInterfaces()).map((i) => i.name)).toContain("lo");
  }, 120_000);

  it("accepts SSH with the key through the port forward on 127.0.0.1", async () => {
    const { stdout } = await run("ssh", [
      ...["-i", join(keyDir, "id"), "-p", String(sshPort), "-o", "BatchMode=yes"],
      ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30"],
      "debian@127.0.0.1",
      "hostname; sudo -n id -u",
    ]);
    expect(stdout.trim().split("\n")).toEqual(["deb1", "0"]);
  }, 120_000);

  it("shuts down cleanly on ACPI power-down", async () => {
    const shutdown = vm.qmp.waitForEvent("SHUTDOWN", 180_000);
    await vm.qmp.execute("system_powerdown");
    expect((await shutdown).data).toMatchObject({ guest: true, reason: "guest-shutdown" });
    expect(await waitForExit(vm.pid, 60_000)).toBe(true);
  }, 240_000);
});
