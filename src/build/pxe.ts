// The pxe-img kind's installer: what the plan puts into the image so that its initramfs installs it.
// Pure, like plan.ts: strings and paths, nothing read or run.
//
// Files served to a machine that boots over the network:
//   vmlinuz + initramfs.img (pxelinux over TFTP, or iPXE over HTTP), the root filesystem tar over HTTP
//   (http://server_ip[:server_port]/rootfs_name).
// The initramfs is the image's own (initramfs-tools), regenerated inside the image (mmdebstrap
// --variant=custom, the build's namespace) with two more pieces from src/build/pxe/:
//   /etc/initramfs-tools/hooks/osimg-install    puts sfdisk, mke2fs, mkfs.fat, GNU tar, mtools, syslinux,
//                                                the boot loaders and /etc/osimg/pxe-install into it;
//   /etc/initramfs-tools/scripts/osimg-install  the boot script `boot=osimg-install` selects: network from
//                                                ip=, the tar from osimg.rootfs= onto osimg.disk=, then on
//                                                into the installed system.
// The disk it writes is laid out like vm-img's (disk.ts): GPT, a 128 MiB ESP (systemd-boot for UEFI,
// SYSLINUX + the GPT MBR for BIOS, kernel and initrd on it) and the root file system on the rest of the
// disk, with the identifiers derived from the spec; /etc/osimg/pxe-install holds them as files (the
// sfdisk script, the boot loader configurations, install.conf), written here, read as data by the
// installer. No value of the spec is ever part of the installer's shell text: the command line values
// are checked against patterns at boot, the rest are these generated files.
import { fileURLToPath } from "node:url";
import { ESP_TYPE, loaderConf, loaderEntry, ROOT_X86_64_TYPE, syslinuxConf } from "./disk.ts";
import type { RootfsEdits } from "./rootfs.ts";
import type { PxeConfig } from "./spec.ts";

/** src/build/pxe/: the hook and boot script copied into images, and the mmdebstrap hook. */
export const PXE_DIR = fileURLToPath(new URL("./pxe/", import.meta.url));
/** mmdebstrap customize hook: update-initramfs inside the image. */
export const PXE_INITRAMFS_HOOK = fileURLToPath(new URL("./pxe/mmdebstrap-hook.sh", import.meta.url));
/** Where the installer's configuration lives in the image and in its initramfs. */
export const PXE_INSTALL_DIR = "/etc/osimg/pxe-install";

/**
 * What the installer needs in the image, besides a kernel and an init: initramfs-tools and busybox (the
 * initramfs, wget), udev (devices and network interfaces in the initramfs), zstd (its compression),
 * fdisk, e2fsprogs, dosfstools (partitions and file systems), mtools, syslinux, syslinux-common and
 * systemd-boot-efi (the installed disk's boot loaders, as disk.ts puts them on vm-img disks).
 */
export const PXE_PACKAGES = [
  "busybox",
  "dosfstools",
  "e2fsprogs",
  "fdisk",
  "initramfs-tools",
  "mtools",
  "syslinux",
  "syslinux-common",
  "systemd-boot-efi",
  "udev",
  "zstd",
] as const;

/** Kernel names (eth0): predictable interface names would rename the interface the spec names. */
const kernelInterfaceName = (name: string | undefined) => name !== undefined && /^eth\d+$/.test(name);

/** http://server_ip[:server_port] (the port only when it is not 80). */
export function pxeServer(pxe: PxeConfig): string {
  const port = pxe.server_port ?? 80;
  return `http://${pxe.server_ip}${port === 80 ? "" : `:${port}`}`;
}

/**
 * The installer's kernel arguments: boot=osimg-install (the initramfs boot script), the kernel's ip=
 * argument (ip=CLIENT::GATEWAY:NETMASK::DEVICE:off, or dhcp) that initramfs-tools' configure_networking
 * reads, the tar's URL and the target disk; net.ifnames=0 when the spec names a kernel interface (eth0).
 */
