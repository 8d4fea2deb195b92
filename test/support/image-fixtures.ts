// Disk image fixtures, made at test time with qemu-img (and genisoimage, sfdisk, xz, bzip2): benign ones
// of every format the inspector knows, and malicious ones that each carry one trick the policy refuses.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";

export interface ImageFixture {
  /** File name in the fixture directory (its extension declares a format, as a URL's would). */
  name: string;
  benign: boolean;
  format: string;
  compression?: "gzip" | "xz" | "zstd" | "bzip2";
  /** For malicious fixtures: the reason code the policy must give. */
  reason?: string;
  /** For benign ones: how to ask qemu-img about it (-f), when its own probing would not say the same. */
  qemuFormat?: string;
}

const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
const qemuImg = (cwd: string, ...args: string[]) => run("qemu-img", args, cwd);

/** Some bytes in a raw disk, so that compressed and converted images have content. */
function scribble(file: string, at: number, text: string): void {
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.from(text.repeat(512)), 0, undefined, at);
  closeSync(fd);
}

export async function makeImageFixtures(dir: string): Promise<ImageFixture[]> {
  await mkdir(dir, { recursive: true });
  const q = (...args: string[]) => qemuImg(dir, ...args);
  const fixtures: ImageFixture[] = [];
  const add = (f: ImageFixture) => fixtures.push(f);

  // raw with GPT: an ESP and a Linux partition, and some content.
  q("create", "-q", "-f", "raw", "gpt.raw", "48M");
  execFileSync(existsSync("/sbin/sfdisk") ? "/sbin/sfdisk" : "sfdisk", ["-q", join(dir, "gpt.raw")], {
    input:
      "label: gpt\nsize=16M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
    stdio: ["pipe", "pipe", "pipe"],
  });
  scribble(join(dir, "gpt.raw"), 20 * 2 ** 20, "osimg fixture data ");
  add({ name: "gpt.raw", benign: true, format: "raw" });

  q("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "64M");
  add({ name: "v2.qcow2", benign: true, format: "qcow2" });
  q("create", "-q", "-f", "qcow2", "v3.qcow2", "100M");
  add({ name: "v3.qcow2", benign: true, format: "qcow2" });
  q("convert", "-q", "-c", "-O", "qcow2", "gpt.raw", "compressed.qcow2");
  add({ name: "compressed.qcow2", benign: true, format: "qcow2" });
  q("convert", "-q", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "gpt.raw", "zstd-clusters.qcow2");
  add({ name: "zstd-clusters.qcow2", benign: true, format: "qcow2" });
  q("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "sparse.vmdk", "50M");
  add({ name: "sparse.vmdk", benign: true, format: "vmdk" });
  q("create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", "stream.vmdk", "40M");
  add({ name: "stream.vmdk", benign: true, format: "vmdk" });
  q("create", "-q", "-f", "vhdx", "disk.vhdx", "70M");
  add({ name: "disk.vhdx", benign: true, format: "vhdx" });
  q("create", "-q", "-f", "vpc", "dynamic.vhd", "40M");
  add({ name: "dynamic.vhd", benign: true, format: "vhd" });
  q("create", "-q", "-f", "vpc", "-o", "subformat=fixed", "fixed.vhd", "20M");
  // QEMU recognizes a fixed VHD only when told (its footer is at the end); the inspector finds it.
  add({ name: "fixed.vhd", benign: true, format: "vhd", qemuFormat: "vpc" });
  q("create", "-q", "-f", "vdi", "disk.vdi", "30M");
  add({ name: "disk.vdi", benign: true, format: "vdi" });
  await mkdir(join(dir, "iso-root"), { recursive: true });
  writeFileSync(join(dir, "iso-root", "README.TXT"), "osimg fixture\n");
  run("genisoimage", ["-quiet", "-V", "OSIMG_TEST", "-o", "disk.iso", "iso-root"], dir);
  add({ name: "disk.iso", benign: true, format: "iso" });

  // Compressed wrappers.
  writeFileSync(join(dir, "gpt.raw.gz"), gzipSync(readFileSync(join(dir, "gpt.raw"))));
  add({ name: "gpt.raw.gz", benign: true, format: "raw", compression: "gzip" });
  run("sh", ["-c", "xz -T1 -3 -c compressed.qcow2 > compressed.qcow2.xz"], dir);
  add({ name: "compressed.qcow2.xz", benign: true, format: "qcow2", compression: "xz" });
  writeFileSync(join(dir, "v3.qcow2.zst"), zstdCompressSync(readFileSync(join(dir, "v3.qcow2"))));
  add({ name: "v3.qcow2.zst", benign: true, format: "qcow2", compression: "zstd" });
  run("sh", ["-c", "bzip2 -c sparse.vmdk > sparse.vmdk.bz2"], dir);
  add({ name: "sparse.vmdk.bz2", benign: true, format: "vmdk", compression: "bzip2" });

  // Malicious: each refused for one reason.
  q("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", "backing.qcow2", "16M");
  add({ name: "backing.qcow2", benign: false, format: "qcow2", reason: "backing_file" });
  q("create", "-q", "-f", "qcow2", "-o", "data_file=/etc/hostname,data_file_raw=on", "datafile.qcow2", "1M");
  add({ name: "datafile.qcow2", benign: false, format: "qcow2", reason: "data_file" });
  q(
    "create",
    "-q",
    "-f",
    "qcow2",
    "--object",
    "secret,id=sec0,data=fixture",
    "-o",
    // AES rather than LUKS: LUKS's key-derivation benchmark fails in some sandboxes.
    "encrypt.format=aes,encrypt.key-secret=sec0",
    "encrypted.qcow2",
    "16M",
  );
  add({ name: "encrypted.qcow2", benign: false, format: "qcow2", reason: "encrypted" });
  // An incompatible feature bit QEMU does not know (bit 40), set in a copy of a good header.
  const unknown = readFileSync(join(dir, "v3.qcow2"));
  unknown[72 + 2] = (unknown[72 + 2] as number) | 0x01;
  writeFileSync(join(dir, "unknown-bit.qcow2"), unknown);
  add({ name: "unknown-bit.qcow2", benign: false, format: "qcow2", reason: "unknown_features" });
  // A descriptor VMDK whose extent is a host file (CVE-2022-47951).
  q("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "hostpath.vmdk", "1M");
  const descriptor = readFileSync(join(dir, "hostpath.vmdk"), "utf8").replace(
    /"hostpath-flat\.vmdk"/,
    '"/etc/shadow"',
  );
  writeFileSync(join(dir, "hostpath.vmdk"), descriptor);
  add({ name: "hostpath.vmdk", benign: false, format: "vmdk", reason: "vmdk_extent" });
  // A raw disk that calls itself qcow2.
  writeFileSync(join(dir, "disguised.qcow2"), readFileSync(join(dir, "gpt.raw")));
  add({ name: "disguised.qcow2", benign: false, format: "raw", reason: "format_mismatch" });
  // Two formats at once: a qcow2 with a VHD footer at its end.
  const fixedVhd = readFileSync(join(dir, "fixed.vhd"));
  writeFileSync(
    join(dir, "polyglot.img"),
    Buffer.concat([readFileSync(join(dir, "v3.qcow2")), fixedVhd.subarray(fixedVhd.length - 512)]),
  );
  add({ name: "polyglot.img", benign: false, format: "qcow2", reason: "ambiguous_format" });
  // A backing file hidden inside a compressed wrapper.
  run("sh", ["-c", "xz -T1 -c backing.qcow2 > backing-inside.qcow2.xz"], dir);
  add({
    name: "backing-inside.qcow2.xz",
    benign: false,
    format: "qcow2",
    compression: "xz",
    reason: "backing_file",
  });
  // The error page a mirror answers with 200.
  writeFileSync(join(dir, "error-page.img"), "<!DOCTYPE html>\n<html><body>Not Found</body></html>\n");
  add({ name: "error-page.img", benign: false, format: "html", reason: "not_a_disk_image" });
  return fixtures;
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** `qemu-img info --output=json` of a file. */
export function qemuInfo(path: string, format?: string): Record<string, unknown> {
  const args = ["info", "--output=json", ...(format ? ["-f", format] : []), path];
  return JSON.parse(execFileSync("qemu-img", args, { encoding: "utf8" })) as Record<string, unknown>;
}
