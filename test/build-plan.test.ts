// The plan: argv-only steps, the rootless and the root variants, what the cache key sees and what it
// does not, and the --debug scripts (bash -n and shellcheck clean, words that bash reads back as the argv).
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { baseKey, makePlan, type PlanInput, packageSet } from "../src/build/plan.ts";
import { PXE_DIR, PXE_INITRAMFS_HOOK, PXE_PACKAGES } from "../src/build/pxe.ts";
import { renderScripts, shJoin, shQuote } from "../src/build/shell.ts";
import { BUILD_KINDS, type BuildSpec, parseSpec } from "../src/build/spec.ts";
import type { ExecStep } from "../src/build/steps.ts";

const EXAMPLE = new URL("../examples/debian-cloud/spec.toml", import.meta.url).pathname;
const spec = parseSpec(readFileSync(EXAMPLE, "utf8")).spec as BuildSpec;
const SUBIDS = { uid: { start: 100000, count: 65536 }, gid: { start: 100000, count: 65536 } };

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    spec,
    kind: "vm-img",
    specHash: "a".repeat(64),
    specDir: "/specs/demo",
    buildId: "b1",
    workDir: "/data/build/work/b1",
    scratchDir: "/dev/shm/osimg-build-b1",
    outDir: "/out",
    cacheDir: "/data/cache/build",
    epoch: 1735689600,
    compression: "none",
    mmdebstrapVersion: "mmdebstrap 1.3.5",
    ...overrides,
  };
}

const execs = (plan: ReturnType<typeof makePlan>) =>
  plan.steps.filter((s): s is ExecStep => s.kind === "exec");

