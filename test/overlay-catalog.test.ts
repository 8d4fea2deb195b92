// Project overlays: a ConfigMap labelled osimg.io/catalog=true in a tenant namespace adds entries that only
// that namespace sees (the Kube-DC list, VM creation); an OS_NAME already taken is an error, never an
// override; a broken overlay keeps its last good version. First CatalogState alone, then `osimg serve
// --configmap` against the fake Kubernetes API server.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildCatalog } from "../src/catalog/catalog.ts";
import { OVERLAY_LABEL } from "../src/catalog/sources/configmap.ts";
import { CatalogState } from "../src/catalog/state.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { catalogYaml, positionOf, UBUNTU } from "./support/catalogs.ts";
import { FakeKube } from "./support/fake-kube/index.ts";

const logger = pino({ level: process.env.OSIMG_TEST_LOG ?? "silent" });
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 60_000, interval: 20 });

const url = (name: string) => `http://127.0.0.1:9/${name}.img`;
const entry = (name: string, extra: Record<string, string> = {}) => ({
  ...UBUNTU,
  OS_NAME: name,
  OS_IMAGE_URL: url(name.toLowerCase().replace(/\W+/g, "-")),
  ...extra,
});
const GLOBAL = catalogYaml([entry("Ubuntu 24.04"), entry("Debian 12", { CLOUD_USER: "debian" })]);
const TEAM = catalogYaml([entry("Team Ubuntu"), entry("Team GPU image")]);
const BROKEN = `images:\n  - OS_NAME: "Team Ubuntu"\n    CLOUD_USER: ubuntu\n    OS_IMAGE_URL: "${url("x")}"\n    MIN_MEMORY: "lots"\n`;

const catalogOf = (text: string, location: string) => buildCatalog(text, { kind: "configmap", location });
const names = (state: CatalogState, namespace: string) => state.entriesFor(namespace).map((e) => e.spec.name);
const body = (state: CatalogState, namespace: string) =>
  (JSON.parse(state.view(namespace)?.kubeDcBody.toString() ?? "[]") as { OS_NAME: string }[]).map(
    (e) => e.OS_NAME,
  );

