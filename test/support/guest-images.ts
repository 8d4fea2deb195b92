// Guest images for tests and benchmarks, built from Debian packages during the run and cached between runs
// (guestImageCacheDir(): <data dir>/cache/guest-images, one qcow2 per recipe key). Both boot under SeaBIOS
// and OVMF from the same file (guest/disk.ts).
//
//   microGuestImage():  the Debian cloud kernel + a busybox initramfs (guest/micro-init.sh): boots in
//                       ~12 s (BIOS) / ~17 s (UEFI) under TCG, reads the NoCloud seed (hostname, runcmd
//                       subset), answers guest-ping and ACPI power-down. ~20 MB, built in seconds.
//   debianGuestImage(): Debian bookworm (mmdebstrap) with systemd, cloud-init (NoCloud only), openssh-server,
//                       qemu-guest-agent, sudo and growpart; CLOUD_USER "debian". ~100 s to build,
//                       60-95 s to boot under TCG.
// Delete the cache directory to rebuild (the Debian image's key cannot see new package versions).
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cachedArtifact, cacheKey, guestImageCacheDir } from "./guest/cache.ts";
import { type CpioEntry, cpioNewc } from "./guest/cpio.ts";
import { assembleBootableDisk, runTool } from "./guest/disk.ts";

export { guestImageCacheDir } from "./guest/cache.ts";

export interface GuestImage {
  name: "micro" | "debian";
  /** A qcow2 file in the cache: use it as a backing file, never write to it. */
  path: string;
  key: string;
  /** The login user that cloud-init (or the micro guest) configures. */
  cloudUser: string;
  /** Whether a guest agent answers on org.qemu.guest_agent.0. */
  hasAgent: boolean;
  /** Both firmwares boot it. */
  firmware: readonly ("bios" | "efi")[];
}

export interface GuestImageOptions {
  cacheDir?: string;
  /** Progress lines (e.g. console.error); silent by default. */
  log?: (line: string) => void;
}

const RECIPE_VERSION = 1;
/** The code that builds images is an input of every image too. */
/** The code that makes the images: a change to any of it makes new ones. */
const RECIPE_FILES = ["./guest/disk.ts", "./guest/cpio.ts", "../../src/build/disk.ts"].map(
  (f) => new URL(f, import.meta.url).pathname,
);

async function recipe(): Promise<string[]> {
  return [String(RECIPE_VERSION), ...(await Promise.all(RECIPE_FILES.map(sha256File)))];
}
const INIT_SCRIPT = new URL("./guest/micro-init.sh", import.meta.url);
const BUSYBOX = "/bin/busybox";
/** Modules the micro guest loads (with their dependencies): the seed disk, the agent port, the power button. */
const MICRO_MODULES = ["virtio_pci", "virtio_blk", "isofs", "virtio_console", "button", "evdev"];
const MICRO_CMDLINE = "console=ttyS0,115200 quiet loglevel=3 panic=-1";

/** Fixed identifiers: the same inputs give the same image. */
const IDS = {
  micro: { disk: "6f2a3c1e-7d0b-4f59-9a61-0c3f5e2d8b10", esp: "6f2a3c1e-7d0b-4f59-9a61-0c3f5e2d8b11" },
  debian: {
    disk: "9b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e50",
    esp: "9b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e51",
    rootPart: "9b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e52",
    rootFs: "9b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e53",
  },
};

async function sha256File(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

/** The host's Debian kernel (package linux-image-cloud-amd64): the newest /boot/vmlinuz-*. */
export async function hostKernel(): Promise<{ version: string; vmlinuz: string; modules: string }> {
  const versions = (await readdir("/boot"))
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length))
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const version = versions.filter((v) => v.endsWith("-cloud-amd64")).pop() ?? versions.pop();
  if (!version)
    throw new Error("no kernel in /boot: install linux-image-cloud-amd64 (node scripts/system-deps.ts test)");
  return { version, vmlinuz: `/boot/vmlinuz-${version}`, modules: `/lib/modules/${version}` };
}

/** Module files (relative to the modules dir) in load order: dependencies first, each once. */
export function moduleLoadOrder(modulesDep: string, builtin: string, wanted: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split("\n")) {
    const [file, rest] = line.split(":");
    if (!file || rest === undefined) continue;
    deps.set(file, rest.trim() === "" ? [] : rest.trim().split(/\s+/));
    byName.set(nameOf(file), file);
  }
  const builtins = new Set(builtin.split("\n").filter(Boolean).map(nameOf));
  const order: string[] = [];
  const visit = (file: string) => {
    if (order.includes(file)) return;
    for (const dep of deps.get(file) ?? []) visit(dep);
    order.push(file);
  };
  for (const name of wanted) {
    if (builtins.has(name)) continue;
    const file = byName.get(name);
    if (!file) throw new Error(`kernel module ${name} is neither in modules.dep nor built in`);
    visit(file);
  }
  return order;
}

function nameOf(file: string): string {
  return (file.split("/").pop() ?? file).replace(/\.ko(\.[a-z]+)?$/, "").replaceAll("-", "_");
}

