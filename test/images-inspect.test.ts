// Format inspection and the safety policy on fixtures made with qemu-img: every benign fixture agrees
// with `qemu-img info`, every malicious one is refused with its reason, locally and over HTTP with and
// without Range support.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ByteMap, NeedBytes } from "../src/images/bytes.ts";
import { findChecksum, parseChecksumFile } from "../src/images/checksums.ts";
import { inspectBytes } from "../src/images/inspect.ts";
import { declaredByName } from "../src/images/policy.ts";
import { probe } from "../src/images/probe.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { type ImageFixture, makeImageFixtures, qemuInfo } from "./support/image-fixtures.ts";

const dir = join(tmpdir(), `osimg-inspect-${process.pid}`);
let fixtures: ImageFixture[] = [];
let ranged: FixtureServer;
let plain: FixtureServer;

beforeAll(async () => {
  fixtures = await makeImageFixtures(dir);
  ranged = await startFixtureServer({ root: dir, range: true });
  plain = await startFixtureServer({ root: dir, range: false });
});
afterAll(async () => {
  await ranged?.stop();
  await plain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const QEMU_NAME: Record<string, string> = { vhd: "vpc", iso: "raw" };

/** The decompressed copy of a wrapped fixture, for qemu-img (which cannot read through the wrapper). */
function unwrapped(f: ImageFixture): string {
  const path = join(dir, f.name);
  if (!f.compression) return path;
  const out = join(dir, `unwrapped-${f.name.replace(/\.[^.]+$/, "")}`);
  const tool = { gzip: "gzip", xz: "xz", zstd: "zstd", bzip2: "bzip2" }[f.compression];
  execFileSync("sh", ["-c", `${tool} -dc "${path}" > "${out}"`]);
  return out;
}

describe("benign fixtures agree with qemu-img info", () => {
  it("has every format the issue names", () => {
    const names = fixtures
      .filter((f) => f.benign)
      .map((f) => `${f.format}${f.compression ? `.${f.compression}` : ""}`);
    for (const want of [
      "qcow2",
      "raw",
      "vmdk",
      "vhdx",
      "vhd",
      "vdi",
      "iso",
      "raw.gzip",
      "qcow2.xz",
      "qcow2.zstd",
      "vmdk.bzip2",
    ])
      expect(names).toContain(want);
  });

  it("each one: format, virtual size, cluster size and qcow2/vmdk specifics", async () => {
    for (const f of fixtures.filter((x) => x.benign)) {
      const report = await probe(join(dir, f.name), { discover: false });
      const context = `${f.name}: ${JSON.stringify(report.safety?.reasons)}`;
      expect(report.safety?.safe, context).toBe(true);
      expect(report.format, context).toBe(f.format);
      expect(report.compression, context).toBe(f.compression);
      const info = qemuInfo(unwrapped(f), f.qemuFormat);
      expect(info.format, context).toBe(QEMU_NAME[f.format] ?? f.format);
      const disk = report.inspection?.inner ?? report.inspection;
      // A raw image inside a wrapper has the size of its decompressed bytes: known only after the pull.
      if (!(f.compression && f.format === "raw"))
        expect(report.virtualSize, context).toBe(info["virtual-size"]);
      if (info["cluster-size"] !== undefined) expect(disk?.clusterSize, context).toBe(info["cluster-size"]);
      const specific = (info["format-specific"] as { data?: Record<string, unknown> } | undefined)?.data;
      if (f.format === "qcow2" && specific) {
        expect(disk?.details.compat, context).toBe(specific.compat);
        expect(disk?.details.refcountBits, context).toBe(specific["refcount-bits"]);
        if (specific["lazy-refcounts"] !== undefined)
          expect(disk?.details.lazyRefcounts, context).toBe(specific["lazy-refcounts"]);
        if (specific["compression-type"] !== undefined)
          expect(disk?.details.compressionType, context).toBe(specific["compression-type"]);
        if (specific.corrupt !== undefined) expect(disk?.details.corrupt, context).toBe(specific.corrupt);
        if (specific["extended-l2"] !== undefined)
          expect(disk?.details.extendedL2, context).toBe(specific["extended-l2"]);
      }
      if (f.format === "vmdk" && specific)
        expect(disk?.details.createType, context).toBe(specific["create-type"]);
    }
  });
});

describe("malicious fixtures are refused with their reason", () => {
  it("each one", async () => {
    const bad = fixtures.filter((f) => !f.benign);
    expect(bad.map((f) => f.reason)).toEqual(
      expect.arrayContaining([
        "backing_file",
        "data_file",
        "encrypted",
        "vmdk_extent",
        "format_mismatch",
        "ambiguous_format",
      ]),
    );
    for (const f of bad) {
      const report = await probe(join(dir, f.name), { discover: false });
      const reasons = report.safety?.reasons ?? [];
      const context = `${f.name}: ${JSON.stringify(reasons)}`;
      expect(report.safety?.safe, context).toBe(false);
      const reason = reasons.find((r) => r.code === f.reason);
      expect(reason?.severity, context).toBe("error");
      expect(reason?.message.length, context).toBeGreaterThan(10);
    }
  });

  it("names the host path a descriptor VMDK points at and the backing file of a qcow2", async () => {
    const vmdk = await probe(join(dir, "hostpath.vmdk"), { discover: false });
    expect(vmdk.safety?.reasons.map((r) => r.message).join("\n")).toContain("/etc/shadow");
    const qcow2 = await probe(join(dir, "backing.qcow2"), { discover: false });
    expect(qcow2.safety?.reasons.map((r) => r.message).join("\n")).toContain('"/etc/passwd"');
  });
});

describe("over HTTP", () => {
  for (const mode of ["with Range", "without Range"] as const) {
    it(`${mode}: the same answers as for the local files`, async () => {
      const server = mode === "with Range" ? ranged : plain;
      for (const f of fixtures) {
        const local = await probe(join(dir, f.name), { discover: false });
        const remote = await probe(`${server.url}/${f.name}`, { discover: false });
        const context = `${mode} ${f.name}: ${remote.error ?? ""} ${JSON.stringify(remote.inspection?.incomplete)}`;
        expect(remote.reachable, context).toBe(true);
        expect(remote.http?.rangeSupported, context).toBe(mode === "with Range");
        if (f.name === "fixed.vhd" && mode === "without Range") {
          // Its only signature is the footer at the end, out of a streamed prefix's reach: raw, and said so.
          expect(remote.format, context).toBe("raw");
          expect(remote.inspection?.notes.join("\n"), context).toMatch(/fixed VHD/);
          continue;
        }
        expect(remote.format, context).toBe(local.format);
        expect(remote.safety?.safe, context).toBe(local.safety?.safe);
        expect(remote.virtualSize, context).toBe(local.virtualSize);
      }
    });
  }

  it("classifies a remote qcow2 from at most 64 KiB", async () => {
    const before = ranged.log.length;
    const report = await probe(`${ranged.url}/v3.qcow2`, { discover: false });
    expect(report.format).toBe("qcow2");
    expect(report.bytesRead).toBeLessThanOrEqual(64 * 1024);
    const sent = ranged.log.slice(before).reduce((n, r) => n + r.sent, 0);
    expect(sent).toBeLessThanOrEqual(64 * 1024);
  });

  it("follows redirects, a bounded number", async () => {
    ranged.redirect("/latest.qcow2", "/v3.qcow2");
    const report = await probe(`${ranged.url}/latest.qcow2`, { discover: false });
    expect(report.format).toBe("qcow2");
    expect(report.http?.finalUrl).toBe(`${ranged.url}/v3.qcow2`);
    for (let i = 0; i < 12; i++) ranged.redirect(`/loop${i}`, `/loop${i + 1}`);
    const loop = await probe(`${ranged.url}/loop0`, { discover: false });
    expect(loop.reachable).toBe(false);
    expect(loop.error).toMatch(/more than 10 redirects/);
  });

  it("says unreachable, quickly, for a refused connection and for an HTTP error", async () => {
    const refused = await probe("http://127.0.0.1:9/disk.qcow2", { discover: false, timeoutMs: 3000 });
    expect(refused.reachable).toBe(false);
    expect(refused.error).toMatch(/unreachable: connection refused/);
    const missing = await probe(`${ranged.url}/nope.qcow2`, { discover: false });
    expect(missing.reachable).toBe(false);
    expect(missing.error).toMatch(/HTTP 404/);
  });
});

describe("pure parts", () => {
  it("asks for the bytes it needs, and only those", () => {
    const map = new ByteMap(1 << 20);
    const step = inspectBytes(map);
    expect(step.done).toBe(false);
    expect(() => map.read(0, 4)).toThrow(NeedBytes);
  });

  it("declares a format by the file name", () => {
    expect(declaredByName("https://x/noble-server-cloudimg-amd64.img")).toBeUndefined();
    expect(declaredByName("https://x/debian-13-genericcloud-amd64.qcow2")).toMatchObject({ format: "qcow2" });
    expect(declaredByName("https://x/disk.raw.xz?sig=1")).toMatchObject({ format: "raw", compression: "xz" });
    expect(declaredByName("/tmp/a.vhd")).toMatchObject({ format: "vhd" });
  });

  it("parses GNU, BSD (Fedora CHECKSUM, PGP-signed) and bare checksum files", () => {
    const h256 = "a".repeat(64);
    const h512 = "b".repeat(128);
    const ubuntu = `${h256} *noble-server-cloudimg-amd64.img\n${"c".repeat(64)} *other.img\n`;
    expect(findChecksum(parseChecksumFile(ubuntu), "noble-server-cloudimg-amd64.img")?.digest).toBe(h256);
    const debian = `${h512}  debian-13-genericcloud-amd64.qcow2\n`;
    expect(findChecksum(parseChecksumFile(debian), "debian-13-genericcloud-amd64.qcow2")).toMatchObject({
      algorithm: "sha512",
      digest: h512,
    });
    const fedora = [
      "-----BEGIN PGP SIGNED MESSAGE-----",
      "Hash: SHA256",
      "",
      "# Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2: 567410688 bytes",
      `SHA256 (Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2) = ${h256.toUpperCase()}`,
      "-----BEGIN PGP SIGNATURE-----",
      "iQIzBAEBCAAdFiEE...",
      "-----END PGP SIGNATURE-----",
    ].join("\n");
    expect(
      findChecksum(parseChecksumFile(fedora), "Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2")?.digest,
    ).toBe(h256);
    expect(findChecksum(parseChecksumFile(`${h256}\n`), "anything.qcow2")?.digest).toBe(h256);
    expect(findChecksum(parseChecksumFile(ubuntu), "missing.img")).toBeUndefined();
  });
});
