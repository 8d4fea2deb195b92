// A real build: examples/debian-cloud/spec.toml from Debian's packages (the bootstrapped root filesystem
// is cached under the data directory, so reruns take seconds), then booted under BIOS and UEFI to
// cloud-init's finished line, registered into a catalog, rebuilt with a changed file (the root filesystem
// comes from the cache), packed as a containerDisk that skopeo and umoci accept, pushed to a real registry
// (Debian's docker-registry on 127.0.0.1) and deleted from it. An interrupted build leaves nothing behind.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildRecord, build } from "../src/build/build.ts";
import { registerBuild } from "../src/build/register.ts";
import { BuildInterrupted } from "../src/build/run.ts";
import { parseSpec } from "../src/build/spec.ts";
import { indexTar, readEntry, type TarEntry } from "../src/build/tar.ts";
import { parseCatalog } from "../src/catalog/parse.ts";
import { type BootTestResult, bootTest } from "../src/images/boot-test.ts";
import { deleteImage } from "../src/oci/push.ts";
import { buildTestDataDir, type Registry, startRegistry, tempDir } from "./support/build.ts";

const run = promisify(execFile);
const EXAMPLE_DIR = new URL("../examples/debian-cloud/", import.meta.url).pathname;
const BOOT_MS = 600_000;

let dir: string;
let record: BuildRecord;
let boots: Record<"bios" | "efi", BootTestResult>;
let registry: Registry;
const log = (line: string) => {
  if (line.startsWith("==>") || line.startsWith("build ")) process.stderr.write(`${line}\n`);
};

beforeAll(async () => {
  dir = await tempDir("osimg-debian-build-");
  registry = await startRegistry();
  record = await build({
    specFile: join(EXAMPLE_DIR, "spec.toml"),
    kind: "vm-img",
    outDir: join(dir, "out"),
    dataDir: buildTestDataDir(),
    log,
  });
}, 1_800_000);

