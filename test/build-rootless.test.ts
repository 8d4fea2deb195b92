// A build without root: run (from a root test run) as an ordinary user who has a subordinate id range in
// /etc/subuid and /etc/subgid, the way `osimg build` runs for a developer. mmdebstrap's chroot stage runs
// in --mode=unshare, the tree is unpacked and mkfs.ext4 reads it inside a user namespace, so the disk's
// files still belong to the image's users; the work directory (files of subordinate ids) is removed.
// The root filesystem is the synthetic one (busybox), so it takes seconds; examples/debian-cloud was also
// built this way and booted under BIOS and UEFI (docs/builder.md).
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareBuild } from "../src/build/build.ts";
import { OSIMG_BIN, tempDir, writeSyntheticRootfs } from "./support/build.ts";

const run = promisify(execFile);

interface Builder {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const BUILDER = "osimg-builder";

const ordinaryUsers = () =>
  readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .filter((f) => Number(f[2]) > 0 && f[0])
    .map(([name, , uid, gid, , home]) => ({
      name: name as string,
      uid: Number(uid),
      gid: Number(gid),
      home: home ?? "/",
    }));

const withSubIds = (name: string) =>
  ["/etc/subuid", "/etc/subgid"].every((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .some((line) => line.startsWith(`${name}:`)),
  );

/**
 * Who builds without root here. From a root test run: an ordinary user with subordinate ids, created
 * (with its ranges) when there is none; otherwise the user running the tests, who needs such ranges for
 * `osimg build` itself (its error says how to add them).
 */
async function builderUser(): Promise<Builder | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = ordinaryUsers().find((u) => u.uid !== 65534 && withSubIds(u.name));
  if (existing) return existing;
  if (!ordinaryUsers().some((u) => u.name === BUILDER))
    await run("useradd", ["--create-home", "--shell", "/bin/sh", BUILDER]);
  if (!withSubIds(BUILDER))
    await run("usermod", ["--add-subuids", "300000-365535", "--add-subgids", "300000-365535", BUILDER]);
  return ordinaryUsers().find((u) => u.name === BUILDER);
}

let user: Builder | undefined;
let dir: string;

const SPEC = `[from_repo]
suite = "bookworm"

[[users]]
name = "ops"

[[copy_files]]
src = "notes.txt"
dst = "/home/ops/notes.txt"
mode = "0600"
owner = "ops:ops"

[chroot_script]
path = "script.sh"

[disk_partition]
root = 256
`;

beforeAll(async () => {
  user = await builderUser();
  dir = await tempDir("osimg-rootless-");
  await chmod(dir, 0o755);
  const specDir = join(dir, "spec");
  await mkdir(specDir);
  await writeFile(join(specDir, "spec.toml"), SPEC);
  await writeFile(join(specDir, "notes.txt"), "for ops only\n");
  await writeFile(join(specDir, "script.sh"), "#!/bin/sh\nid -u > /chroot-uid\n", { mode: 0o755 });
  const dataDir = join(dir, "data");
  const { plan } = await prepareBuild(
    { specFile: join(specDir, "spec.toml"), kind: "vm-img", outDir: join(dir, "out"), dataDir },
    "probe",
  );
  await writeSyntheticRootfs(plan.baseTar);
  if (user) await run("chown", ["-R", `${user.uid}:${user.gid}`, dir]);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a build without root", () => {
  it("builds a disk whose files belong to the image's users, and leaves no work directory", async () => {
    // From a root run, as the builder user; otherwise as the user running the tests.
    const asBuilder = user
      ? ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "env", `HOME=${user.home}`]
      : [];
    const argv = [
      ...asBuilder,
      process.execPath,
      OSIMG_BIN,
      "build",
      "--file",
      join(dir, "spec", "spec.toml"),
      "vm-img",
      "--out",
      join(dir, "out"),
      "--data-dir",
      join(dir, "data"),
      "--json",
    ];
    const { stdout } = await run(argv[0] as string, argv.slice(1), { maxBuffer: 32 << 20 });
    const record = JSON.parse(stdout);
    expect(record.rootless).toBe(true);
    expect(record.baseCached).toBe(true);
    // The chroot script ran as root inside the image's namespace.
    const { stdout: uid } = await run("tar", ["-xOf", join(dir, "out", "rootfs.tar"), "./chroot-uid"]);
    expect(uid.trim()).toBe("0");
    // In the disk's root file system (after the 1 MiB gap and the 128 MiB ESP), owners as in the image.
    const fs = `${join(dir, "out", "system.raw")}?offset=${(1 + 128) * 2 ** 20}`;
    const { stdout: home } = await run("debugfs", ["-R", "ls -l /home/ops", fs]);
    expect(home).toMatch(/40700 \(2\)\s+1000\s+1000\s+\d+ .* \.\n/);
    expect(home).toMatch(/100600 \(1\)\s+1000\s+1000\s+13 .* notes\.txt/);
    const { stdout: etc } = await run("debugfs", ["-R", "ls -l /etc", fs]);
    expect(etc).toMatch(/100640 \(1\)\s+0\s+42\s+\d+ .* shadow/);
    expect(await readdir(join(dir, "data", "build", "work"))).toEqual([]);
    expect(JSON.parse(await readFile(join(dir, "out", "build.json"), "utf8")).buildId).toBe(record.buildId);
  }, 300_000);
});
