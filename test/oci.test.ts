// Our OCI writer and registry client, checked by other tools: layouts with uncompressed, gzip and zstd
// layers that skopeo inspects and umoci unpacks (owners and modes kept), the same inputs giving the same
// digests, a push to Debian's docker-registry (blobs already there skipped), deletion; and the other
// image kinds (upgrade-img, admin-container, pxe-img) built on a synthetic root filesystem.
import { execFile } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, prepareBuild } from "../src/build/build.ts";
import { buildOciImage, type OciCompression } from "../src/oci/layout.ts";
import { deleteImage, parseReference, pushLayout } from "../src/oci/push.ts";
import {
  asImageOwners,
  type Registry,
  removeOwnedTree,
  startRegistry,
  tempDir,
  writeSyntheticRootfs,
} from "./support/build.ts";

const run = promisify(execFile);
let dir: string;
let registry: Registry;
let payload: string;

beforeAll(async () => {
  dir = await tempDir("osimg-oci-");
  registry = await startRegistry();
  payload = join(dir, "disk.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", payload, "64M"]);
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (dir) await removeOwnedTree(dir);
});

const containerDisk = (layout: string, compression: OciCompression) =>
  buildOciImage({
    layout,
    tag: "v1",
    layers: [
      {
        kind: "files",
        entries: [
          { path: "disk", type: "dir", mode: 0o555, uid: 107, gid: 107 },
          { path: "disk/disk.qcow2", type: "file", from: payload, mode: 0o444, uid: 107, gid: 107 },
        ],
      },
    ],
    config: { labels: { a: "b" } },
    compression,
    created: 1_735_689_600,
  });

describe("OCI layouts", () => {
  it.each([
    "none",
    "gzip",
    "zstd",
  ] as const)("%s layers: skopeo inspects them; diff_id is the uncompressed tar's digest", async (compression) => {
    const layout = join(dir, `cd-${compression}`);
    const image = await containerDisk(layout, compression);
    const { stdout } = await run("skopeo", ["inspect", `oci:${layout}:v1`]);
    expect(JSON.parse(stdout)).toMatchObject({
      Digest: image.manifest.digest,
      Created: "2025-01-01T00:00:00Z",
      Labels: { a: "b" },
      Layers: [image.layers[0]?.digest],
    });
    const manifest = JSON.parse(
      await readFile(join(layout, "blobs", "sha256", image.manifest.digest.slice(7)), "utf8"),
    );
    expect(manifest.layers[0].mediaType).toBe(
      `application/vnd.oci.image.layer.v1.tar${compression === "none" ? "" : `+${compression}`}`,
    );
    const blob = join(layout, "blobs", "sha256", (image.layers[0]?.digest ?? "").slice(7));
    expect((await stat(blob)).size).toBe(image.layers[0]?.size);
    const decompress = compression === "gzip" ? "gzip -dc" : compression === "zstd" ? "zstd -dc" : "cat";
    const { stdout: diff } = await run("sh", ["-c", `${decompress} "$1" | sha256sum`, "sh", blob]);
    expect(`sha256:${diff.split(" ")[0]}`).toBe(image.layers[0]?.diffId);
    const { stdout: list } = await run("sh", ["-c", `${decompress} "$1" | tar -tvf -`, "sh", blob]);
    expect(list).toMatch(/^dr-xr-xr-x 107\/107 +0 2025-01-01 00:00 disk\/$/m);
    expect(list).toMatch(/^-r--r--r-- 107\/107 +\d+ 2025-01-01 00:00 disk\/disk\.qcow2$/m);
  });

  it("umoci unpacks uncompressed and gzip layers with their owners (Debian's umoci cannot read zstd)", async () => {
    for (const compression of ["none", "gzip"] as const) {
      const target = join(dir, `unpacked-${compression}`);
      const stdout = await asImageOwners(
        'umoci raw unpack --image "$1" "$2" && stat -c "%u:%g %a %s" "$2/disk/disk.qcow2"',
        `${join(dir, `cd-${compression}`)}:v1`,
        target,
      );
      expect(stdout.trim()).toBe(`107:107 444 ${(await stat(payload)).size}`);
    }
  });

  it("the same inputs give the same digests", async () => {
    const a = await containerDisk(join(dir, "same-a"), "gzip");
    const b = await containerDisk(join(dir, "same-b"), "gzip");
    expect(b.manifest.digest).toBe(a.manifest.digest);
  });

  it("pushes through the distribution API, skipping blobs the registry has, and deletes", async () => {
    const layout = join(dir, "cd-none");
    const reference = `${registry.address}/osimg/disk:v1`;
    const first = await pushLayout({ layout, tag: "v1", reference, tlsVerify: false });
    expect(first).toMatchObject({ uploaded: 2, skipped: 0 });
    const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reference}`]);
    expect(JSON.parse(stdout).Digest).toBe(first.digest);
    const again = await pushLayout({
      layout,
      tag: "v1",
      reference: `${registry.address}/osimg/disk:v2`,
      tlsVerify: false,
    });
    expect(again).toMatchObject({ uploaded: 0, skipped: 2, digest: first.digest });
    await deleteImage({ reference, tlsVerify: false });
    await expect(run("skopeo", ["inspect", "--tls-verify=false", `docker://${reference}`])).rejects.toThrow();
    await expect(deleteImage({ reference, tlsVerify: false })).rejects.toThrow(/does not exist/);
  });

  it("references name their registry", () => {
    expect(parseReference("127.0.0.1:5000/os/debian:12")).toEqual({
      registry: "127.0.0.1:5000",
      repository: "os/debian",
      tag: "12",
    });
    expect(parseReference("registry.example.com/debian")).toEqual({
      registry: "registry.example.com",
      repository: "debian",
      tag: "latest",
    });
    expect(() => parseReference("debian:12")).toThrow(/names no registry/);
    expect(() => parseReference("r.example/Debian:1")).toThrow(/repository name/);
  });
});

