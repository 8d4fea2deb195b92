// `osimg image inspect|pull|list|rm` and `osimg catalog verify`, run as a user would.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VmRecords } from "../src/vms/records.ts";
import { entryYaml } from "./support/catalogs.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { makeImageFixtures, sha256File } from "./support/image-fixtures.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
const BUILTIN = new URL("../catalog/images.yaml", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "osimg-cli-images-"));
let server: FixtureServer;

/** Runs the CLI without blocking this process (the fixture server answers from here). */
function osimg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { encoding: "utf8", maxBuffer: 16 << 20 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  await makeImageFixtures(dir);
  server = await startFixtureServer({ root: dir });
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("osimg image inspect", () => {
  it("prints format, sizes, verdict and the bytes read; exit 0 for a safe image", async () => {
    const { code, stdout } = await osimg(["image", "inspect", `${server.url}/v3.qcow2`]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/format\s+qcow2, v3 \(compat 1\.1\)/);
    expect(stdout).toMatch(/virtual size\s+100 MiB \(104857600 bytes\)/);
    expect(stdout).toMatch(/safety\s+safe/);
    expect(stdout).toMatch(/Range supported/);
    expect(stdout).toMatch(/read\s+\d+ bytes to classify/);
  });

  it("exit 1 with the reason for an unsafe image; --json has the verdict", async () => {
    const { code, stdout } = await osimg(["image", "inspect", "--json", `${server.url}/hostpath.vmdk`]);
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.safety.safe).toBe(false);
    expect(report.safety.reasons.map((r: { code: string }) => r.code)).toContain("vmdk_extent");
    const text = await osimg(["image", "inspect", join(dir, "disguised.qcow2")]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/declares qcow2, but the content is raw \[format_mismatch\]/);
  });

  it("exit 2 and 'unreachable' for a URL nothing answers", async () => {
    const { code, stdout } = await osimg([
      "image",
      "inspect",
      "http://127.0.0.1:9/x.qcow2",
      "--timeout",
      "3",
    ]);
    expect(code).toBe(2);
    expect(stdout).toMatch(/reachable\s+no: unreachable: connection refused/);
  });
});

describe("osimg image pull|list|rm", () => {
  it("pulls by URL and by catalog entry id, lists and removes", async () => {
    const data = mkdtempSync(join(tmpdir(), "osimg-cli-data-"));
    const pulled = await osimg([
      "image",
      "pull",
      `${server.url}/compressed.qcow2.xz`,
      "--data-dir",
      data,
      "--json",
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const record = JSON.parse(pulled.stdout);
    expect(record).toMatchObject({
      format: "qcow2",
      compression: "xz",
      sha256: sha256File(join(dir, "compressed.qcow2")),
    });

    const catalog = join(data, "catalog.yaml");
    writeFileSync(
      catalog,
      `images:\n${entryYaml({ OS_NAME: "Tiny VDI", CLOUD_USER: "u", OS_IMAGE_URL: `${server.url}/disk.vdi` })}`,
    );
    const byId = await osimg(["image", "pull", "tiny-vdi", "--catalog", catalog, "--data-dir", data]);
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toMatch(/^stored [0-9a-f]{64}\n {2}vdi, virtual size 30 MiB/);

    const list = await osimg(["image", "list", "--data-dir", data]);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+FORMAT\s+VIRTUAL\s+SIZE\s+CHECKSUM/);
    expect(list.stdout).toMatch(/vdi .* tiny-vdi/);
    // Not while a local VM's disk is made on it.
    const records = new VmRecords(join(data, "osimg.db"));
    records.insert({
      namespace: "default",
      name: "vm-on-it",
      provider: "qemu",
      spec: {} as never,
      createdAt: new Date().toISOString(),
      instanceId: "i-1",
      runtime: { desired: "stopped", baseImage: record.sha256 },
    });
    const refused = await osimg(["image", "rm", record.sha256.slice(0, 12), "--data-dir", data]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("is the base of the disk of VM default/vm-on-it");
    expect(JSON.parse((await osimg(["image", "list", "--json", "--data-dir", data])).stdout)).toHaveLength(2);
    records.delete("default", "vm-on-it");
    records.close();
    const removed = await osimg(["image", "rm", record.sha256.slice(0, 12), "--data-dir", data]);
    expect(removed.code).toBe(0);
    expect(JSON.parse((await osimg(["image", "list", "--json", "--data-dir", data])).stdout)).toHaveLength(1);
    const missing = await osimg(["image", "rm", "abcdef123456", "--data-dir", data]);
    expect(missing.code).toBe(1);

    const unsafe = await osimg(["image", "pull", `${server.url}/backing.qcow2`, "--data-dir", data]);
    expect(unsafe.code).toBe(1);
    expect(unsafe.stderr).toMatch(/refused before download: .*backing file "\/etc\/passwd"/);
    rmSync(data, { recursive: true, force: true });
  });
});

describe("osimg catalog verify", () => {
  it("on the built-in catalog: a clear 'unreachable' for every entry (no internet here), quickly", async () => {
    const started = Date.now();
    const { code, stdout } = await osimg(["catalog", "verify", BUILTIN, "--json", "--timeout", "5"]);
    expect(code).toBe(1);
    const checks = JSON.parse(stdout) as {
      entry: string;
      reachable: boolean;
      problems: { code: string; message: string }[];
    }[];
    expect(checks.length).toBeGreaterThan(5);
    for (const c of checks) {
      expect(c.reachable, c.entry).toBe(false);
      expect(c.problems[0]?.code, c.entry).toBe("unreachable");
      expect(c.problems[0]?.message, c.entry).toMatch(/^unreachable: /);
    }
    expect(Date.now() - started).toBeLessThan(45_000);
  }, 60_000);

  it("a table with reachable, format, virtual size vs MIN_STORAGE, checksum, safety and time", async () => {
    const path = join(dir, "verify.yaml");
    const e = (name: string, file: string, storage: string, sha?: string) =>
      entryYaml({
        OS_NAME: name,
        CLOUD_USER: "u",
        OS_IMAGE_URL: `${server.url}/${file}`,
        MIN_STORAGE: storage,
        ...(sha ? { OS_IMAGE_SHA256: sha } : {}),
      });
    writeFileSync(
      path,
      `images:\n${e("Fits", "v3.qcow2", "1Gi")}${e("Too Small", "v3.qcow2", "64Mi")}${e("Backed", "backing.qcow2", "1Gi")}`,
    );
    const { code, stdout } = await osimg(["catalog", "verify", path, "--concurrency", "2"]);
    expect(code).toBe(1);
    const lines = stdout.split("\n");
    expect(lines[0]).toMatch(
      /^ENTRY\s+REACHABLE\s+FORMAT\s+VIRTUAL\s+MIN_STORAGE\s+CHECKSUM\s+SAFETY\s+TIME$/,
    );
    expect(lines.find((l) => l.startsWith("fits "))).toMatch(
      /yes\s+qcow2\s+100 MiB\s+1 GiB\s+none found\s+safe/,
    );
    expect(lines.find((l) => l.startsWith("too-small "))).toMatch(/64 MiB TOO SMALL/);
    expect(lines.find((l) => l.startsWith("backed "))).toMatch(/UNSAFE/);
    expect(stdout).toMatch(/too-small: error: MIN_STORAGE 64Mi .* import will fail/);
  });
});
