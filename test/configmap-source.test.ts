// The catalog from a ConfigMap, against the fake Kubernetes API server through the real client library:
// initial load, updates served, broken updates keeping the last good catalog (with an Event), and
// convergence after dropped watches, 410 Gone, failing requests and API server restarts.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { ConfigMapCatalogSource, EVENT_REASON, eventMessage } from "../src/catalog/sources/configmap.ts";
import { CatalogState } from "../src/catalog/state.ts";
import { loadKubeConfig, parseObjectRef } from "../src/kube/client.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { catalogYaml, fixture, positionOf, UBUNTU } from "./support/catalogs.ts";
import { FakeKube } from "./support/fake-kube/index.ts";

const NS = "kube-dc";
const NAME = "images-configmap";
const KUBE_DC_TEXT = (parse(fixture("kube-dc/os-images-configmap.yaml")) as { data: Record<string, string> })
  .data["images.yaml"] as string;
const DEBIAN = { ...UBUNTU, OS_NAME: "Debian 12", CLOUD_USER: "debian" };
const BROKEN = `images:\n  - OS_NAME: "Broken"\n    CLOUD_USER: ubuntu\n    OS_IMAGE_URL: "https://example.org/x.img"\n    MIN_MEMORY: "lots"\n`;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const logger = pino({ level: process.env.OSIMG_TEST_LOG ?? "silent" });
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 15_000, interval: 20 });

let fake: FakeKube;
let config: KubeConfig;
let core: CoreV1Api;
const cleanup: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  fake = await FakeKube.start({ namespaces: ["default", NS], bookmarkIntervalMs: 60_000 });
  config = fake.kubeConfig();
  core = config.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  await fake.close();
});

async function putCatalog(text: string, extra: Record<string, string> = {}): Promise<void> {
  const body = { metadata: { name: NAME }, data: { "images.yaml": text, ...extra } };
  try {
    const current = await core.readNamespacedConfigMap({ namespace: NS, name: NAME });
    await core.replaceNamespacedConfigMap({
      namespace: NS,
      name: NAME,
      body: { ...current, data: body.data },
    });
  } catch (error) {
    if ((error as { code?: number }).code !== 404) throw error;
    await core.createNamespacedConfigMap({ namespace: NS, body });
  }
}

