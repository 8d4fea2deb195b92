// The full path with a real Debian cloud image (systemd, cloud-init, sshd, qemu-guest-agent; built with
// mmdebstrap from Debian's packages and cached): created through the API with an SSH key and user data,
// Ready by the guest agent, reached with `osimg vm ssh`, checked from inside the guest, stopped by ACPI.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { debianGuestImage } from "./support/guest-images.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { startTestServer, type TestServer, tempDir } from "./support/server.ts";
import { BOOT_MS, qemuProcesses, VmApi } from "./support/vm-api.ts";

const run = promisify(execFile);
const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
let images: FixtureServer;
let server: TestServer;
let dataDir: string;
let keyPath: string;
const vms = new VmApi(() => server);

beforeAll(async () => {
  const debian = await debianGuestImage({ log: (line) => process.stderr.write(`${line}\n`) });
  const www = tempDir("osimg-debian-www-");
  await symlink(debian.path, join(www, "debian.qcow2"));
  images = await startFixtureServer({ root: www });
  process.env.OSIMG_FETCH_ALLOW = new URL(images.url).host;
  dataDir = tempDir("osimg-debian-data-");
  keyPath = join(tempDir("osimg-debian-key-"), "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "osimg-test", "-f", keyPath]);
  const catalogPath = join(dataDir, "catalog.yaml");
  await writeFile(
    catalogPath,
    `images:
  - OS_NAME: "Debian test"
    CLOUD_USER: ${debian.cloudUser}
    OS_IMAGE_URL: "${images.url}/debian.qcow2"
    MIN_MEMORY: "1Gi"
    MIN_VCPU: "1"
    MIN_STORAGE: "4Gi"
    FIRMWARE_TYPE: "bios"
    CLOUD_INIT: |
      #cloud-config
      runcmd:
        - echo catalog-runcmd > /var/tmp/osimg-marker
`,
  );
  server = await startTestServer({ catalogPath, dataDir });
}, 15 * 60_000);

afterAll(async () => {
  await server?.stop();
  await images?.stop();
  delete process.env.OSIMG_FETCH_ALLOW;
});

/** Runs `osimg vm ssh` asynchronously: the API server it asks lives in this process. */
async function osimgSsh(command: string[], timeoutMs = 60_000): Promise<string> {
  const args = [
    BIN,
    "vm",
    "ssh",
    "deb1",
    "-i",
    keyPath,
    "--server",
    server.url,
    "-n",
    "demo",
    "--",
    ...command,
  ];
  const { stdout } = await run(process.execPath, args, { encoding: "utf8", timeout: timeoutMs });
  return stdout.trim();
}

describe("a Debian cloud image on local QEMU", () => {
  it(
    "becomes Ready by the guest agent, with the address it reports",
    async () => {
      const response = await vms.post(vms.url(), {
        name: "deb1",
        image: "Debian test",
        memory: "1Gi",
        sshKeys: [readFileSync(`${keyPath}.pub`, "utf8").trim()],
        userData: "#cloud-config\nruncmd:\n  - echo user-runcmd >> /var/tmp/osimg-marker\n",
      });
      expect(response.status).toBe(201);
      const vm = await vms.waitForPhase("deb1", "Ready", BOOT_MS * 2);
      expect(vm.status.conditions.find((c) => c.type === "Ready")?.reason).toBe("AgentConnected");
      expect(vm.status.ipAddresses).toContain("10.0.2.15");
    },
    BOOT_MS * 2 + 30_000,
  );

  it("is reachable with `osimg vm ssh` as CLOUD_USER, and cloud-init applied hostname, key and runcmd", async () => {
    // The agent can answer before sshd listens; ssh is retried for a while.
    let hostname = "";
    for (let attempt = 0; attempt < 20 && hostname === ""; attempt++) {
      try {
        hostname = await osimgSsh(["hostname"]);
      } catch {
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    expect(hostname).toBe("deb1");
    // Ready means the agent answers; cloud-init's final stage (runcmd) may run for minutes more under TCG
    // on a busy machine. "done", not "error": every module of the image's cloud-init succeeded.
    const status = await osimgSsh(["cloud-init", "status", "--wait", "--long"], 420_000);
    expect(status).toMatch(/^status: done$/m);
    expect(await osimgSsh(["cat", "/var/tmp/osimg-marker"])).toBe("catalog-runcmd\nuser-runcmd");
    expect(await osimgSsh(["cat", ".ssh/authorized_keys"])).toContain("osimg-test");
    expect(await osimgSsh(["sudo", "-n", "true", "&&", "echo", "sudo-ok"])).toBe("sudo-ok");
  }, 600_000);

  it("stops cleanly on ACPI power-down and is deleted without leftovers", async () => {
    expect((await vms.post(`${vms.url("deb1")}/stop`)).status).toBe(200);
    await vms.waitForPhase("deb1", "Stopped", 120_000);
    expect((await vms.delete("deb1")).status).toBe(204);
    expect(await qemuProcesses(dataDir)).toEqual([]);
  }, 150_000);
});