export async function microGuestImage(options: GuestImageOptions = {}): Promise<GuestImage> {
  const kernel = await hostKernel();
  const init = await readFile(INIT_SCRIPT, "utf8");
  const modules = moduleLoadOrder(
    await readFile(join(kernel.modules, "modules.dep"), "utf8"),
    await readFile(join(kernel.modules, "modules.builtin"), "utf8").catch(() => ""),
    MICRO_MODULES,
  );
  const key = cacheKey({
    recipe: await recipe(),
    kernel: kernel.version,
    kernelSize: (await stat(kernel.vmlinuz)).size,
    busybox: await sha256File(BUSYBOX),
    init,
    modules,
    cmdline: MICRO_CMDLINE,
  });
  const path = await cachedArtifact({
    name: "micro",
    key,
    ext: "qcow2",
    cacheDir: options.cacheDir ?? guestImageCacheDir(),
    timeoutMs: 10 * 60_000,
    build: async (output, work) => {
      options.log?.(`building the micro guest image (kernel ${kernel.version})`);
      const entries: CpioEntry[] = [
        ...["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "cidata", "root"].map(
          (path): CpioEntry => ({ kind: "dir", path }),
        ),
        { kind: "chardev", path: "dev/console", major: 5, minor: 1 },
        { kind: "file", path: "bin/busybox", data: await readFile(BUSYBOX), mode: 0o755 },
        { kind: "symlink", path: "bin/sh", target: "busybox" },
        { kind: "file", path: "init", data: init, mode: 0o755 },
        { kind: "file", path: "etc/modules.order", data: modules.map((m) => `${nameOf(m)}.ko\n`).join("") },
      ];
      for (const m of modules)
        entries.push({
          kind: "file",
          path: `lib/modules/${nameOf(m)}.ko`,
          data: await readFile(join(kernel.modules, m)),
        });
      const initrd = join(work, "initrd.img");
      await writeFile(initrd, cpioNewc(entries));
      await assembleBootableDisk({
        output,
        scratch: join(work, "disk.raw"),
        kernel: kernel.vmlinuz,
        initrd,
        cmdline: MICRO_CMDLINE,
        espMiB: 64,
        diskUuid: IDS.micro.disk,
        espPartUuid: IDS.micro.esp,
      });
    },
  });
  return { name: "micro", path, key, cloudUser: "root", hasAgent: true, firmware: ["bios", "efi"] };
}

const DEBIAN_SUITE = "bookworm";
const DEBIAN_PACKAGES = [
  "linux-image-cloud-amd64",
  "systemd-sysv",
  "udev",
  "cloud-init",
  "cloud-guest-utils",
  "openssh-server",
  "qemu-guest-agent",
  "ifupdown",
  "isc-dhcp-client",
  "netbase",
  "sudo",
  "e2fsprogs",
  // systemd-logind needs D-Bus; without logind the ACPI power button does nothing.
  "dbus",
];
const DEBIAN_ROOT_MiB = 2048;
const DEBIAN_CMDLINE = `root=PARTUUID=${IDS.debian.rootPart} ro console=tty0 console=ttyS0,115200n8`;
/** Files written into the tree after mmdebstrap. */
const DEBIAN_FILES: Record<string, string> = {
  "etc/fstab": `PARTUUID=${IDS.debian.rootPart} / ext4 errors=remount-ro 0 1\n`,
  // Only the seed: no minutes-long probing of cloud metadata services that are not there.
  // RSA host keys take ~10 s to generate under TCG; ed25519 and ECDSA are instant.
  // The locale is C.UTF-8, built into glibc: cloud-init's default (en_US.UTF-8) needs the locales package,
  // and without it update-locale fails and `cloud-init status` says error.
  "etc/cloud/cloud.cfg.d/90-osimg.cfg":
    "datasource_list: [NoCloud, None]\nssh_genkeytypes: [ed25519, ecdsa]\nlocale: C.UTF-8\n",
  // The system locale cloud-init finds: the same as the one asked, so it changes nothing.
  "etc/default/locale": "LANG=C.UTF-8\n",
  "etc/hostname": "localhost\n",
};

export async function debianGuestImage(options: GuestImageOptions = {}): Promise<GuestImage> {
  const key = cacheKey({
    recipe: await recipe(),
    suite: DEBIAN_SUITE,
    packages: DEBIAN_PACKAGES,
    files: DEBIAN_FILES,
    cmdline: DEBIAN_CMDLINE,
    rootMiB: DEBIAN_ROOT_MiB,
  });
  const path = await cachedArtifact({
    name: "debian",
    key,
    ext: "qcow2",
    cacheDir: options.cacheDir ?? guestImageCacheDir(),
    timeoutMs: 30 * 60_000,
    build: async (output, work) => {
      const root = join(work, "root");
      options.log?.(`building the Debian ${DEBIAN_SUITE} guest image with mmdebstrap (about 2 minutes)`);
      await runTool("mmdebstrap", [
        "--quiet",
        "--mode=auto",
        "--variant=minbase",
        `--include=${DEBIAN_PACKAGES.join(",")}`,
        DEBIAN_SUITE,
        root,
      ]);
      for (const [file, text] of Object.entries(DEBIAN_FILES)) {
        await mkdir(join(root, file, ".."), { recursive: true });
        await writeFile(join(root, file), text);
      }
      const boot = await readdir(join(root, "boot"));
      const vmlinuz = boot.find((f) => f.startsWith("vmlinuz-"));
      const initrd = boot.find((f) => f.startsWith("initrd.img-"));
      if (!vmlinuz || !initrd)
        throw new Error(`mmdebstrap gave no kernel or initrd in /boot (${boot.join(", ")})`);
      options.log?.("assembling the Debian disk");
      await assembleBootableDisk({
        output,
        scratch: join(work, "disk.raw"),
        kernel: join(root, "boot", vmlinuz),
        initrd: join(root, "boot", initrd),
        cmdline: DEBIAN_CMDLINE,
        espMiB: 128,
        root: {
          dir: root,
          sizeMiB: DEBIAN_ROOT_MiB,
          partUuid: IDS.debian.rootPart,
          fsUuid: IDS.debian.rootFs,
        },
        diskUuid: IDS.debian.disk,
        espPartUuid: IDS.debian.esp,
      });
      await rm(root, { recursive: true, force: true });
    },
  });
  return { name: "debian", path, key, cloudUser: "debian", hasAgent: true, firmware: ["bios", "efi"] };
}
