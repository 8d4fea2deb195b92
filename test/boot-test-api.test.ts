// Boot tests of catalog entries through a real `osimg serve` and the CLI: the micro guest passes, a
// random disk fails with the reason; one test at a time per entry; results are on GET /api/v1/catalog
// (bootTest), survive a restart, and drop off when the entry names another image. `osimg image test`
// runs one locally (recorded in the data directory, which the server shows) or on the server.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BootTestReport, EntryBootTest } from "../src/images/boot-tests.ts";
import { microGuestImage } from "./support/guest-images.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { eventually, startTestServer, type TestServer, tempDir } from "./support/server.ts";

const run = promisify(execFile);
const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
const BOOT_MS = 240_000;
let images: FixtureServer;
let server: TestServer;
let dataDir: string;
let catalogPath: string;

const catalog = (url: string, microPath = "micro.qcow2") => `images:
  - OS_NAME: "Micro"
    CLOUD_USER: root
    OS_IMAGE_URL: "${url}/${microPath}"
    MIN_MEMORY: "256Mi"
    FIRMWARE_TYPE: "bios"
  - OS_NAME: "Micro EFI"
    CLOUD_USER: root
    OS_IMAGE_URL: "${url}/micro.qcow2"
    FIRMWARE_TYPE: "efi"
  - OS_NAME: "Broken"
    CLOUD_USER: root
    OS_IMAGE_URL: "${url}/broken.raw"
`;

beforeAll(async () => {
  const micro = await microGuestImage();
  const www = tempDir("osimg-boot-www-");
  await symlink(micro.path, join(www, "micro.qcow2"));
  await writeFile(join(www, "broken.raw"), randomBytes(16 * 2 ** 20));
  images = await startFixtureServer({ root: www });
  process.env.OSIMG_FETCH_ALLOW = new URL(images.url).host;
  dataDir = tempDir("osimg-boot-data-");
  catalogPath = join(dataDir, "catalog.yaml");
  await writeFile(catalogPath, catalog(images.url));
  server = await startTestServer({ catalogPath, dataDir });
}, 600_000);

afterAll(async () => {
  await server?.stop();
  await images?.stop();
  delete process.env.OSIMG_FETCH_ALLOW;
});

const post = (path: string, body: unknown) =>
  fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

async function bootTests(): Promise<Record<string, EntryBootTest>> {
  const body = (await (await server.get("/api/v1/catalog")).json()) as {
    bootTest?: Record<string, EntryBootTest>;
  };
  return body.bootTest ?? {};
}

async function finished(id: string): Promise<BootTestReport> {
  let last: EntryBootTest | undefined;
  await eventually(
    async () => {
      last = (await (await server.get(`/api/v1/images/${id}/boot-test`)).json()) as EntryBootTest;
      return last.state === "done";
    },
    BOOT_MS,
    `the boot test of ${id} to finish`,
  );
  return last?.result as BootTestReport;
}

async function osimg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: BOOT_MS });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("boot tests on the API", () => {
  it("answers 404 for an entry never tested or unknown, and 400 for a bad firmware", async () => {
    expect((await server.get("/api/v1/images/micro/boot-test")).status).toBe(404);
    const unknown = await post("/api/v1/images/nope/boot-test", {});
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: "unknown_entry", field: "id" });
    const bad = await post("/api/v1/images/micro/boot-test", { firmware: "coreboot" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid_request" });
  });

  it(
    "runs the micro guest's test as a job, one at a time per entry, and shows the pass on the catalog",
    async () => {
      const started = await post("/api/v1/images/micro/boot-test", { timeoutSeconds: 240 });
      expect(started.status).toBe(202);
      expect(await started.json()).toMatchObject({ entry: "micro", firmware: "bios" });
      const again = await post("/api/v1/images/micro/boot-test", {});
      expect(again.status).toBe(409);
      expect(await again.json()).toMatchObject({ error: "boot_test_running" });
      expect((await bootTests()).micro?.state).toMatch(/^(pending|running)$/);
      const result = await finished("micro");
      expect(result, result.reason).toMatchObject({
        ok: true,
        firmware: "bios",
        seen: { marker: true, cloudInitFinished: true, agent: true },
        image: { url: `${images.url}/micro.qcow2`, format: "qcow2" },
      });
      expect(result.image.sha256).toMatch(/^[0-9a-f]{64}$/);
      const shown = await bootTests();
      expect(shown.micro).toMatchObject({ state: "done", result: { ok: true } });
      expect(shown.broken).toBeUndefined();
    },
    BOOT_MS + 60_000,
  );

  it(
    "fails a random disk with the reason, from `osimg image test --server`",
    async () => {
      const cli = await osimg("image", "test", "broken", "--server", server.url, "--timeout", "120");
      expect(cli.code, cli.stderr).toBe(1);
      expect(cli.stdout).toMatch(
        /^FAIL {2}broken under bios: the BIOS found no bootable device \(Hard Disk: /,
      );
      expect((await bootTests()).broken?.result).toMatchObject({ ok: false, firmware: "bios" });
    },
    BOOT_MS + 60_000,
  );

  it(
    "records a local `osimg image test` on the entry, and the server on the same data directory shows it",
    async () => {
      const cli = await osimg(
        ...["image", "test", "micro-efi", "--catalog", catalogPath, "--data-dir", dataDir, "--json"],
      );
      expect(cli.code, cli.stderr).toBe(0);
      const report = JSON.parse(cli.stdout) as BootTestReport;
      expect(report).toMatchObject({ ok: true, firmware: "efi", seen: { marker: true } });
      await eventually(
        async () => (await bootTests())["micro-efi"]?.result?.startedAt === report.startedAt,
        10_000,
        "the CLI's result on the catalog",
      );
    },
    BOOT_MS + 60_000,
  );

  it("keeps results across a restart, and drops one when its entry names another image", async () => {
    await server.stop();
    server = await startTestServer({ catalogPath, dataDir });
    const after = await bootTests();
    expect(Object.keys(after).sort()).toEqual(["broken", "micro", "micro-efi"]);
    expect(after.micro?.result?.ok).toBe(true);
    await writeFile(catalogPath, catalog(images.url, "micro.qcow2?v=2"));
    await eventually(async () => (await bootTests()).micro === undefined, 10_000, "the stale result to go");
    expect((await bootTests())["micro-efi"]?.result?.ok).toBe(true);
  }, 60_000);
});