describe("plan", () => {
  it("every program is an argv array; hooks handed to mmdebstrap are constants", () => {
    for (const kind of BUILD_KINDS) {
      const s =
        kind === "pxe-img"
          ? parseSpec(readFileSync(new URL("../examples/pxe/spec.toml", import.meta.url), "utf8")).spec
          : spec;
      const plan = makePlan(
        input({ kind, spec: s as BuildSpec, push: { reference: "127.0.0.1:5000/os/x:1", tlsVerify: false } }),
      );
      for (const step of execs(plan)) {
        expect(Array.isArray(step.argv) && step.argv.every((a) => typeof a === "string")).toBe(true);
        expect(step.argv[0]).not.toMatch(/^(sh|bash)$/);
        for (const hook of step.argv.filter((a) => /^--(setup|customize|essential|extract)-hook=/.test(a)))
          expect(hook).toMatch(
            /^--(setup|customize)-hook=(mkdir -p "\$1\/var\/cache\/apt\/archives\/"|sync-in \. \/var\/cache\/apt\/archives\/|sync-out \/var\/cache\/apt\/archives \.|tar-in (customized|chrooted)\.tar \/|upload chroot-script \/osimg-chroot-script|\/.*\/src\/build\/chroot-hook\.sh|\/.*\/src\/build\/pxe\/mmdebstrap-hook\.sh)$/,
          );
      }
    }
  });

  it("as root: mmdebstrap --mode=root in a private mount and pid namespace; image files handled directly", () => {
    const plan = makePlan(input());
    const mm = execs(plan).find((s) => s.id === "bootstrap.mmdebstrap") as ExecStep;
    expect(mm.argv.slice(0, 10)).toEqual([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--pid",
      "--fork",
      "--kill-child",
      "--",
      "mmdebstrap",
      "--mode=root",
    ]);
    expect(execs(plan).find((s) => s.id === "filesystem.unpack")?.argv[0]).toBe("tar");
  });

  it("without root: mmdebstrap --mode=unshare; unpacking and mkfs inside a user namespace of the subordinate ids", () => {
    const plan = makePlan(input({ rootless: SUBIDS }));
    const mm = execs(plan).find((s) => s.id === "bootstrap.mmdebstrap") as ExecStep;
    expect(mm.argv.slice(0, 2)).toEqual(["mmdebstrap", "--mode=unshare"]);
    const wrapped = [
      "unshare",
      "--map-root-user",
      "--map-users=100000,1,65536",
      "--map-groups=100000,1,65536",
      "--",
    ];
    for (const id of ["filesystem.unpack", "disk.mkfs-root", "disk.cleanup"])
      expect(
        execs(plan)
          .find((s) => s.id === id)
          ?.argv.slice(0, 5),
      ).toEqual(wrapped);
    expect(execs(plan).some((s) => s.argv.includes("--mount"))).toBe(false);
  });

  it("the bootstrap is cached by everything that determines it, and nothing else", () => {
    const key = baseKey(input());
    const changed = (s: Partial<BuildSpec["from_repo"]>) =>
      baseKey(input({ spec: { ...spec, from_repo: { ...spec.from_repo, ...s } } }));
    expect(changed({ packages: [...spec.from_repo.packages, "curl"] })).not.toBe(key);
    expect(changed({ suite: "trixie" })).not.toBe(key);
    expect(changed({ mirror: "http://mirror.example/debian" })).not.toBe(key);
    expect(baseKey(input({ keyringDigest: "b".repeat(64) }))).not.toBe(key);
    expect(baseKey(input({ epoch: 1 }))).not.toBe(key);
    expect(baseKey(input({ mmdebstrapVersion: "mmdebstrap 1.4.0" }))).not.toBe(key);
    // What the customize step applies does not reach the key: users, files, units, version, passwords.
    const edited = {
      ...spec,
      users: [],
      copy_files: [],
      systemd_service: undefined,
      from_repo: { ...spec.from_repo, version: "other", root_passwd: "*" },
    };
    expect(baseKey(input({ spec: edited, specHash: "c".repeat(64) }))).toBe(key);
    // vm-img, container-disk and upgrade-img share one root filesystem.
    expect(baseKey(input({ kind: "container-disk" }))).toBe(key);
    expect(baseKey(input({ kind: "upgrade-img" }))).toBe(key);
  });

  it("adds what the kind needs: a kernel and an init for disks, sshd for the admin container", () => {
    const bare = { ...spec, from_repo: { ...spec.from_repo, packages: ["curl"] } };
    expect(packageSet(bare, "vm-img")).toEqual(["curl", "linux-image-cloud-amd64", "systemd-sysv"]);
    expect(
      packageSet({ ...bare, from_repo: { ...bare.from_repo, distribution: "ubuntu" } }, "vm-img"),
    ).toContain("linux-image-virtual");
    expect(packageSet(bare, "admin-container")).toEqual(["curl", "openssh-server"]);
  });

  it("a disk layout from the spec: ESP, root of [disk_partition] root MiB, persist with img_size", () => {
    const plan = makePlan(input({ spec: { ...spec, disk_partition: { root: 3000, img_size: 10 } } }));
    const sfdisk = plan.steps.find((s) => s.id === "disk.write-partitions.sfdisk");
    const text = sfdisk?.kind === "native" && sfdisk.op.op === "write-file" ? sfdisk.op.content : "";
    expect(text).toContain(`size=${(3000 * 2 ** 20) / 512}, type=4F68BCE3`);
    expect(text).toContain('name="persist"');
    expect(text).toContain('attrs="LegacyBIOSBootable"');
    const noBios = makePlan(
      input({ spec: { ...spec, from_repo: { ...spec.from_repo, legacy_bios: false } } }),
    );
    expect(noBios.steps.some((s) => s.id === "disk.syslinux")).toBe(false);
  });

  it("the same spec gives the same identifiers (reproducible disks)", () => {
    expect(makePlan(input()).ids).toEqual(makePlan(input({ buildId: "b2" })).ids);
    expect(makePlan(input()).ids.rootPart).not.toBe(
      makePlan(input({ specHash: "d".repeat(64) })).ids.rootPart,
    );
  });
});

