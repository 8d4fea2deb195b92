// The server side of image intake: POST /api/v1/images/{id}/verify, results on GET /api/v1/catalog,
// background re-checks that never block serving, and pulls as jobs with progress events.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalog } from "../src/catalog/catalog.ts";
import type { CatalogEntry } from "../src/catalog/model.ts";
import { CatalogState } from "../src/catalog/state.ts";
import { FetchPolicy } from "../src/images/fetch-policy.ts";
import { PullJobs } from "../src/images/pull-jobs.ts";
import { ImageStore } from "../src/images/store.ts";
import { CatalogVerifier } from "../src/images/verifier.ts";
import type { EntryCheck } from "../src/images/verify.ts";
import { buildApp } from "../src/server/app.ts";
import { localVmsOnImage } from "../src/vms/providers/qemu/provider.ts";
import { VmRecords } from "../src/vms/records.ts";
import { entryYaml } from "./support/catalogs.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";
import { makeImageFixtures, sha256File } from "./support/image-fixtures.ts";
import { eventually } from "./support/server.ts";

const dir = mkdtempSync(join(tmpdir(), "osimg-images-api-"));
let fixtures: FixtureServer;

beforeAll(async () => {
  await makeImageFixtures(dir);
  fixtures = await startFixtureServer({ root: dir });
});
afterAll(async () => {
  await fixtures?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function catalogText(): string {
  const entry = (name: string, file: string, storage: string) =>
    entryYaml({
      OS_NAME: name,
      CLOUD_USER: "user",
      OS_IMAGE_URL: `${fixtures.url}/${file}`,
      MIN_STORAGE: storage,
    });
  return `images:\n${entry("Good", "v3.qcow2", "1Gi")}${entry("Small Disk", "v3.qcow2", "50Mi")}${entry("Sneaky", "backing.qcow2", "1Gi")}${entry("Gone", "missing.qcow2", "1Gi")}`;
}

async function setup(options: { verify?: (e: CatalogEntry) => Promise<EntryCheck> } = {}) {
  const state = new CatalogState();
  const policy = FetchPolicy.server({ allow: [new URL(fixtures.url).host] });
  // The server's wiring: the store asks the local VM records whether VMs' disks are made on an image.
  const dataDir = mkdtempSync(join(tmpdir(), "osimg-images-api-data-"));
  const store = ImageStore.forDataDir(dataDir, {
    policy,
    usersOf: (sha256) => localVmsOnImage(dataDir, sha256),
  });
  const verifier = new CatalogVerifier({
    state,
    policy,
    intervalMs: 0,
    ...(options.verify ? { verify: options.verify } : {}),
  });
  verifier.start();
  const app = await buildApp({
    catalog: state,
    logger: pino({ level: "silent" }),
    images: { store, verifier, pulls: new PullJobs(store) },
  });
  state.offer(buildCatalog(catalogText(), { kind: "file", location: "test.yaml" }));
  return { app, state, store, verifier, dataDir };
}

const catalogOf = async (app: FastifyInstance) =>
  (await app.inject({ method: "GET", url: "/api/v1/catalog" })).json();

describe("images API", () => {
  it("verifies every entry in the background and shows the results on the catalog", async () => {
    const { app, verifier } = await setup();
    try {
      await eventually(
        async () => {
          const v = (await catalogOf(app)).verification as Record<string, { state: string }>;
          return Object.values(v).length === 4 && Object.values(v).every((x) => x.state === "done");
        },
        20_000,
        "the background checks",
      );
      const v = (await catalogOf(app)).verification as Record<string, { check: EntryCheck }>;
      expect(v.good?.check).toMatchObject({
        ok: true,
        reachable: true,
        format: "qcow2",
        sizeCheck: "ok",
        virtualSize: 100 * 2 ** 20,
      });
      expect(v["small-disk"]?.check.sizeCheck).toBe("too_small");
      expect(v["small-disk"]?.check.problems[0]?.message).toMatch(/import will fail/);
      expect(v.sneaky?.check.safety?.safe).toBe(false);
      expect(v.sneaky?.check.problems.map((p) => p.code)).toContain("backing_file");
      expect(v.gone?.check).toMatchObject({ ok: false, reachable: false });
    } finally {
      verifier.stop();
      await app.close();
    }
  });

  it("POST /api/v1/images/{id}/verify checks one entry now", async () => {
    const { app, verifier } = await setup();
    try {
      const res = await app.inject({ method: "POST", url: "/api/v1/images/sneaky/verify" });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ entry: "sneaky", ok: false, format: "qcow2" });
      const unknown = await app.inject({ method: "POST", url: "/api/v1/images/nope/verify" });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().error).toBe("unknown_entry");
    } finally {
      verifier.stop();
      await app.close();
    }
  });

  it("serves the catalog while checks hang", async () => {
    const { app, verifier } = await setup({ verify: () => new Promise(() => undefined) });
    try {
      const started = Date.now();
      const body = await catalogOf(app);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(body.counts.entries).toBe(4);
      expect(
        Object.values(body.verification as Record<string, { state: string }>).map((v) => v.state),
      ).toContain("running");
    } finally {
      verifier.stop();
      await app.close();
    }
  });

  it("re-checks an entry when the catalog changes it", async () => {
    const calls: string[] = [];
    const { app, state, verifier } = await setup({
      verify: async (e) => {
        calls.push(`${e.id} ${e.spec.imageUrl}`);
        return {
          entry: e.id,
          reachable: true,
          sizeCheck: "unknown",
          checksum: { status: "unverified" },
          problems: [],
          ok: true,
          bytesRead: 0,
          ms: 0,
          checkedAt: "",
        };
      },
    });
    try {
      await eventually(() => calls.length === 4, 5000, "the first checks");
      state.offer(
        buildCatalog(catalogText().replace("v3.qcow2", "v2.qcow2"), { kind: "file", location: "test.yaml" }),
      );
      await eventually(() => calls.length === 5, 5000, "the re-check");
      expect(calls[4]).toMatch(/^good .*\/v2\.qcow2$/);
    } finally {
      verifier.stop();
      await app.close();
    }
  });

  it("pulls an entry's image as a job with progress events, then lists it, and removes it once no VM's disk is made on it", async () => {
    const ctx = await setup({ verify: () => new Promise(() => undefined) });
    const { app, verifier } = ctx;
    try {
      await app.listen({ port: 0, host: "127.0.0.1" });
      const address = app.server.address() as { port: number };
      const base = `http://127.0.0.1:${address.port}`;
      // biome-ignore lint/suspicious/noExplicitAny: JSON bodies checked by the expectations
      const json = async (res: Promise<Response>): Promise<any> => (await res).json();
      const started = await fetch(`${base}/api/v1/images/good/pull`, { method: "POST" });
      expect(started.status).toBe(202);
      const job = (await started.json()) as { id: string };
      const events = await (await fetch(`${base}/api/v1/pulls/${job.id}/events`)).text();
      expect(events).toMatch(/^event: (progress|done)/);
      expect(events).toMatch(/event: done\ndata: /);
      const done = await json(fetch(`${base}/api/v1/pulls/${job.id}`));
      expect(done).toMatchObject({
        state: "done",
        entry: "good",
        image: { sha256: sha256File(join(dir, "v3.qcow2")), format: "qcow2", catalogEntry: "good" },
      });
      const list = await (await fetch(`${base}/api/v1/store`)).json();
      expect(list).toHaveLength(1);
      const refused = await json(fetch(`${base}/api/v1/images/sneaky/pull`, { method: "POST" }));
      await eventually(
        async () => (await json(fetch(`${base}/api/v1/pulls/${refused.id}`))).state === "failed",
        5000,
      );
      const failed = await json(fetch(`${base}/api/v1/pulls/${refused.id}`));
      expect(failed.error).toMatchObject({ code: "unsafe" });
      // A VM's disk made on the image: the removal is refused and the image stays.
      const records = new VmRecords(join(ctx.dataDir, "osimg.db"));
      records.insert({
        namespace: "team-a",
        name: "web-1",
        provider: "qemu",
        spec: {} as never,
        createdAt: new Date().toISOString(),
        instanceId: "i-1",
        runtime: { desired: "running", baseImage: done.image.sha256 },
      });
      const remove = () =>
        fetch(`${base}/api/v1/store/${done.image.sha256.slice(0, 12)}`, { method: "DELETE" });
      const refusedRemoval = await remove();
      expect(refusedRemoval.status).toBe(409);
      expect(await refusedRemoval.json()).toMatchObject({
        error: "image_in_use",
        message: expect.stringContaining("VM team-a/web-1"),
        hint: expect.stringContaining("delete those VMs first"),
      });
      expect(await (await fetch(`${base}/api/v1/store`)).json()).toHaveLength(1);
      records.delete("team-a", "web-1");
      records.close();
      const removed = await remove();
      expect(removed.status).toBe(200);
      expect(await (await fetch(`${base}/api/v1/store`)).json()).toEqual([]);
      const spec = await json(fetch(`${base}/openapi.json`));
      expect(Object.keys(spec.paths)).toEqual(
        expect.arrayContaining(["/api/v1/images/{id}/verify", "/api/v1/images/{id}/pull", "/api/v1/store"]),
      );
    } finally {
      verifier.stop();
      await app.close();
    }
  });
});
