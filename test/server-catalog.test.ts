import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { routesWithoutPolicy } from "../src/server/policy.ts";
import { BUILTIN_CATALOG_TEXT, catalogYaml, configMapYaml, fixture, UBUNTU } from "./support/catalogs.ts";
import { eventually, startTestServer, type TestServer, tempDir } from "./support/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

function catalogFile(text: string): string {
  const path = join(tempDir(), "images.yaml");
  writeFileSync(path, text);
  return path;
}

/** What a Kube-DC backend answers: the images list as a YAML loader gives it, as JSON. */
function kubeDcBody(imagesYaml: string): string {
  return JSON.stringify((parse(imagesYaml) as { images: unknown[] }).images);
}

const osNames = async (s: TestServer) =>
  ((await (await s.get("/api/create-vm/demo/os-images")).json()) as { OS_NAME: string }[]).map(
    (e) => e.OS_NAME,
  );

describe("GET /api/create-vm/{namespace}/os-images", () => {
  it("answers the Kube-DC document's ConfigMap byte for byte as Kube-DC does", async () => {
    const text = fixture("kube-dc/os-images-configmap.yaml");
    server = await startTestServer({ catalogPath: catalogFile(text) });
    const response = await server.get("/api/create-vm/shalb-demo/os-images");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const inner = (
      parse(text.replace("{{ .Release.Namespace }}", "kube-dc")) as { data: Record<string, string> }
    ).data["images.yaml"] as string;
    expect(await response.text()).toBe(kubeDcBody(inner));
  });

  it("answers a cluster's ConfigMap and the built-in catalog byte for byte", async () => {
    for (const text of [fixture("kube-dc/configmap-from-cluster.yaml"), BUILTIN_CATALOG_TEXT]) {
      server = await startTestServer({ catalogPath: catalogFile(text) });
      const doc = parse(text) as { data?: Record<string, string> };
      const images = doc.data ? (doc.data["images.yaml"] as string) : text;
      expect(await (await server.get("/api/create-vm/demo/os-images")).text()).toBe(kubeDcBody(images));
      await server.stop();
      server = undefined;
    }
  });

  it("serves an ETag and answers 304 to If-None-Match", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    const first = await server.get("/api/create-vm/demo/os-images");
    const etag = first.headers.get("etag") as string;
    expect(etag).toMatch(/^".+"$/);
    const again = await server.get("/api/create-vm/demo/os-images", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    expect(
      (await server.get("/api/create-vm/demo/os-images", { "if-none-match": `"other", W/${etag}` })).status,
    ).toBe(304);
    expect((await server.get("/api/create-vm/demo/os-images", { "if-none-match": '"other"' })).status).toBe(
      200,
    );
  });

  it("refuses a namespace that is not a DNS-1123 label, naming the field", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    const response = await server.get("/api/create-vm/Not_A_Label/os-images");
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: "invalid_namespace", field: "namespace" });
  });
});

describe("GET /api/v1/catalog", () => {
  it("has parsed values, findings, version, source and the last reload", async () => {
    const path = catalogFile(
      catalogYaml([UBUNTU, { ...UBUNTU, OS_NAME: "Plain http", OS_IMAGE_URL: "http://mirror.local/x.img" }]),
    );
    server = await startTestServer({ catalogPath: path });
    const body = (await (await server.get("/api/v1/catalog")).json()) as Record<string, unknown> & {
      entries: {
        id: string;
        spec: Record<string, unknown>;
        values: Record<string, unknown>;
        findings: unknown[];
      }[];
      lastReload: Record<string, unknown>;
    };
    expect(body.version).toMatch(/^[0-9a-f]{64}$/);
    expect(body.source).toEqual({ kind: "file", location: path });
    expect(body.servingLastGood).toBe(false);
    expect(body.counts).toEqual({ entries: 2, error: 0, warning: 1, info: 0 });
    expect(body.lastReload).toMatchObject({ ok: true, version: body.version });
    expect(body.entries[0]).toMatchObject({
      id: "ubuntu-24.04",
      values: { MIN_MEMORY: "1G" },
      spec: { minMemoryBytes: 1e9, minVcpu: 1 },
    });
    expect(body.entries[1]?.findings).toHaveLength(1);
  });
});