describe("the other kinds, on a synthetic root filesystem", () => {
  const SPEC = `[from_repo]\nsuite = "bookworm"\nupgrade_img = "osimg-upgrade:7"\n[admin_container]\nimg_name = "osimg-admin:3"\nauthorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsimg admin"]\n[pxe_config]\ndhcp = true\nserver_ip = "192.0.2.10"\ndisk = "/dev/vda"\nnet_name = "eth0"\nrootfs_name = "node.tar"\n`;
  let specFile: string;
  const dataDir = () => join(dir, "kinds-data");

  beforeAll(async () => {
    await mkdir(join(dir, "kinds"), { recursive: true });
    specFile = join(dir, "kinds", "spec.toml");
    await writeFile(specFile, SPEC);
    for (const kind of ["upgrade-img", "admin-container", "pxe-img"] as const) {
      const { plan } = await prepareBuild(
        { specFile, kind, outDir: join(dir, "probe"), dataDir: dataDir() },
        "probe",
      );
      await writeSyntheticRootfs(plan.baseTar, { updateInitramfs: kind === "pxe-img" });
    }
  });

  it("upgrade-img: an OCI image holding the root filesystem as /os.tar", async () => {
    const out = join(dir, "upgrade");
    const record = await build({ specFile, kind: "upgrade-img", outDir: out, dataDir: dataDir() });
    const { stdout } = await run("skopeo", ["inspect", `oci:${join(out, "upgrade-img")}:7`]);
    expect(JSON.parse(stdout).Digest).toBe(
      record.outputs.find((o) => o.name === "upgrade-img")?.manifestDigest,
    );
    const target = join(dir, "upgrade-unpacked");
    const sum = await asImageOwners(
      'umoci raw unpack --image "$1" "$2" && sha256sum "$2/os.tar"',
      `${join(out, "upgrade-img")}:7`,
      target,
    );
    expect(sum.split(" ")[0]).toBe(record.outputs.find((o) => o.name === "rootfs.tar")?.sha256);
  });

  it("admin-container: the root filesystem as the layer, sshd as the command, root's keys, no host keys", async () => {
    const out = join(dir, "admin");
    await build({ specFile, kind: "admin-container", outDir: out, dataDir: dataDir(), compression: "gzip" });
    const { stdout } = await run("skopeo", ["inspect", "--config", `oci:${join(out, "admin-container")}:3`]);
    expect(JSON.parse(stdout).config).toMatchObject({
      Cmd: ["/bin/sh", "-c", "ssh-keygen -A && exec /usr/sbin/sshd -D -e"],
      ExposedPorts: { "22/tcp": {} },
    });
    const target = join(dir, "admin-unpacked");
    const keys = await asImageOwners(
      'umoci raw unpack --image "$1" "$2" && stat -c "%a %u" "$2/root/.ssh/authorized_keys" && cat "$2/root/.ssh/authorized_keys"',
      `${join(out, "admin-container")}:3`,
      target,
    );
    expect(keys).toMatch(/^600 0\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsimg admin/);
    await expect(stat(join(target, "etc", "ssh", "ssh_host_ed25519_key"))).rejects.toThrow(/ENOENT/);
    expect((await stat(join(target, "run", "sshd"))).isDirectory()).toBe(true);
  });

  it("pxe-img: kernel, initramfs, the root filesystem with the network set up, pxelinux and iPXE configs", async () => {
    const out = join(dir, "pxe");
    const record = await build({ specFile, kind: "pxe-img", outDir: out, dataDir: dataDir() });
    expect(record.outputs.map((o) => o.name)).toEqual([
      "node.tar",
      "vmlinuz",
      "initramfs.img",
      "pxelinux.cfg/default",
      "boot.ipxe",
    ]);
    expect(await readFile(join(out, "pxelinux.cfg", "default"), "utf8")).toContain(
      "APPEND boot=osimg-install ip=dhcp net.ifnames=0 osimg.rootfs=http://192.0.2.10/node.tar osimg.disk=/dev/vda",
    );
    expect(await readFile(join(out, "boot.ipxe"), "utf8")).toMatch(
      /^#!ipxe\nkernel http:\/\/192\.0\.2\.10\/vmlinuz /,
    );
    const { stdout } = await run("tar", [
      "-xOf",
      join(out, "node.tar"),
      "./etc/network/interfaces.d/osimg-pxe",
    ]);
    expect(stdout).toBe("allow-hotplug eth0\niface eth0 inet dhcp\n");
    expect((await stat(join(out, "vmlinuz"))).size).toBe(64 * 1024);
    // The initramfs was regenerated inside the image, with the installer's hook and boot script there.
    const initramfs = await readFile(join(out, "initramfs.img"));
    expect(initramfs.subarray(64 * 1024).toString()).toBe("update-initramfs -u -k all OSIMG_PXE_BUILD=1\n");
    const { stdout: fstab } = await run("tar", ["-xOf", join(out, "node.tar"), "./etc/fstab"]);
    expect(fstab).toBe(`PARTUUID=${record.ids.rootPart} / ext4 errors=remount-ro 0 1\n`);
  });
});
