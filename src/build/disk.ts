// A disk image that boots under both BIOS (SeaBIOS, KubeVirt's default) and UEFI (OVMF), assembled in a
// plain file without loop devices or mounts:
//   GPT: partition 1 = ESP (FAT32, attribute LegacyBIOSBootable), 2 = ext4 root, 3 = optional ext4 persist;
//   UEFI: EFI/BOOT/BOOTX64.EFI is systemd-boot with one loader entry;
//   BIOS: gptmbr.bin in the first 440 bytes chain-loads the LegacyBIOSBootable partition, where SYSLINUX
//         (installed with --offset) reads /syslinux.cfg;
//   both boot /vmlinuz and /initrd.img from the ESP with the same command line.
// sfdisk partitions the file, mkfs.vfat --offset and mtools fill the ESP, mkfs.ext4 -E offset= -d writes
// the file systems from directories. diskSteps() is pure: the steps, as argv, for the plan.
import { dirname, join } from "node:path";
import { type RunContext, runSteps } from "./run.ts";
import type { ExecStep, Step } from "./steps.ts";

export const SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
export const GPT_MBR = "/usr/lib/syslinux/mbr/gptmbr.bin";
export const SYSLINUX_MODULES = "/usr/lib/syslinux/modules/bios";
export const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
export const ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const MiB = 2 ** 20;
const SECTOR = 512;

export interface Ext4Partition {
  /** A directory copied into the file system (mkfs.ext4 -d). */
  dir: string;
  sizeMiB: number;
  partUuid: string;
  fsUuid: string;
  label: string;
}

export interface DiskInput {
  /** The raw disk file written. */
  raw: string;
  /** A directory for the boot loader configuration files. */
  work: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  espMiB: number;
  root?: Ext4Partition;
  persist?: Ext4Partition;
  diskUuid: string;
  espPartUuid: string;
  /** Install SYSLINUX and the GPT MBR (BIOS boot); UEFI boot is always there. */
  bios: boolean;
  /** A crypt hash: editing the kernel command line at boot needs it (BIOS) or is off (UEFI). */
  bootPassword?: string | undefined;
  /** mtime of the files put on the ESP, and the time of the file systems. */
  epoch: number;
  /** Wraps commands that read directories of image files (mkfs.ext4 -d) when run without root. */
  wrap?: (argv: string[]) => string[];
  /** Converted to this qcow2 at the end, when given. */
  qcow2?: string;
}

export interface DiskLayout {
  espStart: number;
  espSize: number;
  rootStart: number;
  rootSize: number;
  persistStart: number;
  persistSize: number;
  total: number;
}

export function diskLayout(input: Pick<DiskInput, "espMiB" | "root" | "persist">): DiskLayout {
  const espStart = 1 * MiB;
  const espSize = input.espMiB * MiB;
  const rootStart = espStart + espSize;
  const rootSize = (input.root?.sizeMiB ?? 0) * MiB;
  const persistStart = rootStart + rootSize;
  const persistSize = (input.persist?.sizeMiB ?? 0) * MiB;
  // 1 MiB at the end for the backup GPT.
  return {
    espStart,
    espSize,
    rootStart,
    rootSize,
    persistStart,
    persistSize,
    total: persistStart + persistSize + 1 * MiB,
  };
}

/** The sfdisk script of the layout. */
export function partitionTable(input: DiskInput, layout: DiskLayout): string {
  const lines = [
    "label: gpt",
    `label-id: ${input.diskUuid}`,
    "unit: sectors",
    `start=${layout.espStart / SECTOR}, size=${layout.espSize / SECTOR}, type=${ESP_TYPE}, uuid=${input.espPartUuid}, name="esp"${input.bios ? ', attrs="LegacyBIOSBootable"' : ""}`,
  ];
  if (input.root)
    lines.push(
      `start=${layout.rootStart / SECTOR}, size=${layout.rootSize / SECTOR}, type=${ROOT_X86_64_TYPE}, uuid=${input.root.partUuid}, name="root"`,
    );
  if (input.persist)
    lines.push(
      `start=${layout.persistStart / SECTOR}, size=${layout.persistSize / SECTOR}, type=${LINUX_TYPE}, uuid=${input.persist.partUuid}, name="persist"`,
    );
  return `${lines.join("\n")}\n`;
}

export function loaderConf(password: boolean): string {
  // systemd-boot has no password: with a boot loader password set, its command line editor is off.
  return `default osimg.conf\ntimeout 0\n${password ? "editor no\n" : ""}`;
}

export function loaderEntry(cmdline: string): string {
  return `title osimg\nlinux /vmlinuz\ninitrd /initrd.img\noptions ${cmdline}\n`;
}

export function syslinuxConf(cmdline: string, password?: string): string {
  const label = `LABEL osimg\n  MENU LABEL osimg\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND ${cmdline}\n`;
  if (!password) return `DEFAULT osimg\nPROMPT 0\nTIMEOUT 0\n${label}`;
  // menu.c32 asks for the master password before [Tab] (edit) or [Esc] (prompt) work.
  return `UI menu.c32\nMENU TITLE osimg\nMENU MASTER PASSWD ${password}\nNOESCAPE 1\nPROMPT 0\nTIMEOUT 10\nDEFAULT osimg\n${label}`;
}

