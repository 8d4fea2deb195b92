// VMs on the local QEMU provider, end to end through the HTTP API: a real micro guest (Debian kernel +
// busybox initramfs, built from Debian packages and cached) served from a local HTTP server, pulled into
// the image store, booted under TCG with its NoCloud seed, and driven through its whole lifecycle.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vm } from "../src/vms/model.ts";
import { microGuestImage } from "./support/guest-images.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { eventually, startTestServer, type TestServer, tempDir } from "./support/server.ts";
import { BOOT_MS, qemuProcesses, VmApi } from "./support/vm-api.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
let images: FixtureServer;
let server: TestServer;
let dataDir: string;
let catalogPath: string;
let stalled: Server;

const vms = new VmApi(() => server);
const qemu = () => qemuProcesses(dataDir);

beforeAll(async () => {
  const micro = await microGuestImage();
  const www = tempDir("osimg-vm-www-");
  await symlink(micro.path, join(www, "micro.qcow2"));
  images = await startFixtureServer({ root: www });
  // A mirror that answers the headers of a huge image and then never sends a byte.
  stalled = createServer((_request, response) => {
    response.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(2 ** 30),
    });
  });
  await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
  const stalledHost = `127.0.0.1:${(stalled.address() as AddressInfo).port}`;
  // The server refuses to fetch from loopback unless the mirror is allow-listed.
  process.env.OSIMG_FETCH_ALLOW = `${new URL(images.url).host},${stalledHost}`;
  dataDir = tempDir("osimg-vm-data-");
  catalogPath = join(dataDir, "catalog.yaml");
  const entry = (name: string, firmware: string, url = `${images.url}/micro.qcow2`) =>
    `  - OS_NAME: "${name}"\n    CLOUD_USER: root\n    OS_IMAGE_URL: "${url}"\n    MIN_MEMORY: "256Mi"\n    MIN_VCPU: "1"\n    MIN_STORAGE: "1Gi"\n    FIRMWARE_TYPE: "${firmware}"\n    CLOUD_INIT: |\n      #cloud-config\n      runcmd:\n        - echo marker-from-catalog\n`;
  const stalledEntry = entry("Stalled", "bios", `http://${stalledHost}/huge.qcow2`);
  await writeFile(
    catalogPath,
    `images:\n${entry("Micro", "bios")}${entry("Micro EFI", "efi")}${stalledEntry}`,
  );
  server = await startTestServer({ catalogPath, dataDir });
}, 600_000);

afterAll(async () => {
  await server?.stop();
  await images?.stop();
  stalled?.closeAllConnections();
  stalled?.close();
  delete process.env.OSIMG_FETCH_ALLOW;
});

