// A real PXE install: a pxe-img built from Debian's packages (the bootstrapped root filesystem is cached
// under the data directory, so reruns take seconds), its files served over HTTP by a server on 127.0.0.1,
// and a QEMU machine (TCG here) that boots the built kernel and initramfs with the command line osimg
// wrote into pxelinux.cfg/default (what pxelinux or iPXE would hand over), a blank disk as /dev/vda and
// user-mode networking: 10.0.2.2, the spec's server_ip, is QEMU's alias for the host's loopback, so every
// byte stays on 127.0.0.1. The installer in the initramfs brings up the static network of [pxe_config],
// streams the tar onto the disk and boots on into the installed system, whose marker unit prints its root
// device, address and command line on the serial console and powers the machine off. The disk then boots
// alone (no -kernel) under BIOS and under UEFI to the same marker; its partitions and files are read from
// the host. A wrong URL (with the network from DHCP) fails in the initramfs with the installer's message,
// the disk untouched; a download that breaks off midway fails with its own message.
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { cp, mkdir, mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildRecord, build } from "../src/build/build.ts";
import { deadEnd } from "../src/images/boot-test.ts";
import { probeAccelerator } from "../src/vms/providers/qemu/accel.ts";
import { buildQemuCommand, type MachineSpec } from "../src/vms/providers/qemu/cmdline.ts";
import { prepareFirmware } from "../src/vms/providers/qemu/firmware.ts";
import { findFreePort } from "../src/vms/providers/qemu/ports.ts";
import { launchQemu, waitForExit } from "../src/vms/providers/qemu/process.ts";
import { ScratchVm } from "../src/vms/providers/qemu/scratch-vm.ts";
import { buildTestDataDir, tempDir } from "./support/build.ts";

const run = promisify(execFile);
const FIXTURES = new URL("./fixtures/pxe-install/", import.meta.url).pathname;
/** TCG: a Debian boot takes 30-60 s here, the install about as long again; room for a loaded machine. */
const BOOT_MS = 600_000;
const DISK_BYTES = 4 * 2 ** 30;
const ESP_OFFSET = 2 ** 20;
const ROOT_OFFSET = (1 + 128) * 2 ** 20;
const MARKER = /osimg-pxe-test up root=(\S+) eth0=\[([^\]]*)\] cmdline=\[([^\]]*)\]/;
const FAILED = /osimg-install: FAILED: (.*)/;

let dir: string;
let out: string;
let record: BuildRecord;
let server: Server;
let port: number;
const requests: { remote: string; method: string; url: string; status: number; complete: boolean }[] = [];
const log = (line: string) => {
  if (line.startsWith("==>") || line.startsWith("build ") || line.startsWith("[test]"))
    process.stderr.write(`${line}\n`);
};

/** The test's spec: the fixture's marker unit, static addressing on QEMU's user network, the server's port. */
function specText(serverPort: number): string {
  return `[from_repo]
suite = "bookworm"
packages = ["linux-image-cloud-amd64", "systemd-sysv", "ifupdown"]
root_passwd = "!"

[[copy_files]]
src = "osimg-pxe-marker"
dst = "/usr/local/sbin/osimg-pxe-marker"
mode = "0755"

[[copy_files]]
src = "osimg-pxe-marker.service"
dst = "/etc/systemd/system/"

[systemd_service]
name = ["osimg-pxe-marker"]

[bootloader]
# "boot-example": SYSLINUX's menu asks for it before the command line can be edited.
passwd = "$6$bootpassword$3eyfktOgPrbFjEojXioHf3AxKjAlWFlXkNwgkvHyNJcSv1TUu4yH1qNAnYzXEqHdLAbJjWc0Q/2F8lVKdzAyH/"

[pxe_config]
dhcp = false
rootfs_name = "rootfs.tar"
disk = "/dev/vda"
server_ip = "10.0.2.2"
server_port = ${serverPort}
local_ip = "10.0.2.15"
netmask = "255.255.255.0"
route_ip = "10.0.2.2"
net_name = "eth0"
`;
}