describe("CatalogState overlays", () => {
  it("adds an overlay's entries to its namespace only, with a body and ETag of its own", () => {
    const state = new CatalogState();
    state.offer(catalogOf(GLOBAL, "kube-dc/images-configmap"));
    expect(state.offerOverlay("team-a", "team-images", catalogOf(TEAM, "team-a/team-images"))).toBe(true);
    expect(names(state, "team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team Ubuntu", "Team GPU image"]);
    expect(body(state, "team-a")).toEqual(names(state, "team-a"));
    expect(names(state, "team-b")).toEqual(["Ubuntu 24.04", "Debian 12"]);
    // Other namespaces get the global body itself: nothing is computed per request.
    expect(state.view("team-b")?.kubeDcBody).toBe(state.served?.kubeDcBody);
    expect(state.view("team-a")?.kubeDcEtag).not.toBe(state.served?.kubeDcEtag);
  });

  it("leaves out an entry whose OS_NAME is already taken, with an error at its position", () => {
    const state = new CatalogState();
    state.offer(catalogOf(GLOBAL, "kube-dc/images-configmap"));
    const text = catalogYaml([entry("Team Ubuntu"), entry("Debian 12", { MIN_VCPU: "8" })]);
    state.offerOverlay("team-a", "team-images", catalogOf(text, "team-a/team-images"));
    state.offerOverlay(
      "team-a",
      "more-images",
      catalogOf(catalogYaml([entry("Team Ubuntu")]), "team-a/more-images"),
    );
    expect(names(state, "team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team Ubuntu"]);
    // The global Debian 12 is served, not the overlay's.
    expect(state.entriesFor("team-a").find((e) => e.spec.name === "Debian 12")?.spec.minVcpu).toBe(1);
    // Overlays of a namespace are taken in name order: more-images' "Team Ubuntu" comes first.
    const [more, team] = state.overlays("team-a");
    expect(more?.conflicts).toEqual([]);
    expect(team?.conflicts).toEqual([
      expect.objectContaining({
        severity: "error",
        code: "overlay.duplicate_name",
        path: "images[0].OS_NAME",
        message: expect.stringContaining('"Team Ubuntu" is already in overlay team-a/more-images'),
      }),
      expect.objectContaining({
        severity: "error",
        code: "overlay.duplicate_name",
        path: "images[1].OS_NAME",
        line: positionOf(text, '- OS_NAME: "Debian 12"').line,
        message: expect.stringContaining(
          '"Debian 12" is already in the global catalog (kube-dc/images-configmap)',
        ),
        hint: 'give the entry its own OS_NAME, such as "Debian 12 (team-a)"',
      }),
    ]);
  });

  it("keeps an overlay's last good version when a broken one comes, and follows the global catalog", () => {
    const state = new CatalogState();
    state.offer(catalogOf(GLOBAL, "kube-dc/images-configmap"));
    state.offerOverlay("team-a", "team-images", catalogOf(TEAM, "team-a/team-images"));
    expect(state.offerOverlay("team-a", "team-images", catalogOf(BROKEN, "team-a/team-images"))).toBe(false);
    expect(names(state, "team-a")).toContain("Team GPU image");
    expect(state.overlay("team-a", "team-images")?.lastReload?.ok).toBe(false);
    // The global catalog now has "Team GPU image": the overlay's entry is left out from then on.
    state.offer(
      catalogOf(
        `${GLOBAL}${catalogYaml([entry("Team GPU image")]).replace("images:\n", "")}`,
        "kube-dc/images-configmap",
      ),
    );
    expect(names(state, "team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team GPU image", "Team Ubuntu"]);
    expect(state.overlay("team-a", "team-images")?.conflicts).toHaveLength(1);
    state.removeOverlay("team-a", "team-images");
    expect(state.view("team-a")?.kubeDcBody).toBe(state.served?.kubeDcBody);
    expect(state.overlays()).toEqual([]);
  });
});