function ext4Step(
  id: string,
  part: Ext4Partition,
  raw: string,
  start: number,
  size: number,
  input: DiskInput,
): ExecStep {
  const argv = [
    "mkfs.ext4",
    "-q",
    "-F",
    "-L",
    part.label,
    "-U",
    part.fsUuid,
    "-E",
    `offset=${start},hash_seed=${part.fsUuid},root_owner=0:0`,
    "-d",
    part.dir,
    raw,
    // The size must be the partition's: a larger one gives "bad geometry" at boot.
    `${size / 1024}k`,
  ];
  return {
    kind: "exec",
    id,
    stage: "disk",
    title: `ext4 file system "${part.label}" from ${part.dir}`,
    argv: input.wrap ? input.wrap(argv) : argv,
    env: { E2FSPROGS_FAKE_TIME: String(input.epoch) },
  };
}

/** The steps that write the disk (and its qcow2), in order. */
export function diskSteps(input: DiskInput): Step[] {
  const layout = diskLayout(input);
  const raw = input.raw;
  const exec = (id: string, title: string, argv: string[], extra: Partial<ExecStep> = {}): ExecStep => ({
    kind: "exec",
    id: `disk.${id}`,
    stage: "disk",
    title,
    argv,
    ...extra,
  });
  const file = (name: string, content: string): Step => ({
    kind: "native",
    id: `disk.write-${name}`,
    stage: "disk",
    title: `write ${name}`,
    op: { op: "write-file", path: join(input.work, name), content, mode: 0o644, mtime: input.epoch },
  });
  const esp = `${raw}@@${layout.espStart}`;
  const mtools = { MTOOLS_SKIP_CHECK: "1" };
  const mcopy = (id: string, from: string, to: string) =>
    exec(`mcopy-${id}`, `copy ${to.slice(3)} onto the ESP`, ["mcopy", "-o", "-m", "-i", esp, from, to], {
      env: mtools,
    });
  const steps: Step[] = [
    exec("clear", "start from an empty file", ["rm", "-f", raw]),
    exec("allocate", `a sparse ${layout.total} byte file`, ["truncate", "-s", String(layout.total), raw]),
    file("partitions.sfdisk", partitionTable(input, layout)),
    exec("sfdisk", "GPT partition table", ["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", raw], {
      stdin: join(input.work, "partitions.sfdisk"),
    }),
    // One sector per cluster: FAT32 needs at least 65525 clusters, which mkfs.vfat's own choice misses
    // for ESPs of 128 MiB.
    exec(
      "mkfs-vfat",
      "FAT32 file system of the ESP",
      [
        "mkfs.vfat",
        "-F",
        "32",
        "-s",
        "1",
        "-n",
        "ESP",
        "-i",
        input.espPartUuid.replace(/-/g, "").slice(0, 8),
        "--offset",
        String(layout.espStart / SECTOR),
        raw,
        String(layout.espSize / 1024),
      ],
      { env: { SOURCE_DATE_EPOCH: String(input.epoch) } },
    ),
    exec(
      "mmd",
      "ESP directories",
      ["mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"],
      { env: mtools },
    ),
    file("loader.conf", loaderConf(input.bootPassword !== undefined)),
    file("osimg.conf", loaderEntry(input.cmdline)),
    mcopy("systemd-boot", SYSTEMD_BOOT, "::/EFI/BOOT/BOOTX64.EFI"),
    mcopy("kernel", input.kernel, "::/vmlinuz"),
    mcopy("initrd", input.initrd, "::/initrd.img"),
    mcopy("loader-conf", join(input.work, "loader.conf"), "::/loader/loader.conf"),
    mcopy("loader-entry", join(input.work, "osimg.conf"), "::/loader/entries/osimg.conf"),
  ];
  if (input.bios) {
    steps.push(file("syslinux.cfg", syslinuxConf(input.cmdline, input.bootPassword)));
    steps.push(mcopy("syslinux-cfg", join(input.work, "syslinux.cfg"), "::/syslinux.cfg"));
    if (input.bootPassword) {
      steps.push(mcopy("menu", join(SYSLINUX_MODULES, "menu.c32"), "::/menu.c32"));
      steps.push(mcopy("libutil", join(SYSLINUX_MODULES, "libutil.c32"), "::/libutil.c32"));
    }
    steps.push(
      exec(
        "syslinux",
        "SYSLINUX into the ESP (BIOS boot)",
        ["syslinux", "--install", "--offset", String(layout.espStart), raw],
        { env: mtools },
      ),
    );
    // gptmbr.bin: the first 440 bytes of the MBR (the partition table area after it stays as sfdisk wrote it).
    steps.push(
      exec("mbr", "GPT MBR boot code", [
        "dd",
        `if=${GPT_MBR}`,
        `of=${raw}`,
        "bs=440",
        "count=1",
        "conv=notrunc",
        "status=none",
      ]),
    );
  }
  if (input.root)
    steps.push(ext4Step("disk.mkfs-root", input.root, raw, layout.rootStart, layout.rootSize, input));
  if (input.persist)
    steps.push(
      ext4Step("disk.mkfs-persist", input.persist, raw, layout.persistStart, layout.persistSize, input),
    );
  if (input.qcow2)
    steps.push(
      exec("qcow2", "convert to qcow2", [
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-o",
        "compat=1.1",
        raw,
        input.qcow2,
      ]),
    );
  return steps;
}

/** Assembles a disk now (test guests use this directly): the steps of diskSteps(), run in order. */
export async function assembleDisk(input: DiskInput, context: Partial<RunContext> = {}): Promise<void> {
  await runSteps(diskSteps(input), {
    log: () => {},
    ...context,
    planFile: join(dirname(input.raw), "plan.json"),
  });
}