describe("pxe-img: the installer in the initramfs", () => {
  const PXE_EXAMPLE = new URL("../examples/pxe/spec.toml", import.meta.url);
  const pxeSpec = parseSpec(readFileSync(PXE_EXAMPLE, "utf8")).spec as BuildSpec;
  const pxePlan = (s: BuildSpec = pxeSpec, overrides: Partial<PlanInput> = {}) =>
    makePlan(input({ kind: "pxe-img", spec: s, ...overrides }));
  const written = (plan: ReturnType<typeof makePlan>, id: string) => {
    const step = plan.steps.find((x) => x.id === id);
    return step?.kind === "native" && step.op.op === "write-file" ? step.op.content : "";
  };
  const edits = (plan: ReturnType<typeof makePlan>) => {
    const step = plan.steps.find((x) => x.id === "customize.rootfs");
    if (step?.kind !== "native" || step.op.op !== "customize-rootfs") throw new Error("no customize step");
    return step.op.edits;
  };

  it("the image gets what the installer needs: initramfs-tools, busybox, the disk tools, the boot loaders", () => {
    expect(packageSet(pxeSpec, "pxe-img")).toEqual(expect.arrayContaining([...PXE_PACKAGES]));
    expect(packageSet(pxeSpec, "pxe-img")).toEqual(
      expect.arrayContaining(["linux-image-amd64", "systemd-sysv", "openssh-server"]),
    );
    // Other kinds do not.
    expect(packageSet(spec, "vm-img")).not.toContain("syslinux");
    expect(baseKey(input({ kind: "pxe-img", spec: pxeSpec }))).not.toBe(
      baseKey(input({ kind: "vm-img", spec: pxeSpec })),
    );
  });

  it("regenerates the initramfs inside the image after the customize step (argv, constant hooks)", () => {
    const plan = pxePlan();
    expect(plan.steps.map((x) => x.id)).toEqual([
      "bootstrap.cache-dirs",
      "bootstrap.scratch-dir",
      "bootstrap.mmdebstrap",
      "customize.rootfs",
      "chroot.pxe-initramfs",
      "package.boot-files",
      "package.pxelinux",
      "package.ipxe",
    ]);
    const customize = plan.steps.find((x) => x.id === "customize.rootfs");
    expect(
      customize?.kind === "native" && customize.op.op === "customize-rootfs" && customize.op.output,
    ).toBe("/dev/shm/osimg-build-b1/customized.tar");
    const step = execs(plan).find((x) => x.id === "chroot.pxe-initramfs") as ExecStep;
    expect(step.argv.slice(8)).toEqual([
      "mmdebstrap",
      "--mode=root",
      "--variant=custom",
      "--skip=setup,update,download,cleanup/apt,cleanup/mmdebstrap,cleanup/run,cleanup/tmp,check/signed-by",
      "--setup-hook=tar-in customized.tar /",
      `--customize-hook=${PXE_INITRAMFS_HOOK}`,
      "bookworm",
      "/out/osimg-rootfs.tar",
      "http://deb.debian.org/debian",
    ]);
    expect(step.cwd).toBe("/dev/shm/osimg-build-b1");
    // The kernel and initramfs come out of the regenerated root filesystem.
    const boot = plan.steps.find((x) => x.id === "package.boot-files");
    expect(boot?.kind === "native" && boot.op.op === "extract-boot-files" && boot.op.tar).toBe(
      "/out/osimg-rootfs.tar",
    );
    expect(plan.outputs[0]).toMatchObject({ name: "osimg-rootfs.tar", after: "chroot.pxe-initramfs" });
    // Without root: mmdebstrap's user namespace.
    const rootless = execs(pxePlan(pxeSpec, { rootless: SUBIDS })).find(
      (x) => x.id === "chroot.pxe-initramfs",
    );
    expect(rootless?.argv.slice(0, 3)).toEqual(["mmdebstrap", "--mode=unshare", "--variant=custom"]);
    // With a chroot script: the script first, the initramfs from its result.
    const withScript = pxePlan({ ...pxeSpec, chroot_script: { path: "setup.sh", rm: true } });
    expect(execs(withScript).find((x) => x.id === "chroot.run")?.argv).toContain(
      "/dev/shm/osimg-build-b1/chrooted.tar",
    );
    expect(execs(withScript).find((x) => x.id === "chroot.pxe-initramfs")?.argv).toContain(
      "--setup-hook=tar-in chrooted.tar /",
    );
  });

  it("puts the hook, the boot script and the disk layout into the image; fstab names the root's PARTUUID", () => {
    const plan = pxePlan();
    const e = edits(plan);
    expect(e.copies.slice(0, 2)).toEqual([
      expect.objectContaining({
        src: "initramfs-hook.sh",
        dst: "/etc/initramfs-tools/hooks/osimg-install",
        mode: 0o755,
      }),
      expect.objectContaining({
        src: "osimg-install.sh",
        dst: "/etc/initramfs-tools/scripts/osimg-install",
        mode: 0o644,
      }),
    ]);
    const file = (path: string) => e.files.find((f) => f.path === path)?.content;
    expect(file("/etc/fstab")).toBe(`PARTUUID=${plan.ids.rootPart} / ext4 errors=remount-ro 0 1\n`);
    expect(file("/etc/osimg/pxe-install/partitions.sfdisk")).toBe(
      [
        "label: gpt",
        `label-id: ${plan.ids.disk}`,
        "unit: sectors",
        `start=2048, size=262144, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=${plan.ids.esp}, name="esp", attrs="LegacyBIOSBootable"`,
        `start=264192, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=${plan.ids.rootPart}, name="root"`,
        "",
      ].join("\n"),
    );
    expect(file("/etc/osimg/pxe-install/install.conf")).toContain(`root_fsuuid=${plan.ids.rootFs}\n`);
    expect(file("/etc/osimg/pxe-install/install.conf")).toContain("bios=1\nsyslinux_menu=0\n");
    const cmdline = `root=PARTUUID=${plan.ids.rootPart} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0`;
    expect(file("/etc/osimg/pxe-install/osimg.conf")).toContain(`options ${cmdline}\n`);
    expect(file("/etc/osimg/pxe-install/syslinux.cfg")).toContain(`APPEND ${cmdline}\n`);
    // UEFI only: no SYSLINUX, no BIOS-bootable flag.
    const uefi = edits(pxePlan({ ...pxeSpec, from_repo: { ...pxeSpec.from_repo, legacy_bios: false } }));
    expect(uefi.files.some((f) => f.path.endsWith("/syslinux.cfg"))).toBe(false);
    expect(uefi.files.find((f) => f.path.endsWith("/partitions.sfdisk"))?.content).not.toContain(
      "LegacyBIOS",
    );
  });

  it("the kernel command line selects the installer; the server's port is in the URLs when it is not 80", () => {
    const plan = pxePlan();
    const args =
      "boot=osimg-install ip=192.168.122.100::192.168.122.1:255.255.255.0::eth0:off net.ifnames=0 osimg.rootfs=http://192.168.122.50:8080/osimg-rootfs.tar osimg.disk=/dev/vda console=tty0 console=ttyS0,115200n8";
    expect(plan.cmdline).toBe(args);
    expect(written(plan, "package.pxelinux")).toBe(
      `DEFAULT osimg\nPROMPT 0\nLABEL osimg\n  KERNEL vmlinuz\n  INITRD initramfs.img\n  APPEND ${args}\n`,
    );
    expect(written(plan, "package.ipxe")).toBe(
      `#!ipxe\nkernel http://192.168.122.50:8080/vmlinuz ${args}\ninitrd http://192.168.122.50:8080/initramfs.img\nboot\n`,
    );
    const pxe = pxeSpec.pxe_config as NonNullable<BuildSpec["pxe_config"]>;
    const port80 = pxePlan({ ...pxeSpec, pxe_config: { ...pxe, server_port: 80 } });
    expect(port80.cmdline).toContain(" osimg.rootfs=http://192.168.122.50/osimg-rootfs.tar ");
    expect(written(port80, "package.ipxe")).toContain("\ninitrd http://192.168.122.50/initramfs.img\n");
    const dhcp = pxePlan({ ...pxeSpec, pxe_config: { ...pxe, dhcp: true, net_name: "enp1s0" } });
    expect(dhcp.cmdline).toMatch(/^boot=osimg-install ip=dhcp osimg\.rootfs=/);
  });

  it("the installer's scripts are shellcheck clean (POSIX sh: busybox ash in the initramfs)", () => {
    for (const name of ["osimg-install.sh", "initramfs-hook.sh", "mmdebstrap-hook.sh"]) {
      const check = spawnSync("shellcheck", ["-s", "sh", join(PXE_DIR, name)], { encoding: "utf8" });
      expect(check.stdout, name).toBe("");
      expect(check.status, name).toBe(0);
    }
  });
});