describe("health, metrics and the API description", () => {
  it("answers /healthz, /readyz, /metrics and /openapi.json", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    expect(await (await server.get("/healthz")).json()).toEqual({ status: "ok" });
    expect(await (await server.get("/readyz")).json()).toEqual({ status: "ok" });
    const metrics = await (await server.get("/metrics")).text();
    expect(metrics).toContain("osimg_catalog_reload_success 1");
    expect(metrics).toContain("osimg_catalog_entries 1");
    const api = (await (await server.get("/openapi.json")).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(api.openapi).toBe("3.1.0");
    expect(Object.keys(api.paths)).toEqual(
      expect.arrayContaining([
        "/api/create-vm/{namespace}/os-images",
        "/api/v1/catalog",
        "/healthz",
        "/readyz",
      ]),
    );
  });

  it("answers unknown routes with a 404 in the API's error shape", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    const response = await server.get("/api/v1/nothing-here");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: "not_found" });
  });

  it("every route declares an access policy, and one without is refused", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    expect(routesWithoutPolicy(server.app)).toEqual([]);
  });
});

describe("live reload", () => {
  it("serves an edit without a restart, also when an editor replaces the file by rename", async () => {
    const path = catalogFile(catalogYaml([UBUNTU]));
    server = await startTestServer({ catalogPath: path });
    const s = server;
    writeFileSync(path, catalogYaml([UBUNTU, { ...UBUNTU, OS_NAME: "Added in place" }]));
    await eventually(async () => (await osNames(s)).includes("Added in place"), 10_000, "the in-place edit");
    const temp = `${path}.swp`;
    writeFileSync(temp, catalogYaml([{ ...UBUNTU, OS_NAME: "Renamed over" }]));
    renameSync(temp, path);
    await eventually(async () => (await osNames(s)).join() === "Renamed over", 10_000, "the rename");
  });

  it("keeps serving the last good catalog when an edit breaks it, and says so everywhere", async () => {
    const path = catalogFile(catalogYaml([UBUNTU]));
    server = await startTestServer({ catalogPath: path });
    const s = server;
    writeFileSync(path, catalogYaml([{ ...UBUNTU, OS_NAME: "Broken", MIN_MEMORY: "8 GB" }]));
    await eventually(
      async () =>
        ((await (await s.get("/api/v1/catalog")).json()) as { servingLastGood: boolean }).servingLastGood,
      10_000,
      "the rejection",
    );
    expect(await osNames(s)).toEqual(["Ubuntu 24.04"]);
    const body = (await (await s.get("/api/v1/catalog")).json()) as {
      lastReload: { ok: boolean; findings: { path: string; line: number }[] };
    };
    expect(body.lastReload.ok).toBe(false);
    expect(body.lastReload.findings[0]).toMatchObject({ path: "images[0].MIN_MEMORY", line: 5 });
    expect(await (await s.get("/metrics")).text()).toContain("osimg_catalog_reload_success 0");
    expect((await s.get("/readyz")).status).toBe(200);

    writeFileSync(path, catalogYaml([{ ...UBUNTU, OS_NAME: "Fixed" }]));
    await eventually(async () => (await osNames(s)).join() === "Fixed", 10_000, "the fix");
    expect(await (await s.get("/metrics")).text()).toContain("osimg_catalog_reload_success 1");
  });

  it("serves a catalog with only warnings", async () => {
    server = await startTestServer({
      catalogPath: catalogFile(catalogYaml([{ ...UBUNTU, X_EXTRA: "kept" }])),
    });
    expect(await (await server.get("/api/create-vm/demo/os-images")).json()).toEqual([
      { ...UBUNTU, X_EXTRA: "kept" },
    ]);
  });

  it("after a restart with a broken file, serves the last good catalog saved in the data directory", async () => {
    const path = catalogFile(catalogYaml([UBUNTU]));
    const dataDir = tempDir();
    server = await startTestServer({ catalogPath: path, dataDir });
    await server.stop();
    writeFileSync(path, "images:\n  - OS_NAME: [broken\n");
    server = await startTestServer({ catalogPath: path, dataDir });
    expect(await osNames(server)).toEqual(["Ubuntu 24.04"]);
    const body = (await (await server.get("/api/v1/catalog")).json()) as {
      servingLastGood: boolean;
      source: { kind: string };
    };
    expect(body.servingLastGood).toBe(true);
    expect(body.source.kind).toBe("last-good");
  });

  it("with no good catalog ever, is not ready and says why instead of serving an empty list", async () => {
    server = await startTestServer({ catalogPath: catalogFile("images:\n  - OS_NAME: [broken\n") });
    expect((await server.get("/readyz")).status).toBe(503);
    const response = await server.get("/api/create-vm/demo/os-images");
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: "catalog_unavailable" });
    const catalog = (await (await server.get("/api/v1/catalog")).json()) as {
      lastReload: { ok: boolean; findings: unknown[] };
    };
    expect(catalog.lastReload.ok).toBe(false);
    expect(catalog.lastReload.findings.length).toBeGreaterThan(0);
  });

  it("reads a ConfigMap manifest file too", async () => {
    server = await startTestServer({ catalogPath: catalogFile(configMapYaml(catalogYaml([UBUNTU]))) });
    expect(await osNames(server)).toEqual(["Ubuntu 24.04"]);
  });

  it("without --catalog, serves a copy of the built-in catalog from the data directory and keeps edits to it", async () => {
    const dataDir = tempDir();
    server = await startTestServer({ dataDir });
    expect(server.catalogPath).toBe(join(dataDir, "images.yaml"));
    expect((await osNames(server)).length).toBeGreaterThanOrEqual(12);
    writeFileSync(server.catalogPath, catalogYaml([UBUNTU]));
    await server.stop();
    server = await startTestServer({ dataDir });
    expect(await osNames(server)).toEqual(["Ubuntu 24.04"]);
  });
});

