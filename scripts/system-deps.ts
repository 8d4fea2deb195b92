// Installs the Debian packages osimg needs, when they are missing. Idempotent: a package is checked by a
// file it ships, and apt runs only when one is absent. Without root or apt it says what is missing.
//   node scripts/system-deps.ts runtime|test
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

interface SystemPackage {
  name: string;
  /** A file the package installs: its presence means the package is there. */
  provides: string;
  why: string;
}

const RUNTIME: SystemPackage[] = [
  {
    name: "qemu-system-x86",
    provides: "/usr/bin/qemu-system-x86_64",
    why: "runs VMs on the local QEMU provider",
  },
  { name: "qemu-utils", provides: "/usr/bin/qemu-img", why: "creates disk overlays and converts images" },
  { name: "ovmf", provides: "/usr/share/OVMF/OVMF_CODE_4M.fd", why: "UEFI firmware for FIRMWARE_TYPE efi" },
  { name: "swtpm", provides: "/usr/bin/swtpm", why: "a TPM for FEATURES tpm" },
];

/** What `osimg build` runs (node scripts/system-deps.ts build). */
const BUILD: SystemPackage[] = [
  { name: "mmdebstrap", provides: "/usr/bin/mmdebstrap", why: "osimg build: bootstraps root filesystems" },
  { name: "uidmap", provides: "/usr/bin/newuidmap", why: "osimg build without root: user namespaces" },
  { name: "fdisk", provides: "/usr/sbin/sfdisk", why: "osimg build: GPT partition tables" },
  { name: "dosfstools", provides: "/usr/sbin/mkfs.vfat", why: "osimg build: the ESP" },
  { name: "mtools", provides: "/usr/bin/mcopy", why: "osimg build: files onto the ESP without mounting" },
  { name: "e2fsprogs", provides: "/usr/sbin/mkfs.ext4", why: "osimg build: ext4 from a directory" },
  { name: "syslinux", provides: "/usr/bin/syslinux", why: "osimg build: BIOS boot loader" },
  {
    name: "syslinux-common",
    provides: "/usr/lib/syslinux/mbr/gptmbr.bin",
    why: "osimg build: GPT MBR, menu.c32",
  },
  {
    name: "systemd-boot-efi",
    provides: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    why: "osimg build: UEFI boot loader",
  },
  { name: "qemu-utils", provides: "/usr/bin/qemu-img", why: "osimg build: qcow2 from the raw disk" },
];

const TEST: SystemPackage[] = [
  ...RUNTIME,
  // The builder's tools also make the test guests' disks (mmdebstrap, sfdisk, mtools, SYSLINUX, systemd-boot).
  ...BUILD,
  { name: "shellcheck", provides: "/usr/bin/shellcheck", why: "builder tests check the --debug scripts" },
  { name: "skopeo", provides: "/usr/bin/skopeo", why: "builder tests inspect OCI images" },
  { name: "umoci", provides: "/usr/bin/umoci", why: "builder tests unpack OCI images" },
  {
    name: "docker-registry",
    provides: "/usr/bin/docker-registry",
    why: "builder tests push to a real registry",
  },
  { name: "genisoimage", provides: "/usr/bin/isoinfo", why: "tests read the NoCloud ISO with isoinfo" },
  { name: "xz-utils", provides: "/usr/bin/xz", why: "image intake tests make xz-wrapped fixtures" },
  { name: "bzip2", provides: "/bin/bzip2", why: "image intake tests make bzip2-wrapped fixtures" },
  { name: "zstd", provides: "/usr/bin/zstd", why: "image intake tests unwrap zstd fixtures for qemu-img" },
  { name: "curl", provides: "/usr/bin/curl", why: "the intake benchmark's baseline (curl | sha256sum)" },
  { name: "swtpm-tools", provides: "/usr/bin/swtpm_ioctl", why: "tests talk to a swtpm control socket" },
  {
    name: "linux-image-cloud-amd64",
    provides: "/usr/share/bug/linux-image-cloud-amd64/presubj",
    why: "the kernel and modules of the micro test guest",
  },
  { name: "busybox-static", provides: "/bin/busybox", why: "the userland of the micro test guest" },
  {
    name: "initramfs-tools-core",
    provides: "/usr/bin/lsinitramfs",
    why: "the PXE install test lists the built initramfs (lsinitramfs)",
  },
  { name: "openssh-client", provides: "/usr/bin/ssh", why: "tests log in to the Debian guest over SSH" },
  { name: "binutils", provides: "/usr/bin/as", why: "tests assemble the accelerator probe guest" },
  { name: "chromium", provides: "/usr/bin/chromium", why: "the UI's end-to-end tests run in a real browser" },
];

const GROUPS: Record<string, SystemPackage[]> = { runtime: RUNTIME, build: BUILD, test: TEST };

function missingOf(packages: SystemPackage[]): SystemPackage[] {
  return packages.filter((p) => !existsSync(p.provides));
}

function describe(packages: SystemPackage[]): string {
  return packages.map((p) => `  ${p.name} (${p.why})`).join("\n");
}

export function ensureSystemPackages(group: string): boolean {
  const packages = GROUPS[group];
  if (!packages)
    throw new Error(`unknown package group "${group}"; known: ${Object.keys(GROUPS).join(", ")}`);
  const missing = missingOf(packages);
  if (missing.length === 0) return true;
  const canInstall = process.getuid?.() === 0 && existsSync("/usr/bin/apt-get");
  if (!canInstall) {
    process.stderr.write(
      `osimg: these Debian packages are missing and cannot be installed here (needs root and apt-get):\n${describe(missing)}\n` +
        `Install them with: sudo apt-get install -y ${missing.map((p) => p.name).join(" ")}\n`,
    );
    return false;
  }
  process.stderr.write(`osimg: installing missing Debian packages:\n${describe(missing)}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing.map((p) => p.name)], {
      stdio: "inherit",
      env,
    });
  let result = install();
  if (result.status !== 0) {
    execFileSync("apt-get", ["update"], { stdio: "inherit", env });
    result = install();
  }
  const still = missingOf(packages);
  if (still.length > 0) {
    process.stderr.write(`osimg: still missing after apt-get:\n${describe(still)}\n`);
    return false;
  }
  return true;
}

if (import.meta.main) {
  const ok = ensureSystemPackages(process.argv[2] ?? "runtime");
  // --optional (npm start): the catalog API works without them; say what is missing and go on.
  process.exit(ok || process.argv.includes("--optional") ? 0 : 1);
}