export function pxeKernelArgs(pxe: PxeConfig): string {
  const ip = pxe.dhcp ? "ip=dhcp" : `ip=${pxe.local_ip}::${pxe.route_ip}:${pxe.netmask}::${pxe.net_name}:off`;
  const ifnames = kernelInterfaceName(pxe.net_name) ? " net.ifnames=0" : "";
  return `boot=osimg-install ${ip}${ifnames} osimg.rootfs=${pxeServer(pxe)}/${pxe.rootfs_name} osimg.disk=${pxe.disk}`;
}

/** The kernel command line of the installed disk (systemd-boot and SYSLINUX on its ESP). */
export function installedCmdline(pxe: PxeConfig, rootPartUuid: string): string {
  const ifnames = kernelInterfaceName(pxe.net_name) ? " net.ifnames=0" : "";
  return `root=PARTUUID=${rootPartUuid} ro console=tty0 console=ttyS0,115200n8${ifnames}`;
}

export interface PxeInstallInput {
  pxe: PxeConfig;
  ids: { disk: string; esp: string; rootPart: string; rootFs: string };
  espMiB: number;
  /** Install SYSLINUX and the GPT MBR (from_repo.legacy_bios). */
  bios: boolean;
  bootPassword?: string | undefined;
}

/** The sfdisk script of the target disk: the ESP, then the root partition on the rest of the disk. */
export function pxePartitionTable(input: PxeInstallInput): string {
  const sector = 512;
  const espStart = 2 ** 20 / sector;
  const espSize = (input.espMiB * 2 ** 20) / sector;
  return [
    "label: gpt",
    `label-id: ${input.ids.disk}`,
    "unit: sectors",
    `start=${espStart}, size=${espSize}, type=${ESP_TYPE}, uuid=${input.ids.esp}, name="esp"${input.bios ? ', attrs="LegacyBIOSBootable"' : ""}`,
    `start=${espStart + espSize}, type=${ROOT_X86_64_TYPE}, uuid=${input.ids.rootPart}, name="root"`,
    "",
  ].join("\n");
}

/** The installer's pieces in the image: its configuration (generated) and its scripts (copied). */
export function pxeInstallEdits(input: PxeInstallInput): Pick<RootfsEdits, "files" | "copies"> {
  const cmdline = installedCmdline(input.pxe, input.ids.rootPart);
  const conf = [
    "# osimg PXE installer (osimg build pxe-img): the identifiers of the disk it writes",
    `root_fsuuid=${input.ids.rootFs}`,
    `esp_volume_id=${input.ids.esp.replace(/-/g, "").slice(0, 8)}`,
    `bios=${input.bios ? 1 : 0}`,
    `syslinux_menu=${input.bios && input.bootPassword ? 1 : 0}`,
    "",
  ].join("\n");
  const file = (name: string, content: string) => ({
    path: `${PXE_INSTALL_DIR}/${name}`,
    content,
    mode: 0o644,
  });
  const files = [
    file("install.conf", conf),
    file("partitions.sfdisk", pxePartitionTable(input)),
    file("loader.conf", loaderConf(input.bootPassword !== undefined)),
    file("osimg.conf", loaderEntry(cmdline)),
  ];
  if (input.bios) files.push(file("syslinux.cfg", syslinuxConf(cmdline, input.bootPassword)));
  // initramfs-tools' fsck hook probes the root device named in /etc/fstab, which does not exist while
  // the image is built: it would leave fsck.ext4 out of the initramfs (and say so).
  files.push({
    path: "/etc/initramfs-tools/conf.d/osimg-fstype",
    content: "# osimg pxe-img: the root file system the installer makes\nFSTYPE=ext4\n",
    mode: 0o644,
  });
  return {
    files,
    copies: [
      {
        field: "pxe_config",
        root: PXE_DIR,
        src: "initramfs-hook.sh",
        dst: "/etc/initramfs-tools/hooks/osimg-install",
        mode: 0o755,
      },
      {
        field: "pxe_config",
        root: PXE_DIR,
        src: "osimg-install.sh",
        dst: "/etc/initramfs-tools/scripts/osimg-install",
        mode: 0o644,
      },
    ],
  };
}