/** A static file server for the build's output directory, on 127.0.0.1 only; every request is recorded. */
function serve(root: string): Server {
  return createServer((req, res) => {
    const entry = {
      remote: req.socket.remoteAddress ?? "",
      method: req.method ?? "",
      url: req.url ?? "",
      status: 0,
      complete: false,
    };
    requests.push(entry);
    res.on("finish", () => {
      entry.complete = true;
    });
    let name = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/").replace(/^\/+/, "");
    // /broken/NAME: NAME's headers and first 8 MiB, then the connection is dropped.
    const broken = name.startsWith("broken/");
    if (broken) name = name.slice("broken/".length);
    const send = async () => {
      if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(name) || name.split("/").includes(".."))
        throw Object.assign(new Error("bad name"), { code: "ENOENT" });
      const path = join(root, name);
      const info = await stat(path);
      if (!info.isFile()) throw Object.assign(new Error("not a file"), { code: "ENOENT" });
      entry.status = 200;
      res.writeHead(200, { "content-length": info.size, "content-type": "application/octet-stream" });
      if (req.method === "HEAD") return res.end();
      const stream = createReadStream(path, broken ? { end: 8 * 2 ** 20 - 1 } : {});
      if (broken) stream.on("end", () => setTimeout(() => res.destroy(), 100));
      stream.on("error", () => res.destroy());
      res.on("close", () => stream.destroy());
      stream.pipe(res, { end: !broken });
    };
    send().catch(() => {
      entry.status = 404;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    });
  });
}

/**
 * A machine on the project's QEMU command line (accelerator probe, machine spec, launcher, console
 * watcher), booting a disk in place (no overlay: the installer writes it) or, given `direct`, a kernel
 * and initramfs with a command line as a PXE boot loader would hand them over.
 */