afterAll(async () => {
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function tarFiles(
  path: string,
): Promise<{ entries: Map<string, TarEntry>; text(p: string): Promise<string> }> {
  const entries = new Map((await indexTar(path)).map((e) => [e.path, e]));
  return {
    entries,
    async text(p) {
      const entry = entries.get(p);
      if (!entry) throw new Error(`${p} is not in ${path}`);
      return (await readEntry(path, entry)).toString("utf8");
    },
  };
}

describe("a Debian image built from examples/debian-cloud", () => {
  it("records the build: spec hash, tools, packages with versions, output digests, durations", async () => {
    const written = JSON.parse(await readFile(join(dir, "out", "build.json"), "utf8")) as BuildRecord;
    expect(written.buildId).toBe(record.buildId);
    const { stdout } = await run("sha256sum", [join(EXAMPLE_DIR, "spec.toml")]);
    expect(written.specSha256).toBe(stdout.split(" ")[0]);
    expect(Object.keys(written.tools)).toEqual(
      expect.arrayContaining(["mmdebstrap", "mkfs.ext4", "sfdisk", "qemu-img", "syslinux"]),
    );
    expect(written.packages.find((p) => p.name === "openssh-server")?.version).toMatch(/^1:9\./);
    expect(written.packages.length).toBeGreaterThan(150);
    for (const output of written.outputs.filter((o) => o.kind === "file")) {
      const { stdout: sum } = await run("sha256sum", [output.path]);
      expect(sum.split(" ")[0], output.name).toBe(output.sha256);
    }
    expect(written.outputs.map((o) => o.name)).toEqual(["rootfs.tar", "system.raw", "system.qcow2"]);
    expect(Object.keys(written.stages)).toEqual(["bootstrap", "customize", "chroot", "filesystem", "disk"]);
    const { stdout: info } = await run("qemu-img", [
      "info",
      "--output=json",
      join(dir, "out", "system.qcow2"),
    ]);
    expect(JSON.parse(info)).toMatchObject({
      format: "qcow2",
      "virtual-size": (1 + 128 + 2048 + 1) * 2 ** 20,
    });
  }, 300_000);

  it("has what the spec asked for: users, files with modes and owners, the unit, the chroot script's work", async () => {
    const rootfs = await tarFiles(join(dir, "out", "rootfs.tar"));
    const passwd = await rootfs.text("etc/passwd");
    expect(passwd).toMatch(/^ops:x:1000:1000::\/home\/ops:\/bin\/bash$/m);
    expect(await rootfs.text("etc/shadow")).toMatch(/^ops:\$6\$osimgexample\$PmMKeq/m);
    expect(await rootfs.text("etc/shadow")).toMatch(/^root:!:/m);
    expect(await rootfs.text("etc/group")).toMatch(/^sudo:x:27:ops$/m);
    expect(rootfs.entries.get("home/ops/notes.txt")).toMatchObject({ mode: 0o600, uid: 1000, gid: 1000 });
    expect(rootfs.entries.get("home/ops")).toMatchObject({ type: "dir", mode: 0o700, uid: 1000 });
    expect(await rootfs.text("etc/motd")).toContain("built by osimg");
    expect(await rootfs.text("etc/cloud/cloud.cfg.d/90-osimg-datasource.cfg")).toContain("NoCloud");
    expect(
      rootfs.entries.get("etc/systemd/system/multi-user.target.wants/osimg-hello.service"),
    ).toMatchObject({ type: "symlink", linkname: "/etc/systemd/system/osimg-hello.service" });
    expect(await rootfs.text("etc/osimg-release")).toBe("built-by=osimg\n");
    expect(rootfs.entries.has("osimg-chroot-script")).toBe(false);
    expect(rootfs.entries.get("persist/data")).toMatchObject({ type: "dir" });
    expect(await rootfs.text("usr/lib/os-release")).toContain('IMAGE_VERSION="2025.1"');
    expect(await rootfs.text("etc/fstab")).toMatch(/^PARTUUID=[0-9a-f-]{36} \/ ext4/);
    expect(await rootfs.text("etc/hostname")).toBe("localhost\n");
    expect(await rootfs.text("etc/resolv.conf")).toBe("");
  });

  it(
    "boots under BIOS and under UEFI to cloud-init's finished line",
    async () => {
      const image = join(dir, "out", "system.qcow2");
      const [bios, efi] = await Promise.all(
        (["bios", "efi"] as const).map((firmware) => bootTest({ image, firmware, timeoutMs: BOOT_MS })),
      );
      boots = { bios: bios as BootTestResult, efi: efi as BootTestResult };
      for (const result of [bios, efi])
        expect(
          result?.ok,
          `${result?.firmware}: ${result?.reason}\n${result?.lastConsoleLines.join("\n")}`,
        ).toBe(true);
      expect(bios?.readyLine).toMatch(/Cloud-init v\. \S+ finished at/);
    },
    BOOT_MS + 120_000,
  );

  it("registers into a catalog after the boot test, leaving comments and other entries as they were", async () => {
    expect(boots?.bios?.ok).toBe(true);
    const catalogPath = join(dir, "images.yaml");
    const before =
      '# Our images\nimages:\n  # Ubuntu, from upstream\n  - OS_NAME: "Ubuntu 24.04"\n    CLOUD_USER: ubuntu\n    OS_IMAGE_URL: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"\n';
    await writeFile(catalogPath, before);
    const section = parseSpec(await readFile(join(EXAMPLE_DIR, "spec.toml"), "utf8")).spec?.catalog;
    const first = await registerBuild({
      catalogPath,
      section,
      record,
      bootTimeoutMs: BOOT_MS,
      booted: boots.bios,
    });
    expect(first.action).toBe("added");
    const text = await readFile(catalogPath, "utf8");
    expect(text.startsWith(before)).toBe(true);
    const parsed = parseCatalog(text);
    expect(parsed.findings.filter((f) => f.severity === "error")).toEqual([]);
    const entry = parsed.entries.find((e) => e.values.OS_NAME === "Debian 12 (osimg example)");
    expect(entry?.values).toMatchObject({
      CLOUD_USER: "debian",
      OS_IMAGE_URL: "https://images.example.com/osimg/debian-cloud/system.qcow2",
      OS_IMAGE_SHA256: record.outputs.find((o) => o.name === "system.qcow2")?.sha256,
      MIN_MEMORY: "1G",
      MIN_VCPU: "1",
      MIN_STORAGE: "4G",
      FIRMWARE_TYPE: "bios",
    });
    const second = await registerBuild({
      catalogPath,
      section,
      record,
      bootTimeoutMs: BOOT_MS,
      booted: boots.bios,
    });
    expect(second.action).toBe("updated");
    expect(parseCatalog(await readFile(catalogPath, "utf8")).entries).toHaveLength(2);
    // A boot test under another firmware than the entry's does not count.
    await expect(
      registerBuild({ catalogPath, section, record, bootTimeoutMs: BOOT_MS, booted: boots.efi }),
    ).rejects.toThrow(/under efi/);
  });

  it("rebuilt with a changed file from the cached root filesystem, as a containerDisk that skopeo and umoci accept, pushed and deleted", async () => {
    const specDir = join(dir, "changed");
    await cp(EXAMPLE_DIR, specDir, { recursive: true });
    await writeFile(join(specDir, "files", "motd"), "changed motd\n");
    const reference = `${registry.address}/osimg/debian-cloud:test`;
    const started = Date.now();
    const again = await build({
      specFile: join(specDir, "spec.toml"),
      kind: "container-disk",
      outDir: join(dir, "cd"),
      dataDir: buildTestDataDir(),
      push: { reference, tlsVerify: false },
      log,
    });
    expect(again.baseCached).toBe(true);
    expect(again.baseKey).toBe(record.baseKey);
    expect(Date.now() - started).toBeLessThan(record.baseCached ? 600_000 : record.durationMs);
    const layout = join(dir, "cd", "container-disk");
    const { stdout: local } = await run("skopeo", ["inspect", `oci:${layout}:latest`]);
    const manifestDigest = again.outputs.find((o) => o.name === "container-disk")?.manifestDigest;
    expect(JSON.parse(local)).toMatchObject({ Digest: manifestDigest, Architecture: "amd64", Os: "linux" });
    if (process.getuid?.() === 0) {
      const unpacked = join(dir, "unpacked");
      await run("umoci", ["raw", "unpack", "--image", `${layout}:latest`, unpacked]);
      const { stdout } = await run("stat", ["-c", "%u:%g %a %s", join(unpacked, "disk", "system.qcow2")]);
      expect(stdout.trim()).toBe(`107:107 444 ${again.outputs.find((o) => o.name === "system.qcow2")?.size}`);
      await rm(unpacked, { recursive: true, force: true });
    }
    expect(again.push).toMatchObject({ reference, digest: manifestDigest, uploaded: 2 });
    const { stdout: remote } = await run("skopeo", [
      "inspect",
      "--tls-verify=false",
      `docker://${reference}`,
    ]);
    expect(JSON.parse(remote).Digest).toBe(manifestDigest);
    const rootfs = await tarFiles(join(dir, "cd", "rootfs.tar"));
    expect(await rootfs.text("etc/motd")).toBe("changed motd\n");
    await deleteImage({ reference, tlsVerify: false });
    await expect(run("skopeo", ["inspect", "--tls-verify=false", `docker://${reference}`])).rejects.toThrow();
  }, 900_000);

  it("an interrupted build removes its work directory and partial outputs", async () => {
    const dataDir = buildTestDataDir();
    const controller = new AbortController();
    const out = join(dir, "interrupted");
    let buildId = "";
    let scratch = "";
    const result = await build({
      specFile: join(EXAMPLE_DIR, "spec.toml"),
      kind: "vm-img",
      outDir: out,
      dataDir,
      signal: controller.signal,
      log: (line) => {
        buildId ||= /^build (\S+):/.exec(line)?.[1] ?? "";
        scratch ||= /, scratch in (\S+)\)$/.exec(line)?.[1] ?? "";
        if (line.startsWith("==> filesystem.unpack")) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(result).toBeInstanceOf(BuildInterrupted);
    expect(buildId).not.toBe("");
    expect(await readdir(join(dataDir, "build", "work"))).not.toContain(buildId);
    expect(scratch).not.toBe("");
    expect(existsSync(scratch)).toBe(false);
    expect(await readdir(out)).toEqual([]);
  }, 600_000);
});
