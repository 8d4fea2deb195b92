// Injection: every string field of the spec set to payloads with backticks, $(), ;, quotes, line breaks,
// globs and ../. Fields that validate them away refuse them; the others carry them as data. Either way no
// payload runs (the canary file is never created), no path leaves its root, and the --debug scripts stay
// bash -n and shellcheck clean. The real pipeline runs on a small synthetic root filesystem (busybox) put
// into the build cache: customize, chroot script (mmdebstrap), unpack, GPT/ESP/ext4 disk, qcow2, OCI.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, prepareBuild, SpecError, writeDebug } from "../src/build/build.ts";
import { parseSpec } from "../src/build/spec.ts";
import { indexTar, readEntry } from "../src/build/tar.ts";
import { OSIMG_BIN, removeOwnedTree, tempDir, writeSyntheticRootfs } from "./support/build.ts";

let dir: string;
let canary: string;

/**
 * Payloads name the canary through $OSIMG_CANARY (set in this process, so inherited by every program the
 * build runs): a payload that reached a shell would create it. They hold no "/" so that files can be named
 * after them; the last one is a path that climbs out.
 */
const PAYLOADS = [
  "`touch $OSIMG_CANARY`",
  "$(touch $OSIMG_CANARY)",
  "x; touch $OSIMG_CANARY",
  "' ; touch $OSIMG_CANARY #",
  '" ; touch $OSIMG_CANARY #',
  "a\ntouch $OSIMG_CANARY",
  "*",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell payload
  "${IFS}touch${IFS}$OSIMG_CANARY",
  "| touch $OSIMG_CANARY &",
  "../../../../../tmp/osimg-injection-escape",
];

/** TOML basic string with escapes: any payload fits. */
const toml = (value: string) => JSON.stringify(value);

/** A spec with `value` in the field at `field`; files it names are created in `specDir`. */
function specWith(field: string, value: string): string {
  const lines: Record<string, string> = {
    "from_repo.version": `[from_repo]\nsuite = "bookworm"\nversion = ${toml(value)}\n`,
    "from_repo.mirror": `[from_repo]\nsuite = "bookworm"\nmirror = ${toml(`http://127.0.0.1/${value}`)}\n`,
    "from_repo.packages": `[from_repo]\nsuite = "bookworm"\npackages = [${toml(value)}]\n`,
    "from_repo.root_passwd": `[from_repo]\nsuite = "bookworm"\nroot_passwd = ${toml(value)}\n`,
    "from_repo.upgrade_img": `[from_repo]\nsuite = "bookworm"\nupgrade_img = ${toml(value)}\n`,
    "from_repo.keyring": `[from_repo]\nsuite = "bookworm"\nkeyring = ${toml(value)}\n`,
    "users.name": `[from_repo]\nsuite = "bookworm"\n[[users]]\nname = ${toml(value)}\n`,
    "users.passwd": `[from_repo]\nsuite = "bookworm"\n[[users]]\nname = "ops"\npasswd = ${toml(value)}\n`,
    "users.groups": `[from_repo]\nsuite = "bookworm"\n[[users]]\nname = "ops"\ngroups = [${toml(value)}]\n`,
    "users.shell": `[from_repo]\nsuite = "bookworm"\n[[users]]\nname = "ops"\nshell = ${toml(`/bin/${value}`)}\n`,
    "users.ssh_authorized_keys": `[from_repo]\nsuite = "bookworm"\n[[users]]\nname = "ops"\nssh_authorized_keys = [${toml(`ssh-ed25519 AAAAC3Nza ${value}`)}]\n`,
    "copy_files.src": `[from_repo]\nsuite = "bookworm"\n[[copy_files]]\nsrc = ${toml(value)}\ndst = "/etc/x"\n`,
    "copy_files.dst": `[from_repo]\nsuite = "bookworm"\n[[copy_files]]\nsrc = "plain"\ndst = ${toml(`/etc/${value}`)}\n`,
    "copy_files.owner": `[from_repo]\nsuite = "bookworm"\n[[copy_files]]\nsrc = "plain"\ndst = "/etc/x"\nowner = ${toml(value)}\n`,
    "systemd_service.name": `[from_repo]\nsuite = "bookworm"\n[systemd_service]\nname = [${toml(value)}]\n`,
    "chroot_script.path": `[from_repo]\nsuite = "bookworm"\n[chroot_script]\npath = ${toml(value)}\n`,
    "persist_mkdir.name": `[from_repo]\nsuite = "bookworm"\n[persist_mkdir]\nname = [${toml(value)}]\n`,
    "grub.passwd": `[from_repo]\nsuite = "bookworm"\n[grub]\npasswd = ${toml(value)}\n`,
    "pxe_config.disk": `[from_repo]\nsuite = "bookworm"\n[pxe_config]\ndhcp = true\nserver_ip = "10.0.0.1"\ndisk = ${toml(value)}\n`,
    "pxe_config.net_name": `[from_repo]\nsuite = "bookworm"\n[pxe_config]\ndhcp = true\nserver_ip = "10.0.0.1"\ndisk = "/dev/vda"\nnet_name = ${toml(value)}\n`,
    "pxe_config.rootfs_name": `[from_repo]\nsuite = "bookworm"\n[pxe_config]\ndhcp = true\nserver_ip = "10.0.0.1"\ndisk = "/dev/vda"\nrootfs_name = ${toml(value)}\n`,
    "pxe_config.server_ip": `[from_repo]\nsuite = "bookworm"\n[pxe_config]\ndhcp = true\nserver_ip = ${toml(value)}\ndisk = "/dev/vda"\n`,
    "pxe_config.server_port": `[from_repo]\nsuite = "bookworm"\n[pxe_config]\ndhcp = true\nserver_ip = "10.0.0.1"\nserver_port = ${toml(value)}\ndisk = "/dev/vda"\n`,
    "admin_container.img_name": `[from_repo]\nsuite = "bookworm"\n[admin_container]\nimg_name = ${toml(value)}\n`,
    "admin_container.hostshell": `[from_repo]\nsuite = "bookworm"\n[admin_container]\nhostshell = ${toml(value)}\n`,
    "catalog.OS_NAME": `[from_repo]\nsuite = "bookworm"\n[catalog]\nOS_NAME = ${toml(value)}\nCLOUD_USER = "debian"\n`,
    "catalog.OS_FAMILY_ID": `[from_repo]\nsuite = "bookworm"\n[catalog]\nOS_NAME = "x"\nCLOUD_USER = "debian"\nOS_FAMILY_ID = ${toml(value)}\n`,
  };
  return lines[field] as string;
}

