// Verified, resumable, atomic pulls into the content-addressed store, from a local HTTP server.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageStore, PullError, type PullProgress } from "../src/images/store.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { makeImageFixtures, sha256File } from "./support/image-fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "osimg-store-fx-"));
let server: FixtureServer;
let noRange: FixtureServer;

beforeAll(async () => {
  await makeImageFixtures(dir);
  // A bigger qcow2 with content, so that a cut download has something left to resume.
  execFileSync("qemu-img", ["convert", "-q", "-O", "qcow2", join(dir, "gpt.raw"), join(dir, "big.qcow2")]);
  writeFileSync(
    join(dir, "SHA256SUMS"),
    execFileSync("sha256sum", ["big.qcow2", "compressed.qcow2.xz"], { cwd: dir }),
  );
  server = await startFixtureServer({ root: dir });
  noRange = await startFixtureServer({ root: dir, range: false });
});
afterAll(async () => {
  await server?.stop();
  await noRange?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function newStore(): ImageStore {
  return new ImageStore({ root: mkdtempSync(join(tmpdir(), "osimg-store-")) });
}

const fullGets = (s: FixtureServer, path: string, from = 0) =>
  s.log
    .slice(from)
    .filter((r) => r.path === path && r.method === "GET" && (!r.range || r.range === "bytes=0-"));

describe("pull", () => {
  it("stores a verified image under its sha256, with its record", async () => {
    const store = newStore();
    const phases = new Set<string>();
    const image = await store.pull(`${server.url}/big.qcow2`, { onProgress: (p) => phases.add(p.phase) });
    expect(image.sha256).toBe(sha256File(join(dir, "big.qcow2")));
    expect(image).toMatchObject({
      sourceUrl: `${server.url}/big.qcow2`,
      format: "qcow2",
      virtualSize: 48 * 2 ** 20,
      checksum: { status: "verified", algorithm: "sha256", source: `${server.url}/SHA256SUMS` },
    });
    expect(image.size).toBe(readFileSync(join(dir, "big.qcow2")).length);
    expect(Date.parse(image.fetchedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(readFileSync(store.pathOf(image.sha256))).toEqual(readFileSync(join(dir, "big.qcow2")));
    expect([...phases]).toEqual(expect.arrayContaining(["probe", "download", "verify", "publish", "done"]));
    expect(await store.list()).toHaveLength(1);
    expect((await store.get(image.sha256.slice(0, 10)))?.sha256).toBe(image.sha256);
    expect(readdirSync(join(store.root, "partial")).filter((n) => !n.endsWith(".lock"))).toEqual([]);
  });

  it("decompresses on the fly and stores the inspected, decompressed image", async () => {
    const store = newStore();
    const image = await store.pull(`${server.url}/compressed.qcow2.xz`);
    expect(image.compression).toBe("xz");
    expect(image.format).toBe("qcow2");
    expect(image.sha256).toBe(sha256File(join(dir, "compressed.qcow2")));
    expect(image.download.sha256).toBe(sha256File(join(dir, "compressed.qcow2.xz")));
    expect(image.checksum.status).toBe("verified");
    for (const name of ["v3.qcow2.zst", "gpt.raw.gz", "sparse.vmdk.bz2"]) {
      const stored = await store.pull(`${server.url}/${name}`);
      expect(stored.sha256, name).toBe(sha256File(join(dir, name.replace(/\.[^.]+$/, ""))));
      expect(stored.checksum.status, name).toBe("unverified");
    }
    const raw = (await store.list()).find((r) => r.format === "raw");
    expect(raw?.virtualSize).toBe(48 * 2 ** 20);
  });

  it("resumes a download cut mid-way, and nothing is visible before it completes", async () => {
    const store = newStore();
    const size = readFileSync(join(dir, "big.qcow2")).length;
    const cut = Math.floor(size / 2);
    server.cutAfter("/big.qcow2", cut);
    const first = await store.pull(`${server.url}/big.qcow2`).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(PullError);
    expect((first as PullError).code).toBe("interrupted");
    expect((first as PullError).message).toMatch(/pull again to resume/);
    expect(await store.list()).toEqual([]);
    const before = server.log.length;
    const progress: PullProgress[] = [];
    const image = await store.pull(`${server.url}/big.qcow2`, { onProgress: (p) => progress.push(p) });
    expect(image.sha256).toBe(sha256File(join(dir, "big.qcow2")));
    expect(image.checksum.status).toBe("verified");
    const resumed = server.log
      .slice(before)
      .filter((r) => r.path === "/big.qcow2" && r.range?.match(/^bytes=[1-9]\d*-$/));
    expect(resumed).toHaveLength(1);
    const from = Number(/bytes=(\d+)-/.exec(resumed[0]?.range ?? "")?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(cut);
    expect(resumed[0]?.sent).toBe(size - from);
    expect(progress.find((p) => p.resumedFrom)?.resumedFrom).toBe(from);
  });

  it("resumes a compressed download: the kept bytes are decompressed again from disk", async () => {
    const store = newStore();
    const size = readFileSync(join(dir, "compressed.qcow2.xz")).length;
    // The probe streams the start of a compressed image once to look inside: the pull's download is the second.
    server.cutAfter("/compressed.qcow2.xz", Math.floor(size / 2), { skip: 1 });
    const first = await store.pull(`${server.url}/compressed.qcow2.xz`).catch((e: unknown) => e);
    expect((first as PullError).code).toBe("interrupted");
    const image = await store.pull(`${server.url}/compressed.qcow2.xz`);
    expect(image.sha256).toBe(sha256File(join(dir, "compressed.qcow2")));
    expect(image.download.sha256).toBe(sha256File(join(dir, "compressed.qcow2.xz")));
    expect(image.checksum.status).toBe("verified");
  });

  it("stores nothing on a checksum mismatch", async () => {
    const store = newStore();
    const error = await store
      .pull(`${server.url}/v3.qcow2`, { pinnedSha256: "0".repeat(64) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PullError);
    expect((error as PullError).code).toBe("checksum_mismatch");
    expect((error as PullError).message).toMatch(/nothing was stored/);
    expect(await store.list()).toEqual([]);
    expect(readdirSync(join(store.root, "sha256"))).toEqual([]);
    expect(readdirSync(join(store.root, "partial")).filter((n) => !n.endsWith(".lock"))).toEqual([]);
  });

  it("refuses an unsafe image before downloading it", async () => {
    const store = newStore();
    const before = server.log.length;
    const error = await store.pull(`${server.url}/datafile.qcow2`).catch((e: unknown) => e);
    expect((error as PullError).code).toBe("unsafe");
    expect((error as PullError).verdict?.reasons.some((r) => r.code === "data_file")).toBe(true);
    expect(fullGets(server, "/datafile.qcow2", before)).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  it("downloads once when the same image is pulled twice at once", async () => {
    const store = newStore();
    const before = server.log.length;
    const [a, b] = await Promise.all([
      store.pull(`${server.url}/big.qcow2`),
      store.pull(`${server.url}/big.qcow2`),
    ]);
    expect(a.sha256).toBe(b.sha256);
    expect(fullGets(server, "/big.qcow2", before)).toHaveLength(1);
    // A later pull of an unchanged image downloads nothing.
    const again = server.log.length;
    await store.pull(`${server.url}/big.qcow2`);
    expect(fullGets(server, "/big.qcow2", again)).toHaveLength(0);
  });

  it("pulls from a server without Range support, and from a local file", async () => {
    const store = newStore();
    const image = await store.pull(`${noRange.url}/sparse.vmdk`);
    expect(image.sha256).toBe(sha256File(join(dir, "sparse.vmdk")));
    const local = await store.pull(join(dir, "disk.vhdx"));
    expect(local).toMatchObject({ format: "vhdx", sha256: sha256File(join(dir, "disk.vhdx")) });
  });

  it("lists, finds and removes", async () => {
    const store = newStore();
    const image = await store.pull(`${server.url}/v2.qcow2`);
    expect((await store.findBySource(`${server.url}/v2.qcow2`))?.sha256).toBe(image.sha256);
    expect(existsSync(store.pathOf(image.sha256))).toBe(true);
    expect((await store.remove(image.sha256.slice(0, 8)))?.sha256).toBe(image.sha256);
    expect(existsSync(store.pathOf(image.sha256))).toBe(false);
    expect(await store.list()).toEqual([]);
    expect(await store.remove(image.sha256)).toBeUndefined();
  });
});