describe("VMs on local QEMU", () => {
  it("refuses sizes below the entry's minimums, listing each field", async () => {
    const response = await vms.post(vms.url(), {
      name: "small",
      image: "Micro",
      cpu: 0,
      memory: "128Mi",
      storage: "512Mi",
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { details: { field: string; minimum: string }[] };
    expect(body.details.map((d) => [d.field, d.minimum])).toEqual([
      ["cpu", "1"],
      ["memory", "256Mi"],
      ["storage", "1Gi"],
    ]);
  });

  it("shows what it would run before creating anything (dry run)", async () => {
    const response = await vms.post(`${vms.url()}?dryRun=true`, { name: "preview", image: "Micro" });
    expect(response.status).toBe(200);
    const { rendered } = (await response.json()) as { rendered: { format: string; text: string } };
    expect(rendered.format).toBe("argv");
    expect(rendered.text).toContain("qemu-system-x86_64");
    expect((await server.get(vms.url("preview"))).status).toBe(404);
  });

  it(
    "creates a VM that pulls its image, boots with the NoCloud seed and becomes Ready",
    async () => {
      const response = await vms.post(vms.url(), {
        name: "m1",
        image: "Micro",
        sshKeys: [],
        userData: "#cloud-config\nruncmd:\n  - echo marker-from-user\n",
      });
      expect(response.status).toBe(201);
      expect(((await response.json()) as Vm).status.phase).toBe("Provisioning");
      const vm = await vms.waitForPhase("m1", "Ready");
      expect(vm.status.runtime).toMatch(/^qemu (tcg|kvm), machine q35$/);
      expect(vm.status.timeToReadyMs).toBeGreaterThan(0);
      expect(vm.status.conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });
      expect(vm.status.ssh).toMatchObject({ host: "127.0.0.1", user: "root" });
      const serial = await readFile(join(dataDir, "vms/demo/m1/serial.log"), "utf8");
      expect(serial).toContain("hostname=m1");
      expect(serial).toContain("marker-from-catalog");
      expect(serial).toContain("marker-from-user");
      expect(await qemu()).toHaveLength(1);
    },
    BOOT_MS + 60_000,
  );

  it("refuses a second VM of the same name, and an action the phase does not allow", async () => {
    expect((await vms.post(vms.url(), { name: "m1", image: "Micro" })).status).toBe(409);
    const response = await vms.post(`${vms.url("m1")}/unpause`);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: "invalid_action" });
  });

  it("bridges the serial console over WebSocket: the guest answers what is typed", async () => {
    const output = await vms.consoleExchange("m1", "hostname\n", /\nm1\r?\n/);
    expect(output).toContain("m1");
  }, 60_000);

  it("serves VNC over WebSocket (the RFB handshake, ready for noVNC)", async () => {
    const socket = new WebSocket(`${server.url.replace("http", "ws")}${vms.url("m1")}/vnc`, ["binary"]);
    socket.binaryType = "arraybuffer";
    const greeting = await new Promise<string>((resolve, reject) => {
      socket.onmessage = (event) => resolve(Buffer.from(event.data as ArrayBuffer).toString("latin1"));
      socket.onerror = () => reject(new Error("VNC did not open"));
    });
    socket.close();
    expect(greeting).toMatch(/^RFB 003\.00\d\n/);
  });

  it("attaches a terminal with `osimg vm console`, and Ctrl-] detaches", async () => {
    const child = spawn(
      process.execPath,
      [BIN, "vm", "console", "m1", "--server", server.url, "-n", "demo"],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("latin1");
    });
    await eventually(() => output.length > 0, 30_000, "console output");
    child.stdin.write("echo console-$((6*7))\n");
    await eventually(() => output.includes("console-42"), 30_000, "the guest's answer");
    child.stdin.write(Buffer.from([0x1d]));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
  }, 90_000);

  it("pauses and unpauses", async () => {
    expect(((await (await vms.post(`${vms.url("m1")}/pause`)).json()) as Vm).status.phase).toBe("Paused");
    expect(((await (await vms.post(`${vms.url("m1")}/unpause`)).json()) as Vm).status.phase).toBe("Ready");
    await vms.consoleExchange("m1", "echo still-$((20+22))\n", /still-42/);
  }, 60_000);

  it(
    "restarts into a new boot",
    async () => {
      const bootIds = async () =>
        (await readFile(join(dataDir, "vms/demo/m1/serial.log"), "utf8")).match(/boot id=\S+/g) ?? [];
      const before = await bootIds();
      expect((await vms.post(`${vms.url("m1")}/restart`)).status).toBe(200);
      await vms.waitForPhase("m1", "Ready");
      await eventually(async () => (await bootIds()).length > before.length, 60_000, "a new boot");
    },
    BOOT_MS,
  );

  it(
    "stops cleanly (ACPI power-down) and starts again",
    async () => {
      expect((await vms.post(`${vms.url("m1")}/stop`)).status).toBe(200);
      await vms.waitForPhase("m1", "Stopped", 90_000);
      expect(await qemu()).toEqual([]);
      expect((await vms.post(`${vms.url("m1")}/start`)).status).toBe(200);
      await vms.waitForPhase("m1", "Ready");
    },
    BOOT_MS + 90_000,
  );

  it("survives a server restart: running VMs are re-attached", async () => {
    const pids = await qemu();
    await server.stop();
    expect(await qemu()).toEqual(pids);
    server = await startTestServer({ catalogPath, dataDir });
    const vm = await vms.get("m1");
    expect(vm.status.phase).toBe("Ready");
    await vms.consoleExchange("m1", "echo attached-$((1+1))\n", /attached-2/);
  }, 120_000);

  it("tells what happened to a VM that died while the server was down", async () => {
    await server.stop();
    for (const pid of await qemu()) process.kill(pid, "SIGKILL");
    await eventually(async () => (await qemu()).length === 0, 10_000, "QEMU to die");
    server = await startTestServer({ catalogPath, dataDir });
    const vm = await vms.get("m1");
    expect(vm.status.phase).toBe("Failed");
    expect(vm.status.conditions.find((c) => c.type === "Failure")).toMatchObject({
      reason: "ExitedWhileAway",
    });
  }, 120_000);

  it("deletes a VM and everything created for it", async () => {
    const response = await vms.delete("m1");
    expect(response.status).toBe(204);
    expect((await server.get(vms.url("m1"))).status).toBe(404);
    expect(existsSync(join(dataDir, "vms/demo/m1"))).toBe(false);
    expect(await qemu()).toEqual([]);
  }, 60_000);

  it("deletes a VM at once while its image pull is stalled", async () => {
    expect((await vms.post(vms.url(), { name: "stuck", image: "Stalled" })).status).toBe(201);
    await eventually(
      async () => (await vms.get("stuck")).status.conditions.some((c) => c.reason === "Pulling"),
      10_000,
      "the pull to start",
    );
    const started = Date.now();
    expect((await vms.delete("stuck")).status).toBe(204);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await server.get(vms.url("stuck"))).status).toBe(404);
  }, 30_000);

  it(
    "boots the same image under UEFI (OVMF with a per-VM vars copy)",
    async () => {
      expect((await vms.post(vms.url(), { name: "m2", image: "Micro EFI" })).status).toBe(201);
      const vm = await vms.waitForPhase("m2", "Ready");
      expect(vm.status.runtime).toContain("machine q35");
      expect(existsSync(join(dataDir, "vms/demo/m2/efi-vars.fd"))).toBe(true);
      const response = await vms.delete("m2");
      expect(response.status).toBe(204);
      expect(await qemu()).toEqual([]);
    },
    BOOT_MS + 60_000,
  );
});