const FIELDS = [
  "from_repo.version",
  "from_repo.mirror",
  "from_repo.packages",
  "from_repo.root_passwd",
  "from_repo.upgrade_img",
  "from_repo.keyring",
  "users.name",
  "users.passwd",
  "users.groups",
  "users.shell",
  "users.ssh_authorized_keys",
  "copy_files.src",
  "copy_files.dst",
  "copy_files.owner",
  "systemd_service.name",
  "chroot_script.path",
  "persist_mkdir.name",
  "grub.passwd",
  "pxe_config.disk",
  "pxe_config.net_name",
  "pxe_config.rootfs_name",
  "pxe_config.server_ip",
  "pxe_config.server_port",
  "admin_container.img_name",
  "admin_container.hostshell",
  "catalog.OS_NAME",
  "catalog.OS_FAMILY_ID",
];

beforeAll(async () => {
  dir = await tempDir("osimg-injection-");
  canary = join(dir, "CANARY");
  process.env.OSIMG_CANARY = canary;
});

afterAll(async () => {
  if (dir) await removeOwnedTree(dir);
});

describe("injection: every string field", () => {
  it("refused by validation or carried as data into plans whose scripts are bash -n and shellcheck clean", async () => {
    let accepted = 0;
    let refused = 0;
    const scripts: string[] = [];
    for (const field of FIELDS) {
      for (const [i, payload] of PAYLOADS.entries()) {
        const specDir = join(dir, "specs", `${field}-${i}`);
        await mkdir(specDir, { recursive: true });
        // Files the payload names, where a file name can hold it.
        if (!payload.includes("/") && !payload.includes("\n"))
          await writeFile(join(specDir, payload), "#!/bin/sh\ntrue\n", { mode: 0o755 });
        await writeFile(join(specDir, "plain"), "plain\n");
        const specFile = join(specDir, "spec.toml");
        await writeFile(specFile, specWith(field, payload));
        const parsed = parseSpec(await readFile(specFile, "utf8"));
        if (!parsed.spec) {
          refused++;
          expect(parsed.findings.some((f) => f.severity === "error")).toBe(true);
          continue;
        }
        accepted++;
        // One kind per field, the one that uses it (container-disk runs through every stage but PXE's).
        const kind = field.startsWith("pxe_config")
          ? "pxe-img"
          : field.startsWith("admin_container")
            ? "admin-container"
            : field === "from_repo.upgrade_img"
              ? "upgrade-img"
              : "container-disk";
        {
          const out = join(dir, "debug", `${field}-${i}-${kind}`);
          try {
            const { files } = await writeDebug({
              specFile,
              kind,
              outDir: out,
              dataDir: join(dir, "data"),
              push: { reference: "127.0.0.1:5000/os/x:1", tlsVerify: false },
              rootless: { uid: { start: 100000, count: 65536 }, gid: { start: 100000, count: 65536 } },
            });
            scripts.push(...files.filter((f) => f.endsWith(".sh")));
          } catch (error) {
            // A file the spec names that cannot exist (e.g. a keyring path with a line break) is a finding.
            expect(error).toBeInstanceOf(SpecError);
          }
        }
      }
    }
    expect(accepted).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(100);
    for (const script of scripts) expect(spawnSync("bash", ["-n", script]).status, script).toBe(0);
    // shellcheck takes many files at once.
    for (let i = 0; i < scripts.length; i += 200) {
      const check = spawnSync("shellcheck", ["-s", "bash", ...scripts.slice(i, i + 200)], {
        encoding: "utf8",
      });
      expect(check.stdout).toBe("");
    }
    expect(existsSync(canary)).toBe(false);
  }, 300_000);
});