describe("editing the catalog source", () => {
  const put = (s: TestServer, text: string, ifMatch?: string) =>
    fetch(`${s.url}/api/v1/catalog/source`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...(ifMatch ? { "if-match": ifMatch } : {}) },
      body: JSON.stringify({ text }),
    });

  it("reads the text with its version and saves an edit that names it, keeping comments", async () => {
    const original = `# Our catalog\n${catalogYaml([UBUNTU])}`;
    const path = catalogFile(original);
    server = await startTestServer({ catalogPath: path });
    const source = (await (await server.get("/api/v1/catalog/source")).json()) as {
      text: string;
      version: string;
    };
    expect(source.text).toBe(original);
    const edited = source.text.replace('OS_NAME: "Ubuntu 24.04"', 'OS_NAME: "Ubuntu LTS"');
    const response = await put(server, edited, `"${source.version}"`);
    expect(response.status).toBe(200);
    expect(readFileSync(path, "utf8")).toBe(edited);
    expect(await osNames(server)).toEqual(["Ubuntu LTS"]);
  });

  it("refuses a save from an old version with 409, and writes nothing", async () => {
    const path = catalogFile(catalogYaml([UBUNTU]));
    server = await startTestServer({ catalogPath: path });
    const { version } = (await (await server.get("/api/v1/catalog/source")).json()) as { version: string };
    const first = await put(server, catalogYaml([{ ...UBUNTU, OS_NAME: "First" }]), `"${version}"`);
    expect(first.status).toBe(200);
    const second = await put(server, catalogYaml([{ ...UBUNTU, OS_NAME: "Second" }]), `"${version}"`);
    expect(second.status).toBe(409);
    expect(await second.json()).toMatchObject({ error: "conflict" });
    expect(readFileSync(path, "utf8")).toContain("First");
  });

  it("of two concurrent saves from the same version, exactly one wins", async () => {
    const path = catalogFile(catalogYaml([UBUNTU]));
    server = await startTestServer({ catalogPath: path });
    const { version } = (await (await server.get("/api/v1/catalog/source")).json()) as { version: string };
    const s = server;
    const statuses = await Promise.all(
      ["A", "B", "C"].map((name) =>
        put(s, catalogYaml([{ ...UBUNTU, OS_NAME: name }]), `"${version}"`).then((r) => r.status),
      ),
    );
    expect(statuses.sort()).toEqual([200, 409, 409]);
  });

  it("refuses a text with errors with 422 and its findings, and writes nothing", async () => {
    const original = catalogYaml([UBUNTU]);
    const path = catalogFile(original);
    server = await startTestServer({ catalogPath: path });
    const { version } = (await (await server.get("/api/v1/catalog/source")).json()) as { version: string };
    const response = await put(server, catalogYaml([{ ...UBUNTU, MIN_MEMORY: "lots" }]), `"${version}"`);
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      error: "invalid_catalog",
      findings: [{ path: "images[0].MIN_MEMORY", line: 5 }],
    });
    expect(readFileSync(path, "utf8")).toBe(original);
  });

  it("requires If-Match", async () => {
    server = await startTestServer({ catalogPath: catalogFile(catalogYaml([UBUNTU])) });
    const response = await put(server, catalogYaml([UBUNTU]));
    expect(response.status).toBe(428);
    expect(await response.json()).toMatchObject({ error: "precondition_required", field: "If-Match" });
  });
});