/** A source with its own state (a replica), with short backoff so that recovery tests stay fast. */
async function replica(options: { instance?: string; watchTimeoutSeconds?: number } = {}) {
  const state = new CatalogState();
  const source = new ConfigMapCatalogSource({
    kubeConfig: fake.kubeConfig(),
    namespace: NS,
    name: NAME,
    state,
    logger,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  await source.start();
  cleanup.push(() => source.stop());
  return { state, source };
}

const servedVersion = (state: CatalogState) => state.served?.catalog.version;

async function catalogEvents() {
  const list = await core.listNamespacedEvent({
    namespace: NS,
    fieldSelector: `involvedObject.name=${NAME},reason=${EVENT_REASON}`,
  });
  return list.items;
}

describe("osimg serve --configmap", () => {
  let server: RunningServer;

  beforeEach(async () => {
    await putCatalog(KUBE_DC_TEXT);
    server = await startServer({
      configMap: { namespace: NS, name: NAME, kubeConfig: config },
      port: 0,
      host: "127.0.0.1",
      dataDir: mkdtempSync(join(tmpdir(), "osimg-cm-")),
      logger,
      auth: { mode: "none", quiet: true },
    });
    cleanup.push(() => server.close());
  });

  const catalog = async () =>
    (await (await fetch(`${server.url}/api/v1/catalog`)).json()) as {
      version: string;
      source: { kind: string; location: string };
      servingLastGood: boolean;
      lastReload: {
        ok: boolean;
        findings: { line: number; column: number; code: string; message: string }[];
      };
      entries: { values: Record<string, string> }[];
    };

  it("serves the Kube-DC ConfigMap on the Kube-DC endpoint, versioned by the images.yaml text", async () => {
    const response = await fetch(`${server.url}/api/create-vm/${NS}/os-images`);
    expect(response.status).toBe(200);
    const entries = (await response.json()) as Record<string, string>[];
    expect(entries[0]?.OS_NAME).toBe("Ubuntu 24.04");
    const body = await catalog();
    expect(body.source).toEqual({ kind: "configmap", location: `${NS}/${NAME}` });
    expect(body.version).toBe(sha256(KUBE_DC_TEXT));
  });

  it("serves an update, and keeps the last good catalog on a broken one, with an Event and findings", async () => {
    await putCatalog(catalogYaml([UBUNTU, DEBIAN]));
    await waitFor(async () =>
      expect((await catalog()).entries.map((e) => e.values.OS_NAME)).toEqual(["Ubuntu 24.04", "Debian 12"]),
    );
    const good = (await catalog()).version;

    await putCatalog(BROKEN);
    await waitFor(async () => expect((await catalog()).servingLastGood).toBe(true));
    const body = await catalog();
    expect(body.version).toBe(good);
    // Positions count within images.yaml.
    const finding = body.lastReload.findings.find((f) => f.code.startsWith("quantity"));
    expect(finding).toMatchObject(positionOf(BROKEN, '"lots"'));
    const kubeDc = (await (await fetch(`${server.url}/api/create-vm/${NS}/os-images`)).json()) as unknown[];
    expect(kubeDc).toHaveLength(2);

    await waitFor(async () => expect(await catalogEvents()).toHaveLength(1));
    const [event] = await catalogEvents();
    expect(event).toMatchObject({
      type: "Warning",
      reason: "CatalogInvalid",
      involvedObject: { kind: "ConfigMap", name: NAME, namespace: NS, apiVersion: "v1" },
      source: { component: "osimg" },
    });
    const { line, column } = positionOf(BROKEN, '"lots"');
    expect(event?.message).toContain(`images.yaml:${line}:${column}:`);
    expect(event?.message).toContain(`serving the last good catalog ${good.slice(0, 12)}`);
    expect(event?.involvedObject.uid).toBe(
      (await core.readNamespacedConfigMap({ namespace: NS, name: NAME })).metadata?.uid,
    );
  });

  it("edits the ConfigMap through /api/v1/catalog/source with optimistic concurrency", async () => {
    const sourceUrl = `${server.url}/api/v1/catalog/source`;
    const read = (await (await fetch(sourceUrl)).json()) as {
      text: string;
      version: string;
      source: unknown;
    };
    expect(read).toEqual({
      text: KUBE_DC_TEXT,
      version: sha256(KUBE_DC_TEXT),
      source: { kind: "configmap", location: `${NS}/${NAME}` },
    });
    const put = (text: string, version: string) =>
      fetch(sourceUrl, {
        method: "PUT",
        headers: { "content-type": "application/json", "if-match": `"${version}"` },
        body: JSON.stringify({ text }),
      });
    const invalid = await put(BROKEN, read.version);
    expect(invalid.status).toBe(422);
    const edited = catalogYaml([DEBIAN]);
    const saved = await put(edited, read.version);
    expect(saved.status).toBe(200);
    // Read your write: served at once, and stored in the ConfigMap.
    expect((await catalog()).version).toBe(sha256(edited));
    const stored = await core.readNamespacedConfigMap({ namespace: NS, name: NAME });
    expect(stored.data?.["images.yaml"]).toBe(edited);
    expect((await put(catalogYaml([UBUNTU]), read.version)).status).toBe(409);
    fake.failNext({
      method: "PUT",
      path: `/configmaps/${NAME}`,
      status: 403,
      reason: "Forbidden",
      message: "no update",
    });
    const forbidden = await put(catalogYaml([UBUNTU]), sha256(edited));
    expect(forbidden.status).toBeGreaterThanOrEqual(400);
    expect(await forbidden.text()).toContain("cannot be updated by osimg");
    expect((await core.readNamespacedConfigMap({ namespace: NS, name: NAME })).data?.["images.yaml"]).toBe(
      edited,
    );
  });

  it("starts without a ConfigMap, says why, and serves it once created", async () => {
    await core.deleteNamespacedConfigMap({ namespace: NS, name: NAME });
    await waitFor(async () =>
      expect((await catalog()).lastReload.findings[0]?.message).toContain("was deleted"),
    );
    expect((await catalog()).servingLastGood).toBe(true);
    await putCatalog(catalogYaml([DEBIAN]));
    await waitFor(async () =>
      expect((await catalog()).entries.map((e) => e.values.OS_NAME)).toEqual(["Debian 12"]),
    );
    expect((await catalog()).servingLastGood).toBe(false);
  });
});

describe("ConfigMapCatalogSource", () => {
  it("reports a ConfigMap that does not exist, then serves it when it appears", async () => {
    const { state } = await replica();
    expect(state.served).toBeUndefined();
    expect(state.lastReload?.findings[0]?.message).toBe(`ConfigMap ${NS}/${NAME} does not exist`);
    await putCatalog(catalogYaml([UBUNTU]));
    await waitFor(() => expect(servedVersion(state)).toBe(sha256(catalogYaml([UBUNTU]))));
  });

  it("names the key a ConfigMap holds instead of images.yaml", async () => {
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: NAME }, data: { "image.yaml": catalogYaml([UBUNTU]) } },
    });
    const { state } = await replica();
    expect(state.lastReload?.findings).toEqual([
      expect.objectContaining({ code: "configmap.no_key", hint: 'rename "image.yaml" to "images.yaml"' }),
    ]);
    await waitFor(async () => expect(await catalogEvents()).toHaveLength(1));
  });

  it("creates one Event per rejected version, across replicas and metadata-only changes", async () => {
    await putCatalog(catalogYaml([UBUNTU]));
    const a = await replica({ instance: "osimg-a" });
    const b = await replica({ instance: "osimg-b" });
    await putCatalog(BROKEN);
    await waitFor(() => {
      expect(a.state.servingLastGood).toBe(true);
      expect(b.state.servingLastGood).toBe(true);
    });
    // A label change: a new resourceVersion, the same catalog text.
    await core.patchNamespacedConfigMap({
      namespace: NS,
      name: NAME,
      body: [{ op: "add", path: "/metadata/labels", value: { touched: "yes" } }],
    });
    await putCatalog(`${BROKEN}# still broken\n`);
    await waitFor(async () => expect(await catalogEvents()).toHaveLength(2));
    await waitFor(() => expect(a.source.stats.events + b.source.stats.events).toBe(2));
    expect(a.state.lastReload?.version).toBe(sha256(`${BROKEN}# still broken\n`));
  });

  it("follows bookmarks, and resumes a watch the server ended from the last resourceVersion", async () => {
    await putCatalog(catalogYaml([UBUNTU]));
    const { state, source } = await replica();
    await waitFor(() => expect(fake.openWatches).toBe(1));
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: "unrelated" } } });
    fake.sendBookmarks();
    await waitFor(() => expect(source.resourceVersion).toBe(String(fake.cluster.store.resourceVersion)));
    const lists = source.stats.lists;
    fake.dropWatches("graceful");
    await putCatalog(catalogYaml([DEBIAN]));
    await waitFor(() => expect(servedVersion(state)).toBe(sha256(catalogYaml([DEBIAN]))));
    expect(source.stats.lists).toBe(lists);
    const resumed = fake.requests.filter((r) => r.watch).at(-1);
    expect(resumed?.query).toMatchObject({
      allowWatchBookmarks: "true",
      fieldSelector: `metadata.name=${NAME}`,
    });
    expect(Number(resumed?.query.resourceVersion)).toBeGreaterThan(1);
  });

  it("converges after a dropped connection, 410 Gone, failing requests and restarts", async () => {
    const texts = Array.from({ length: 6 }, (_, i) => catalogYaml([{ ...UBUNTU, OS_NAME: `Ubuntu v${i}` }]));
    await putCatalog(texts[0] as string);
    const a = await replica();
    const b = await replica();
    const converged = async (text: string) =>
      waitFor(() => {
        expect(servedVersion(a.state)).toBe(sha256(text));
        expect(servedVersion(b.state)).toBe(sha256(text));
      });
    await converged(texts[0] as string);

    // The connection is cut, and the ConfigMap changes before the watch is back.
    await waitFor(() => expect(fake.openWatches).toBe(2));
    fake.dropWatches("abrupt");
    await putCatalog(texts[1] as string);
    await converged(texts[1] as string);

    // History is compacted while the watches are away: the resumed watches get 410 and the sources list again.
    await waitFor(() => expect(fake.openWatches).toBe(2));
    const relists = a.source.stats.relists + b.source.stats.relists;
    const held = fake.holdNext({ watch: true, times: 2 });
    fake.dropWatches("graceful");
    await held.arrived;
    await putCatalog(texts[2] as string);
    fake.expireHistory();
    held.release();
    await converged(texts[2] as string);
    // Both resumed watches were held until after the compaction: both got 410 and listed again.
    expect(a.source.stats.relists + b.source.stats.relists).toBe(relists + 2);

    // The resumed watches fail (503) before they work again.
    await waitFor(() => expect(fake.openWatches).toBe(2));
    fake.failNext({ watch: true, status: 503, reason: "ServiceUnavailable", times: 2 });
    fake.dropWatches("graceful");
    await putCatalog(texts[3] as string);
    await converged(texts[3] as string);

    // The API server restarts (a new watch cache), and the ConfigMap changes while it is down.
    const restarting = fake.restart({ downMs: 100 });
    const configMaps = fake.cluster.type("", "v1", "configmaps");
    const current = fake.cluster.get(configMaps, NS, NAME);
    fake.cluster.update(configMaps, NS, NAME, { ...current, data: { "images.yaml": texts[4] } });
    await restarting;
    await converged(texts[4] as string);

    // A restored etcd: everything is gone and resourceVersions start low again.
    await fake.restart({ wipe: true });
    core = fake.kubeConfig().makeApiClient(CoreV1Api);
    await putCatalog(texts[5] as string);
    await converged(texts[5] as string);
  });

  it("retries the first list with backoff until the API server answers", async () => {
    await putCatalog(catalogYaml([UBUNTU]));
    fake.failNext({
      method: "GET",
      path: "/configmaps",
      watch: false,
      status: 503,
      reason: "ServiceUnavailable",
      times: 3,
    });
    const { state, source } = await replica();
    expect(state.lastReload?.findings[0]?.message).toContain("503");
    await waitFor(() => expect(servedVersion(state)).toBe(sha256(catalogYaml([UBUNTU]))));
    expect(source.stats.lists).toBe(4);
  });

  it("treats a silent watch as dead and lists again", async () => {
    await putCatalog(catalogYaml([UBUNTU]));
    const state = new CatalogState();
    const source = new ConfigMapCatalogSource({
      kubeConfig: config,
      namespace: NS,
      name: NAME,
      state,
      logger,
      idleTimeoutMs: 200,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    await source.start();
    cleanup.push(() => source.stop());
    await waitFor(() => expect(source.stats.lists).toBeGreaterThanOrEqual(2));
  });
});