describe("injection: the pipeline, run on a synthetic root filesystem", () => {
  it("builds a disk and an OCI image with payloads in every field that takes free text; nothing runs, nothing escapes", async () => {
    const specDir = join(dir, "pipeline");
    await mkdir(join(specDir, "files"), { recursive: true });
    const [backtick, subshell, semicolon, single, double, newline, glob] = PAYLOADS as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const names = [backtick, subshell, semicolon, single, double, glob] as string[];
    for (const name of names) await writeFile(join(specDir, "files", name), `content of ${name}\n`);
    const script = `run ${subshell} ${single}.sh`;
    await writeFile(join(specDir, script), `#!/bin/sh\necho chroot-ran > /chroot-ran\n`, { mode: 0o755 });
    // A symlink that points out of the spec's directory is refused at build time.
    await symlink("/etc/hostname", join(specDir, "files", "outside"));
    const spec = [
      "[from_repo]",
      'suite = "bookworm"',
      `version = ${toml(`${backtick} ${subshell} ${newline.replace("\n", " ")}`)}`,
      `mirror = ${toml(`http://127.0.0.1/${PAYLOADS[7]}`)}`,
      "[[users]]",
      'name = "ops"',
      `ssh_authorized_keys = [${toml(`ssh-ed25519 AAAAC3Nza ${semicolon} ${double}`)}]`,
      ...names.flatMap((name, i) => [
        "[[copy_files]]",
        `src = ${toml(`files/${name}`)}`,
        `dst = ${toml(i === 0 ? `/etc/evil/${name}` : `/opt/${name}`)}`,
        'mode = "0640"',
        'owner = "ops:ops"',
      ]),
      "[systemd_service]",
      'name = ["demo"]',
      "[chroot_script]",
      `path = ${toml(script)}`,
      "[persist_mkdir]",
      `name = [${names.map(toml).join(", ")}]`,
      "[disk_partition]",
      "root = 256",
      'img_size = "1Gi"',
      "[catalog]",
      `OS_NAME = ${toml(`${single} ${subshell}`)}`,
      'CLOUD_USER = "debian"',
      "",
    ].join("\n");
    const specFile = join(specDir, "spec.toml");
    await writeFile(specFile, spec);
    const dataDir = join(dir, "pipeline-data");
    const out = join(dir, "pipeline-out");
    // The synthetic root filesystem goes where the bootstrap would have cached Debian's; its /etc/evil is
    // a symlink to /../../tmp, which must resolve inside the image.
    const prepared = await prepareBuild(
      { specFile, kind: "container-disk", outDir: out, dataDir },
      "probe",
    ).catch((error: unknown) => {
      throw error instanceof SpecError ? new Error(error.message) : error;
    });
    const { plan } = prepared;
    await writeSyntheticRootfs(plan.baseTar);
    const record = await build({ specFile, kind: "container-disk", outDir: out, dataDir });
    expect(record.baseCached).toBe(true);
    expect(existsSync(canary)).toBe(false);
    expect(existsSync("/tmp/osimg-injection-escape")).toBe(false);
    const entries = await indexTar(join(out, "rootfs.tar"));
    for (const e of entries) {
      expect(e.path.split("/")).not.toContain("..");
      expect(e.rawPath.startsWith("/")).toBe(false);
    }
    const byPath = new Map(entries.map((e) => [e.path, e]));
    for (const name of names.slice(1)) {
      const entry = byPath.get(`opt/${name}`);
      expect(entry, name).toMatchObject({ type: "file", mode: 0o640, uid: 1000, gid: 1000 });
      expect((await readEntry(join(out, "rootfs.tar"), entry as never)).toString()).toBe(
        `content of ${name}\n`,
      );
    }
    expect(byPath.get("chroot-ran")).toBeDefined();
    expect(byPath.get("etc/systemd/system/multi-user.target.wants/demo.service")).toMatchObject({
      type: "symlink",
      linkname: "/lib/systemd/system/demo.service",
    });
    const osRelease = (
      await readEntry(join(out, "rootfs.tar"), byPath.get("usr/lib/os-release") as never)
    ).toString();
    expect(osRelease).toContain('IMAGE_VERSION="\\`touch \\$OSIMG_CANARY\\` \\$(touch \\$OSIMG_CANARY)');
    expect(record.outputs.map((o) => o.name)).toEqual([
      "rootfs.tar",
      "system.raw",
      "system.qcow2",
      "container-disk",
    ]);
    // Through the image's /etc/evil -> /../../tmp: inside the image, never on the host.
    expect(
      byPath.get(`tmp/${names[0]}`),
      [...byPath.keys()].filter((p) => p.includes("touch")).join("\n"),
    ).toMatchObject({ type: "file" });
    expect(existsSync(`/tmp/${names[0]}`)).toBe(false);
    // The persist partition (after the 128 MiB ESP and the 256 MiB root) holds the directories, named literally.
    const persistOffset = (1 + 128 + 256) * 2 ** 20;
    const listing = spawnSync(
      "debugfs",
      ["-R", "ls -p /", `${join(out, "system.raw")}?offset=${persistOffset}`],
      { encoding: "utf8" },
    );
    const persisted = listing.stdout
      .split("\n")
      .map((l) => l.split("/")[5])
      .filter(Boolean);
    for (const name of names) expect(persisted).toContain(name);
    expect(existsSync(join(dataDir, "build", "work"))).toBe(true);
    expect(spawnSync("ls", [join(dataDir, "build", "work")], { encoding: "utf8" }).stdout.trim()).toBe("");

    // A symlink out of the spec's directory: refused, at the field's line.
    await writeFile(specFile, spec.replace(`src = ${toml(`files/${names[1]}`)}`, 'src = "files/outside"'));
    const refused = await build({
      specFile,
      kind: "vm-img",
      outDir: join(dir, "refused-out"),
      dataDir,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SpecError);
    expect((refused as SpecError).findings[0]).toMatchObject({
      path: "copy_files[1].src",
      code: "build.rootfs",
    });
    expect((refused as SpecError).message).toContain("leads outside");
    expect(existsSync(join(dir, "refused-out", "rootfs.tar"))).toBe(false);
  }, 300_000);

  it("osimg build stopped by SIGTERM removes its work directory and partial outputs (exit 143)", async () => {
    const specDir = join(dir, "sigterm");
    await mkdir(specDir, { recursive: true });
    const specFile = join(specDir, "spec.toml");
    await writeFile(specFile, '[from_repo]\nsuite = "bookworm"\n[disk_partition]\nroot = 256\n');
    const dataDir = join(dir, "sigterm-data");
    const out = join(dir, "sigterm-out");
    const { plan } = await prepareBuild({ specFile, kind: "vm-img", outDir: out, dataDir }, "probe");
    await writeSyntheticRootfs(plan.baseTar);
    const child = spawn(
      process.execPath,
      [OSIMG_BIN, "build", "--file", specFile, "vm-img", "--out", out, "--data-dir", dataDir],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("==> filesystem.boot-files") && !child.killed) child.kill("SIGTERM");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, stderr).toBe(143);
    expect(stderr).toContain("SIGTERM: stopping the build and removing its work directory");
    expect(await readdir(join(dataDir, "build", "work"))).toEqual([]);
    // Nor its scratch directory (on /dev/shm when it has room), with the unpacked tree in it.
    const scratch = /^build \S+: .*, scratch in (\S+)\)$/m.exec(stderr)?.[1];
    expect(scratch, stderr).toBeDefined();
    expect(existsSync(scratch as string)).toBe(false);
    expect(await readdir(out)).toEqual([]);
  }, 120_000);
});