class Machine extends ScratchVm {
  static async boot(options: {
    name: string;
    disk: string;
    firmware: "bios" | "efi";
    direct?: { kernel: string; initrd: string; append: string };
  }): Promise<Machine> {
    const vmDir = await mkdtemp(join(tmpdir(), "osimg-pxe-vm-"));
    const spec: MachineSpec = {
      name: options.name,
      cpus: 1,
      memoryBytes: 1024 * 2 ** 20,
      accel: (await probeAccelerator()).accel,
      firmware: await prepareFirmware(options.firmware, { varsPath: join(vmDir, "vars.fd") }),
      disks: [{ kind: "disk", path: options.disk, format: "raw" }],
      network: { kind: "user" },
      sockets: { qmp: join(vmDir, "qmp.sock"), serial: join(vmDir, "serial.sock") },
      serialLog: join(vmDir, "serial.log"),
      pidfile: join(vmDir, "qemu.pid"),
      tcgTranslationCacheMiB: 128,
    };
    const command = buildQemuCommand(spec);
    // QEMU's linuxboot option ROM comes first in the boot order (ahead of the disk's bootindex).
    if (options.direct)
      command.argv.push(
        "-kernel",
        options.direct.kernel,
        "-initrd",
        options.direct.initrd,
        "-append",
        options.direct.append,
      );
    const startedAt = Date.now();
    try {
      const { pid, qmp } = await launchQemu(command, {
        logPath: join(vmDir, "qemu.log"),
        qmpSocket: spec.sockets.qmp,
      });
      return new Machine(vmDir, pid, qmp, spec, startedAt);
    } catch (error) {
      await rm(vmDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The first console line `match` takes; fails at an installer failure, a dead end, QEMU's exit or the timeout. */
  async expectLine<T>(match: (line: string) => T | undefined, what: string): Promise<T> {
    const found = await this.watchConsole<{ value: T } | { failed: string }>(
      (line) => {
        const value = match(line);
        if (value !== undefined) return { value };
        const failure = FAILED.exec(line)?.[0] ?? deadEnd(line);
        return failure ? { failed: failure } : undefined;
      },
      { timeoutMs: BOOT_MS },
    );
    const tail = (await this.lastConsoleLines(25)).join("\n");
    if (found.kind !== "found")
      throw new Error(`${this.spec.name}: no ${what} (${found.kind}); last console lines:\n${tail}`);
    if ("failed" in found.value)
      throw new Error(`${this.spec.name}: ${found.value.failed}; last console lines:\n${tail}`);
    return found.value.value;
  }

  /** Waits for the guest to power the machine off (QEMU exits). */
  async expectPowerOff(): Promise<void> {
    if (!(await waitForExit(this.pid, 120_000)))
      throw new Error(
        `${this.spec.name} did not power off:\n${(await this.lastConsoleLines(15)).join("\n")}`,
      );
  }
}

beforeAll(async () => {
  dir = await tempDir("osimg-pxe-build-");
  out = join(dir, "out");
  server = serve(out);
  port = await findFreePort();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const specDir = join(dir, "spec");
  await mkdir(specDir);
  await cp(FIXTURES, specDir, { recursive: true });
  await writeFile(join(specDir, "spec.toml"), specText(port));
  record = await build({
    specFile: join(specDir, "spec.toml"),
    kind: "pxe-img",
    outDir: out,
    dataDir: buildTestDataDir(),
    log,
  });
  log(
    `[test] built in ${(record.durationMs / 1000).toFixed(1)} s (base ${record.baseCached ? "cached" : "bootstrapped"})`,
  );
}, 1_800_000);

afterAll(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The kernel command line pxelinux would hand over: pxelinux.cfg/default's APPEND line. */
async function pxelinuxAppend(): Promise<string> {
  const config = await readFile(join(out, "pxelinux.cfg", "default"), "utf8");
  const append = /^\s*APPEND (.*)$/m.exec(config)?.[1];
  if (!append) throw new Error(`no APPEND line in pxelinux.cfg/default:\n${config}`);
  return append;
}

async function blankDisk(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, "");
  await truncate(path, DISK_BYTES);
  return path;
}

describe("a pxe-img built from Debian's packages, installed over HTTP by its initramfs", () => {
  let disk: string;

  it("has the installer in its initramfs, and the server's address and port in its boot configurations", async () => {
    expect(record.outputs.map((o) => o.name)).toEqual([
      "rootfs.tar",
      "vmlinuz",
      "initramfs.img",
      "pxelinux.cfg/default",
      "boot.ipxe",
    ]);
    expect(record.steps.map((s) => s.id)).toContain("chroot.pxe-initramfs");
    const { stdout: files } = await run("lsinitramfs", [join(out, "initramfs.img")], { maxBuffer: 64 << 20 });
    const listed = new Set(files.split("\n"));
    for (const path of [
      "scripts/osimg-install",
      "usr/lib/osimg-install/bin/sfdisk",
      "usr/lib/osimg-install/bin/mke2fs",
      "usr/lib/osimg-install/bin/mkfs.fat",
      "usr/lib/osimg-install/bin/tar",
      "usr/lib/osimg-install/bin/mcopy",
      "usr/lib/osimg-install/bin/syslinux",
      "usr/lib/osimg-install/systemd-bootx64.efi",
      "usr/lib/osimg-install/gptmbr.bin",
      "etc/osimg/pxe-install/partitions.sfdisk",
      "etc/osimg/pxe-install/install.conf",
      "usr/bin/wget",
    ])
      expect(listed.has(path), path).toBe(true);
    const url = `http://10.0.2.2:${port}/rootfs.tar`;
    expect(await pxelinuxAppend()).toBe(
      `boot=osimg-install ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off net.ifnames=0 osimg.rootfs=${url} osimg.disk=/dev/vda console=tty0 console=ttyS0,115200n8`,
    );
    expect(await readFile(join(out, "boot.ipxe"), "utf8")).toContain(
      `\ninitrd http://10.0.2.2:${port}/initramfs.img\n`,
    );
  });

  it(
    "installs onto a blank disk and boots on into the installed system (first boot)",
    async () => {
      disk = await blankDisk("disk.raw");
      const machine = await Machine.boot({
        name: "pxe-install",
        disk,
        firmware: "bios",
        direct: {
          kernel: join(out, "vmlinuz"),
          initrd: join(out, "initramfs.img"),
          append: await pxelinuxAppend(),
        },
      });
      try {
        const installed = await machine.expectLine(
          (line) => (/osimg-install: installed /.test(line) ? line : undefined),
          "installer's success line",
        );
        expect(installed).toContain(`installed http://10.0.2.2:${port}/rootfs.tar onto /dev/vda`);
        const marker = await machine.expectLine((line) => MARKER.exec(line) ?? undefined, "marker");
        log(`[test] installed and up in ${((Date.now() - machine.startedAt) / 1000).toFixed(1)} s`);
        const [, root, eth0, cmdline] = marker;
        expect(root).toBe("/dev/vda2");
        // The installed system brought eth0 up itself (ifupdown, /etc/network/interfaces.d/osimg-pxe).
        expect(eth0).toMatch(/^eth0 UP 10\.0\.2\.15\/24/);
        expect(cmdline).toContain("boot=osimg-install");
        await machine.expectPowerOff();
        const serial = await machine.serial();
        for (const step of [
          "network: eth0 10.0.2.15",
          "partitioning /dev/vda",
          "downloading ",
          "boot loaders onto /dev/vda1",
        ])
          expect(serial).toContain(`osimg-install: ${step}`);
      } finally {
        await machine.destroy();
      }
      // The tar came over loopback, whole: the installer's check (a request it ends after the headers),
      // then the download.
      const tarRequests = requests.filter((r) => r.url === "/rootfs.tar");
      expect(tarRequests.length).toBe(2);
      expect(
        tarRequests.every((r) => r.remote === "127.0.0.1" && r.method === "GET" && r.status === 200),
      ).toBe(true);
      expect(tarRequests[1]?.complete).toBe(true);
    },
    BOOT_MS + 180_000,
  );

  it("left a GPT disk like vm-img's: the ESP with both boot loaders, the root file system from the tar", async () => {
    expect(disk, "the install test ran").toBeDefined();
    const { stdout } = await run("sfdisk", ["--json", disk]);
    const table = JSON.parse(stdout).partitiontable;
    expect(table.label).toBe("gpt");
    expect(table.id.toLowerCase()).toBe(record.ids.disk);
    expect(table.partitions).toMatchObject([
      {
        start: 2048,
        size: 262144,
        type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        name: "esp",
        attrs: "LegacyBIOSBootable",
      },
      {
        start: 264192,
        size: DISK_BYTES / 512 - 264192 - 2048,
        type: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        name: "root",
      },
    ]);
    expect(table.partitions[0].uuid.toLowerCase()).toBe(record.ids.esp);
    expect(table.partitions[1].uuid.toLowerCase()).toBe(record.ids.rootPart);
    // The GPT MBR's boot code in the first 440 bytes.
    const handle = await open(disk, "r");
    const mbr = Buffer.alloc(440);
    await handle.read(mbr, 0, 440, 0).finally(() => handle.close());
    expect(mbr.equals((await readFile("/usr/lib/syslinux/mbr/gptmbr.bin")).subarray(0, 440))).toBe(true);
    const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
    const esp = `${disk}@@${ESP_OFFSET}`;
    const { stdout: espFiles } = await run("mdir", ["-a", "-b", "-/", "-i", esp, "::"], { env });
    for (const file of [
      "::/vmlinuz",
      "::/initrd.img",
      "::/syslinux.cfg",
      "::/ldlinux.sys",
      "::/ldlinux.c32",
      "::/menu.c32",
      "::/EFI/BOOT/BOOTX64.EFI",
      "::/loader/entries/osimg.conf",
    ])
      expect(espFiles.split("\n"), file).toContain(file);
    const { stdout: entry } = await run("mtype", ["-i", esp, "::/loader/entries/osimg.conf"], { env });
    expect(entry).toContain(
      `options root=PARTUUID=${record.ids.rootPart} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0`,
    );
    // The root file system: the build's identifiers, files with their owners and modes from the tar.
    const fs = `${disk}?offset=${ROOT_OFFSET}`;
    const { stdout: super_ } = await run("dumpe2fs", ["-h", fs]);
    expect(super_).toMatch(new RegExp(`Filesystem UUID:\\s+${record.ids.rootFs}`));
    expect(super_).toMatch(/Filesystem volume name:\s+root/);
    const cat = async (path: string) => (await run("debugfs", ["-R", `cat ${path}`, fs])).stdout;
    expect(await cat("/etc/fstab")).toBe(`PARTUUID=${record.ids.rootPart} / ext4 errors=remount-ro 0 1\n`);
    expect(await cat("/etc/network/interfaces.d/osimg-pxe")).toContain("address 10.0.2.15");
    expect(await cat("/usr/local/sbin/osimg-pxe-marker")).toBe(
      await readFile(join(FIXTURES, "osimg-pxe-marker"), "utf8"),
    );
    const { stdout: shadow } = await run("debugfs", ["-R", "stat /etc/shadow", fs]);
    expect(shadow).toMatch(/Mode:\s+0640/);
    expect(shadow).toMatch(/Group:\s+42/);
  });

  for (const firmware of ["bios", "efi"] as const)
    it(
      `boots again from the disk alone under ${firmware === "bios" ? "BIOS" : "UEFI"}`,
      async () => {
        expect(disk, "the install test ran").toBeDefined();
        const machine = await Machine.boot({ name: `pxe-installed-${firmware}`, disk, firmware });
        try {
          const [, root, eth0, cmdline] = await machine.expectLine(
            (line) => MARKER.exec(line) ?? undefined,
            "marker",
          );
          log(`[test] ${firmware}: up in ${((Date.now() - machine.startedAt) / 1000).toFixed(1)} s`);
          expect(root).toBe("/dev/vda2");
          expect(eth0).toMatch(/^eth0 UP 10\.0\.2\.15\/24/);
          expect(cmdline).toContain(`root=PARTUUID=${record.ids.rootPart} ro`);
          expect(cmdline).not.toContain("osimg-install");
          await machine.expectPowerOff();
        } finally {
          await machine.destroy();
        }
      },
      BOOT_MS + 180_000,
    );

  it(
    "a wrong URL (over DHCP): the installer says what failed and drops to a shell; the disk is untouched",
    async () => {
      const blank = await blankDisk("untouched.raw");
      // QEMU's user network answers DHCP too: the other way [pxe_config] brings the network up.
      const append = (await pxelinuxAppend())
        .replace(/ ip=\S+ /, " ip=dhcp ")
        .replace("/rootfs.tar ", "/missing.tar ");
      const machine = await Machine.boot({
        name: "pxe-wrong-url",
        disk: blank,
        firmware: "bios",
        direct: { kernel: join(out, "vmlinuz"), initrd: join(out, "initramfs.img"), append },
      });
      try {
        const failed = await machine.watchConsole((line) => FAILED.exec(line)?.[1], { timeoutMs: BOOT_MS });
        expect(failed.kind, (await machine.lastConsoleLines(20)).join("\n")).toBe("found");
        expect(failed.kind === "found" && failed.value).toBe(
          `cannot download http://10.0.2.2:${port}/missing.tar (see wget's message above); /dev/vda is untouched`,
        );
        await machine.waitForConsole(/Leave this shell to try again/, 60_000);
        const deadline = Date.now() + 60_000;
        while (!(await machine.serial()).includes("(initramfs)") && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 250));
        const serial = await machine.serial();
        expect(serial).toMatch(/osimg-install: network: eth0 10\.0\.2\.15\r?\n/);
        expect(serial).toMatch(/wget: server returned error: HTTP\/1\.1 404 Not Found/);
        expect(serial).toContain("(initramfs)");
      } finally {
        await machine.destroy();
      }
      expect(requests.filter((r) => r.url === "/missing.tar").map((r) => r.status)).toEqual([404]);
      // Never written: the sparse file still has no blocks.
      expect((await stat(blank)).blocks).toBe(0);
    },
    BOOT_MS + 60_000,
  );

  it(
    "a download that breaks off: the installer says so (the disk is partly written)",
    async () => {
      const target = await blankDisk("broken.raw");
      const append = (await pxelinuxAppend()).replace("/rootfs.tar ", "/broken/rootfs.tar ");
      const machine = await Machine.boot({
        name: "pxe-broken-download",
        disk: target,
        firmware: "bios",
        direct: { kernel: join(out, "vmlinuz"), initrd: join(out, "initramfs.img"), append },
      });
      try {
        const failed = await machine.watchConsole((line) => FAILED.exec(line)?.[1], { timeoutMs: BOOT_MS });
        expect(failed.kind, (await machine.lastConsoleLines(20)).join("\n")).toBe("found");
        expect(failed.kind === "found" && failed.value).toBe(
          `the download of http://10.0.2.2:${port}/broken/rootfs.tar broke off (wget status 1)`,
        );
        expect(await machine.serial()).toContain("wget: connection closed prematurely");
      } finally {
        await machine.destroy();
      }
    },
    BOOT_MS + 60_000,
  );
});