describe("pieces", () => {
  it("parses NAMESPACE/NAME and says what is wrong", () => {
    expect(parseObjectRef("kube-dc/images-configmap", "--configmap")).toEqual({
      namespace: "kube-dc",
      name: "images-configmap",
    });
    expect(() => parseObjectRef("images-configmap", "--configmap")).toThrow("expected NAMESPACE/NAME");
    expect(() => parseObjectRef("Kube_DC/x", "--configmap")).toThrow(
      'namespace "Kube_DC" is not a DNS-1123 label',
    );
    expect(() => parseObjectRef("kube-dc/Images", "--configmap")).toThrow(
      'name "Images" is not a DNS-1123 subdomain',
    );
  });

  it("uses the pod's service account in a cluster, unless a kubeconfig is named", async () => {
    const saved = { ...process.env };
    try {
      process.env.KUBERNETES_SERVICE_HOST = "10.96.0.1";
      process.env.KUBERNETES_SERVICE_PORT = "443";
      delete process.env.KUBECONFIG;
      expect(loadKubeConfig().getCurrentCluster()?.server).toBe("https://10.96.0.1:443");
      const dir = mkdtempSync(join(tmpdir(), "osimg-kc-"));
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      await fake.writeKubeconfig(join(dir, "config"));
      expect(loadKubeConfig({ kubeconfig: join(dir, "config") }).getCurrentCluster()?.server).toBe(fake.url);
      expect(() => loadKubeConfig({ kubeconfig: join(dir, "config"), context: "nope" })).toThrow(
        'kubeconfig has no context "nope"; it has: fake',
      );
    } finally {
      process.env = saved;
    }
  });

  it("keeps Event messages short, listing the first errors", async () => {
    const { buildCatalog } = await import("../src/catalog/catalog.ts");
    const many = catalogYaml(
      Array.from({ length: 40 }, (_, i) => ({ ...UBUNTU, OS_NAME: `E${i}`, MIN_MEMORY: "x".repeat(60) })),
    );
    const message = eventMessage(buildCatalog(many, { kind: "configmap", location: "a/b" }), undefined);
    expect(message.length).toBeLessThanOrEqual(1024);
    expect(message).toMatch(
      /^catalog [0-9a-f]{12} rejected with \d+ errors, no catalog is served: images\.yaml:\d+:\d+: /,
    );
    expect(message).toContain("more");
  });
});

describe("the osimg command", () => {
  it("serves a ConfigMap given by --configmap with --kubeconfig", async () => {
    await putCatalog(KUBE_DC_TEXT);
    const dir = mkdtempSync(join(tmpdir(), "osimg-cli-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    await fake.writeKubeconfig(join(dir, "kubeconfig"));
    const child = spawn(
      process.execPath,
      [
        "bin/osimg.js",
        "serve",
        "--auth",
        "none",
        "--configmap",
        `${NS}/${NAME}`,
        "--kubeconfig",
        join(dir, "kubeconfig"),
        "--port",
        "0",
        "--data-dir",
        dir,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OSIMG_LOG_LEVEL: "info" } },
    );
    cleanup.push(async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    const url = await waitFor(() => {
      const match = /osimg listening on (http:\/\/[^"\s]+)/.exec(output);
      expect(match, output).not.toBeNull();
      return (match as RegExpExecArray)[1] as string;
    });
    const entries = (await (await fetch(`${url}/api/create-vm/${NS}/os-images`)).json()) as {
      OS_NAME: string;
    }[];
    expect(entries.map((e) => e.OS_NAME)).toContain("Ubuntu 24.04");
  });
});