describe("--debug scripts", () => {
  it("quote every word so that bash reads back exactly the argv", () => {
    const words = [
      "plain",
      "",
      "a b",
      "it's",
      'say "hi"',
      "$(touch /tmp/x)",
      "`id`",
      "*",
      "a\nb",
      "--x=$1",
      "~root",
      "!",
      "#c",
      "tab\there",
    ];
    const out = execFileSync("bash", ["-c", `printf '%s\\0' ${shJoin(words)}`]);
    expect(out.toString().split("\0").slice(0, -1)).toEqual(words);
    expect(shQuote("/usr/bin/x")).toBe("/usr/bin/x");
  });

  it("are bash -n and shellcheck clean for every kind", () => {
    for (const kind of BUILD_KINDS) {
      const s =
        kind === "pxe-img"
          ? parseSpec(readFileSync(new URL("../examples/pxe/spec.toml", import.meta.url), "utf8")).spec
          : spec;
      const plan = makePlan(
        input({
          kind,
          spec: s as BuildSpec,
          rootless: SUBIDS,
          push: { reference: "127.0.0.1:5000/os/x:1", tlsVerify: false },
        }),
      );
      for (const [name, text] of renderScripts(plan.steps, "/out/plan.json", ["spec: x"])) {
        expect(spawnSync("bash", ["-n"], { input: text }).status, `${kind} ${name}`).toBe(0);
        const check = spawnSync("shellcheck", ["-s", "bash", "-"], { input: text, encoding: "utf8" });
        expect(check.stdout, `${kind} ${name}`).toBe("");
        expect(check.status).toBe(0);
      }
    }
  });
});
