// A disk image that boots under both SeaBIOS and OVMF, assembled in a plain file without loop devices or
// mounts (DESIGN.md, "verified on these machines"):
//   GPT: partition 1 = ESP (FAT32, attribute LegacyBIOSBootable), partition 2 = optional ext4 root;
//   UEFI: EFI/BOOT/BOOTX64.EFI is systemd-boot with one loader entry;
//   BIOS: gptmbr.bin in the first 440 bytes chain-loads the LegacyBIOSBootable partition, where SYSLINUX
//         (installed with --offset) reads /syslinux.cfg;
//   both boot /vmlinuz and /initrd.img from the ESP with the same command line.
// The result is converted to qcow2.
import { execFile } from "node:child_process";
import { open, rm, writeFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
const MiB = 2 ** 20;
const SECTOR = 512;

export const SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
export const GPT_MBR = "/usr/lib/syslinux/mbr/gptmbr.bin";
const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

export interface BootableDiskSpec {
  /** The qcow2 to write. */
  output: string;
  /** A scratch raw file (deleted afterwards). */
  scratch: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  espMiB: number;
  /** A directory to copy into an ext4 root partition (mkfs.ext4 -d), with its size. */
  root?: { dir: string; sizeMiB: number; partUuid: string; fsUuid: string };
  /** GPT disk and ESP identifiers, fixed for reproducible images. */
  diskUuid: string;
  espPartUuid: string;
}

async function tool(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run(command, [...args], {
      env: { ...process.env, ...env },
      maxBuffer: 64 * MiB,
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

export async function assembleBootableDisk(spec: BootableDiskSpec): Promise<void> {
  const espStart = 1 * MiB;
  const espSize = spec.espMiB * MiB;
  const rootStart = espStart + espSize;
  const rootSize = (spec.root?.sizeMiB ?? 0) * MiB;
  const total = rootStart + rootSize + 1 * MiB; // room for the backup GPT
  await rm(spec.scratch, { force: true });
  const handle = await open(spec.scratch, "w");
  await handle.truncate(total);
  await handle.close();

  const lines = [
    "label: gpt",
    `label-id: ${spec.diskUuid}`,
    "unit: sectors",
    `start=${espStart / SECTOR}, size=${espSize / SECTOR}, type=${ESP_TYPE}, uuid=${spec.espPartUuid}, name="esp", attrs="LegacyBIOSBootable"`,
  ];
  if (spec.root)
    lines.push(
      `start=${rootStart / SECTOR}, size=${rootSize / SECTOR}, type=${ROOT_X86_64_TYPE}, uuid=${spec.root.partUuid}, name="root"`,
    );
  await runWithInput(
    "sfdisk",
    ["--no-reread", "--no-tell-kernel", "--quiet", spec.scratch],
    `${lines.join("\n")}\n`,
  );

  const volumeId = spec.espPartUuid.replace(/-/g, "").slice(0, 8);
  // One sector per cluster: FAT32 needs at least 65525 clusters, which mkfs.vfat's own choice misses
  // for ESPs of 128 MiB.
  await tool("mkfs.vfat", [
    "-F",
    "32",
    "-s",
    "1",
    "-n",
    "ESP",
    "-i",
    volumeId,
    "--offset",
    String(espStart / SECTOR),
    spec.scratch,
    String(espSize / 1024),
  ]);
  const esp = `${spec.scratch}@@${espStart}`;
  const mtools = { MTOOLS_SKIP_CHECK: "1" };
  await tool("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"], mtools);
  const conf = `${spec.scratch}.conf`;
  const put = async (text: string, target: string) => {
    await writeFile(conf, text);
    await tool("mcopy", ["-o", "-i", esp, conf, target], mtools);
  };
  await tool("mcopy", ["-i", esp, SYSTEMD_BOOT, "::/EFI/BOOT/BOOTX64.EFI"], mtools);
  await tool("mcopy", ["-i", esp, spec.kernel, "::/vmlinuz"], mtools);
  await tool("mcopy", ["-i", esp, spec.initrd, "::/initrd.img"], mtools);
  await put("default osimg.conf\ntimeout 0\n", "::/loader/loader.conf");
  await put(
    `title osimg\nlinux /vmlinuz\ninitrd /initrd.img\noptions ${spec.cmdline}\n`,
    "::/loader/entries/osimg.conf",
  );
  await put(
    `DEFAULT osimg\nPROMPT 0\nTIMEOUT 0\nLABEL osimg\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND ${spec.cmdline}\n`,
    "::/syslinux.cfg",
  );
  await rm(conf, { force: true });
  await tool("syslinux", ["--install", "--offset", String(espStart), spec.scratch], mtools);
  // gptmbr.bin: the first 440 bytes of the MBR (the partition table area after it stays as sfdisk wrote it).
  const mbr = await open(GPT_MBR, "r");
  const code = Buffer.alloc(440);
  await mbr.read(code, 0, 440, 0);
  await mbr.close();
  const disk = await open(spec.scratch, "r+");
  await disk.write(code, 0, 440, 0);
  await disk.close();

  if (spec.root) {
    await tool("mkfs.ext4", [
      "-q",
      "-F",
      "-L",
      "root",
      "-U",
      spec.root.fsUuid,
      "-E",
      `offset=${rootStart},hash_seed=${spec.root.fsUuid}`,
      "-d",
      spec.root.dir,
      spec.scratch,
      `${rootSize / 1024}k`,
    ]);
  }
  await tool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", spec.scratch, spec.output]);
  await rm(spec.scratch, { force: true });
}

function runWithInput(command: string, args: readonly string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, [...args], (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} failed: ${stderr.trim() || error.message}`));
      else resolve();
    });
    child.stdin?.end(input);
  });
}

export { tool as runTool };