describe("overlays from labelled ConfigMaps, served by osimg serve --configmap", { timeout: 120_000 }, () => {
  let fake: FakeKube;
  let core: CoreV1Api;
  let server: RunningServer;
  let dataDir: string;
  const api = (path: string, init: RequestInit = {}) => fetch(`${server.url}${path}`, init);
  const osNames = async (namespace: string) =>
    ((await (await api(`/api/create-vm/${namespace}/os-images`)).json()) as { OS_NAME: string }[]).map(
      (e) => e.OS_NAME,
    );
  const putOverlay = async (namespace: string, name: string, text: string, labelled = true) => {
    const labels: Record<string, string> = labelled ? { [OVERLAY_LABEL]: "true" } : { team: "a" };
    const metadata = { name, labels };
    try {
      const current = await core.readNamespacedConfigMap({ namespace, name });
      await core.replaceNamespacedConfigMap({
        namespace,
        name,
        body: {
          ...current,
          metadata: { ...current.metadata, labels: metadata.labels },
          data: { "images.yaml": text },
        },
      });
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
      await core.createNamespacedConfigMap({ namespace, body: { metadata, data: { "images.yaml": text } } });
    }
  };

  beforeAll(async () => {
    fake = await FakeKube.start({ namespaces: ["default", "kube-dc", "team-a", "team-b"] });
    core = fake.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace: "kube-dc",
      body: { metadata: { name: "images-configmap" }, data: { "images.yaml": GLOBAL } },
    });
    await putOverlay("team-a", "team-images", TEAM);
    dataDir = mkdtempSync(join(tmpdir(), "osimg-overlay-"));
    server = await startServer({
      configMap: { namespace: "kube-dc", name: "images-configmap", kubeConfig: fake.kubeConfig() },
      port: 0,
      host: "127.0.0.1",
      dataDir,
      logger,
      auth: { mode: "none", quiet: true },
    });
  });

  afterAll(async () => {
    await server.close();
    await fake.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("serves a namespace's overlay entries in its Kube-DC list only", async () => {
    expect(await osNames("team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team Ubuntu", "Team GPU image"]);
    expect(await osNames("team-b")).toEqual(["Ubuntu 24.04", "Debian 12"]);
    const first = await api("/api/create-vm/team-a/os-images");
    const etag = first.headers.get("etag") as string;
    expect(
      (await api("/api/create-vm/team-a/os-images", { headers: { "if-none-match": etag } })).status,
    ).toBe(304);
    expect(etag).not.toBe((await api("/api/create-vm/team-b/os-images")).headers.get("etag"));
  });

  it("creates VMs from an overlay entry in its namespace only", async () => {
    const create = (namespace: string) =>
      api(`/api/v1/namespaces/${namespace}/vms?dryRun=true`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "gpu", image: "Team GPU image" }),
      });
    expect((await create("team-a")).status).toBe(200);
    const refused = await create("team-b");
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { message: string }).message).toMatch(/no OS image "Team GPU image"/);
  });

  it("follows changes: updates, a duplicate name as an error with its position, a broken overlay, removal", async () => {
    const duplicate = catalogYaml([entry("Team Ubuntu"), entry("Ubuntu 24.04", { MIN_VCPU: "16" })]);
    await putOverlay("team-a", "team-images", duplicate);
    await waitFor(async () =>
      expect(await osNames("team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team Ubuntu"]),
    );
    const namespaced = (await (await api("/api/v1/namespaces/team-a/catalog")).json()) as {
      entries: { spec: { name: string; minVcpu?: number } }[];
      findings: { path: string; line: number; code: string; message: string }[];
      overlays: { name: string; conflicts: unknown[]; entries: number }[];
    };
    expect(namespaced.entries.find((e) => e.spec.name === "Ubuntu 24.04")?.spec.minVcpu).toBe(1);
    expect(namespaced.findings).toContainEqual(
      expect.objectContaining({
        code: "overlay.duplicate_name",
        path: "team-a/team-images:images[1].OS_NAME",
        line: positionOf(duplicate, '- OS_NAME: "Ubuntu 24.04"').line,
      }),
    );
    expect(namespaced.overlays).toEqual([expect.objectContaining({ name: "team-images", entries: 1 })]);
    const global = (await (await api("/api/v1/catalog")).json()) as {
      overlays: { namespace: string; name: string; conflicts: unknown[] }[];
      counts: { error: number };
    };
    expect(global.overlays).toEqual([expect.objectContaining({ namespace: "team-a", name: "team-images" })]);
    expect(global.overlays[0]?.conflicts).toHaveLength(1);
    expect(global.counts.error).toBe(0);

    await putOverlay("team-a", "team-images", BROKEN);
    await waitFor(async () => {
      const events = await core.listNamespacedEvent({ namespace: "team-a" });
      expect(events.items.map((e) => `${e.involvedObject.name}: ${e.message}`).join("\n")).toMatch(
        /team-images: catalog \w+ rejected with 1 error, serving the last good catalog/,
      );
    });
    expect(await osNames("team-a")).toEqual(["Ubuntu 24.04", "Debian 12", "Team Ubuntu"]);

    // Label removed: no longer an overlay, as if deleted.
    await putOverlay("team-a", "team-images", TEAM, false);
    await waitFor(async () => expect(await osNames("team-a")).toEqual(["Ubuntu 24.04", "Debian 12"]));
  });

  it("converges after dropped watches and an API server restart", async () => {
    await putOverlay("team-b", "b-images", catalogYaml([entry("B image")]));
    await waitFor(async () =>
      expect(await osNames("team-b")).toEqual(["Ubuntu 24.04", "Debian 12", "B image"]),
    );
    fake.dropWatches("abrupt");
    await putOverlay("team-b", "b-images", catalogYaml([entry("B image 2")]));
    await waitFor(async () =>
      expect(await osNames("team-b")).toEqual(["Ubuntu 24.04", "Debian 12", "B image 2"]),
    );
    await fake.restart();
    await core.deleteNamespacedConfigMap({ namespace: "team-b", name: "b-images" });
    await waitFor(async () => expect(await osNames("team-b")).toEqual(["Ubuntu 24.04", "Debian 12"]));
  });
});
