// UEFI firmware files (Debian's ovmf package) and the per-VM copy of the variable store.
import { constants } from "node:fs";
import { access, copyFile } from "node:fs/promises";
import type { Firmware } from "./cmdline.ts";

export interface OvmfFiles {
  code: string;
  /** The template each VM copies: its own NVRAM starts from this. */
  varsTemplate: string;
}

const OVMF_DIR = "/usr/share/OVMF";

/**
 * Debian's OVMF builds: plain (no secure boot), and secboot code with the Microsoft keys enrolled in the vars
 * template (what Windows and shim-signed distributions boot with).
 */
export function ovmfFiles(secureBoot: boolean, dir = OVMF_DIR): OvmfFiles {
  return secureBoot
    ? { code: `${dir}/OVMF_CODE_4M.secboot.fd`, varsTemplate: `${dir}/OVMF_VARS_4M.ms.fd` }
    : { code: `${dir}/OVMF_CODE_4M.fd`, varsTemplate: `${dir}/OVMF_VARS_4M.fd` };
}

export class FirmwareMissingError extends Error {
  override name = "FirmwareMissingError";
}

/**
 * The firmware of a VM. For efi, copies the vars template to `varsPath` when the VM has none yet (the copy
 * holds the guest's boot entries, so it is kept across restarts and deleted with the VM).
 */
export async function prepareFirmware(
  type: "bios" | "efi",
  options: { secureBoot?: boolean; varsPath: string; ovmfDir?: string },
): Promise<Firmware> {
  if (type === "bios") return { type: "bios" };
  const secureBoot = options.secureBoot ?? false;
  const files = ovmfFiles(secureBoot, options.ovmfDir);
  for (const file of [files.code, files.varsTemplate]) {
    try {
      await access(file, constants.R_OK);
    } catch {
      throw new FirmwareMissingError(`UEFI firmware ${file} is missing; install the ovmf package`);
    }
  }
  try {
    await copyFile(files.varsTemplate, options.varsPath, constants.COPYFILE_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return { type: "efi", code: files.code, vars: options.varsPath, secureBoot };
}
