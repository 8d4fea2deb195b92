// The fake Kubernetes API server, driven through the real @kubernetes/client-node: what product code will
// meet against it must be what a real API server (with KubeVirt and CDI installed) does.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseAllDocuments } from "yaml";
import { expectFailure, failureOf, openWatch } from "./support/fake-kube/client-helpers.ts";
import { FakeKube, type KubeObject } from "./support/fake-kube/index.ts";
import { REFERENCE_DIR } from "./support/fake-kube/schema.ts";

let fake: FakeKube;
let config: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;

const ns = "default";
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
const strategic = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 10 });

const cm = (
  name: string,
  data: Record<string, string> = {},
  labels?: Record<string, string>,
): V1ConfigMap => ({
  metadata: { name, ...(labels ? { labels } : {}) },
  data,
});

const kv = { group: "kubevirt.io", version: "v1", namespace: ns };
const vms = { ...kv, plural: "virtualmachines" };
const vmis = { ...kv, plural: "virtualmachineinstances" };
const dvs = { group: "cdi.kubevirt.io", version: "v1beta1", namespace: ns, plural: "datavolumes" };

function virtualMachine(
  name: string,
  spec: Record<string, unknown> = {},
  template: Record<string, unknown> = {},
) {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name },
    spec: {
      runStrategy: "Halted",
      template: {
        spec: {
          domain: {
            devices: { disks: [{ name: "root", disk: { bus: "virtio" } }] },
            resources: { requests: { memory: "1Gi" } },
          },
          volumes: [{ name: "root", containerDisk: { image: "quay.io/containerdisks/debian:12" } }],
          ...template,
        },
      },
      ...spec,
    },
  };
}

const getVm = (name: string) => custom.getNamespacedCustomObject({ ...vms, name }) as Promise<KubeObject>;
const getVmi = (name: string) => custom.getNamespacedCustomObject({ ...vmis, name }) as Promise<KubeObject>;
const statusOf = (o: KubeObject) => (o.status ?? {}) as Record<string, unknown>;

async function subresource(
  kind: "virtualmachines" | "virtualmachineinstances",
  name: string,
  action: string,
) {
  const response = await fetch(
    `${fake.url}/apis/subresources.kubevirt.io/v1/namespaces/${ns}/${kind}/${name}/${action}`,
    {
      method: "PUT",
      body: "{}",
    },
  );
  return { status: response.status, body: await response.text() };
}

beforeEach(async () => {
  fake = await FakeKube.start({ controllers: { stepMs: 5 }, bookmarkIntervalMs: 60_000 });
  config = fake.kubeConfig();
  core = config.makeApiClient(CoreV1Api);
  custom = config.makeApiClient(CustomObjectsApi);
});

afterEach(async () => {
  await fake.close();
});

describe("core CRUD", () => {
  it("creates, reads, lists, updates and deletes with resourceVersions", async () => {
    const created = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a", { k: "v" }) });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.namespace).toBe(ns);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    const read = await core.readNamespacedConfigMap({ namespace: ns, name: "a" });
    expect(read.data).toEqual({ k: "v" });
    const updated = await core.replaceNamespacedConfigMap({
      namespace: ns,
      name: "a",
      body: { ...read, data: { k: "w" } },
    });
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(Number(read.metadata?.resourceVersion));
    const list = await core.listNamespacedConfigMap({ namespace: ns });
    expect(list.items.map((i) => i.data)).toEqual([{ k: "w" }]);
    expect(list.metadata?.resourceVersion).toBe(updated.metadata?.resourceVersion);
    const status = await core.deleteNamespacedConfigMap({ namespace: ns, name: "a" });
    expect(status.status).toBe("Success");
    await expectFailure(core.readNamespacedConfigMap({ namespace: ns, name: "a" }), 404, "NotFound");
  });

  it("answers every error with a Status: 409 AlreadyExists, 409 Conflict, 404 for a missing namespace", async () => {
    const first = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    const exists = await expectFailure(
      core.createNamespacedConfigMap({ namespace: ns, body: cm("a") }),
      409,
      "AlreadyExists",
    );
    expect(exists.body).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", code: 409 });
    expect(exists.message).toBe('configmaps "a" already exists');
    await core.replaceNamespacedConfigMap({ namespace: ns, name: "a", body: { ...first, data: { x: "1" } } });
    // Writing with the resourceVersion read before someone else's write: 409 Conflict.
    const stale = await expectFailure(
      core.replaceNamespacedConfigMap({ namespace: ns, name: "a", body: { ...first, data: { x: "2" } } }),
      409,
      "Conflict",
    );
    expect(stale.message).toContain("the object has been modified");
    await expectFailure(
      core.createNamespacedConfigMap({ namespace: "nowhere", body: cm("a") }),
      404,
      "NotFound",
    );
    await expectFailure(
      core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "Bad_Name" } } }),
      422,
      "Invalid",
    );
  });

  it("names objects from generateName", async () => {
    const a = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { generateName: "cloud-init-" }, stringData: { userdata: "#cloud-config\n" } },
    });
    const b = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { generateName: "cloud-init-" } },
    });
    expect(a.metadata?.name).toMatch(/^cloud-init-[a-z0-9]{5}$/);
    expect(b.metadata?.name).not.toBe(a.metadata?.name);
    // stringData is stored as base64 data, as the apiserver does.
    expect(a.data).toEqual({ userdata: Buffer.from("#cloud-config\n").toString("base64") });
    expect(a.stringData).toBeUndefined();
    expect(a.type).toBe("Opaque");
  });

  it("selects by label (equality and set-based) and by field", async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("a", {}, { tier: "web", env: "prod" }) });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("b", {}, { tier: "db", env: "prod" }) });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("c", {}, { tier: "web" }) });
    const names = async (query: { labelSelector?: string; fieldSelector?: string }) =>
      (await core.listNamespacedConfigMap({ namespace: ns, ...query })).items.map((i) => i.metadata?.name);
    expect(await names({ labelSelector: "tier=web" })).toEqual(["a", "c"]);
    expect(await names({ labelSelector: "tier!=web" })).toEqual(["b"]);
    expect(await names({ labelSelector: "tier in (web,db),env" })).toEqual(["a", "b"]);
    expect(await names({ labelSelector: "tier notin (db),!env" })).toEqual(["c"]);
    expect(await names({ fieldSelector: "metadata.name=b" })).toEqual(["b"]);
    expect(await names({ fieldSelector: "metadata.name!=b", labelSelector: "env==prod" })).toEqual(["a"]);
    await expectFailure(
      core.listNamespacedConfigMap({ namespace: ns, fieldSelector: "data.k=v" }),
      400,
      "BadRequest",
    );
    await expectFailure(core.listNamespacedConfigMap({ namespace: ns, labelSelector: "tier in (web" }), 400);
  });

  it("pages a list with limit and continue", async () => {
    for (const name of ["a", "b", "c", "d", "e"])
      await core.createNamespacedConfigMap({ namespace: ns, body: cm(name) });
    const first = await core.listNamespacedConfigMap({ namespace: ns, limit: 2 });
    expect(first.items.map((i) => i.metadata?.name)).toEqual(["a", "b"]);
    expect(first.metadata?.remainingItemCount).toBe(3);
    const second = await core.listNamespacedConfigMap({
      namespace: ns,
      limit: 2,
      _continue: first.metadata?._continue,
    });
    expect(second.items.map((i) => i.metadata?.name)).toEqual(["c", "d"]);
    const last = await core.listNamespacedConfigMap({
      namespace: ns,
      limit: 2,
      _continue: second.metadata?._continue,
    });
    expect(last.items.map((i) => i.metadata?.name)).toEqual(["e"]);
    expect(last.metadata?._continue).toBeUndefined();
    // Once etcd compacts past the list's revision, its continue token is refused.
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("f") });
    fake.expireHistory();
    await expectFailure(
      core.listNamespacedConfigMap({ namespace: ns, limit: 2, _continue: first.metadata?._continue }),
      410,
      "Expired",
    );
  });

  it("patches: JSON merge, strategic merge (as JSON merge), JSON patch with test", async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("a", { one: "1", two: "2" }) });
    const merged = await core.patchNamespacedConfigMap(
      { namespace: ns, name: "a", body: { data: { two: null, three: "3" } } },
      merge,
    );
    expect(merged.data).toEqual({ one: "1", three: "3" });
    const strategicResult = await core.patchNamespacedConfigMap(
      { namespace: ns, name: "a", body: { metadata: { labels: { a: "b" } } } },
      strategic,
    );
    expect(strategicResult.metadata?.labels).toEqual({ a: "b" });
    const patched = await core.patchNamespacedConfigMap(
      {
        namespace: ns,
        name: "a",
        body: [
          { op: "test", path: "/data/one", value: "1" },
          { op: "replace", path: "/data/one", value: "uno" },
        ],
      },
      jsonPatch,
    );
    expect(patched.data?.one).toBe("uno");
    await expectFailure(
      core.patchNamespacedConfigMap(
        { namespace: ns, name: "a", body: [{ op: "test", path: "/data/one", value: "1" }] },
        jsonPatch,
      ),
      422,
      "Invalid",
    );
    // A patch that names an old resourceVersion is a precondition: 409.
    await expectFailure(
      core.patchNamespacedConfigMap(
        { namespace: ns, name: "a", body: { metadata: { resourceVersion: "1" }, data: { x: "y" } } },
        merge,
      ),
      409,
      "Conflict",
    );
  });

  it("keeps status apart from spec for types with a status subresource", async () => {
    const batch = config.makeApiClient(BatchV1Api);
    const job = await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: "build" },
        spec: {
          template: { spec: { restartPolicy: "Never", containers: [{ name: "b", image: "debian:12" }] } },
        },
        status: { succeeded: 1 },
      },
    });
    expect(job.status).toBeUndefined();
    expect(job.metadata?.generation).toBe(1);
    const withStatus = await batch.replaceNamespacedJobStatus({
      namespace: ns,
      name: "build",
      body: { ...job, status: { active: 1 } },
    });
    expect(withStatus.status?.active).toBe(1);
    const replaced = await batch.replaceNamespacedJob({
      namespace: ns,
      name: "build",
      body: { ...withStatus, status: { failed: 3 }, spec: { ...withStatus.spec, parallelism: 2 } } as never,
    });
    expect(replaced.status?.active).toBe(1);
    expect(replaced.status?.failed).toBeUndefined();
    expect(replaced.metadata?.generation).toBe(2);
  });

  it("serves pod logs, following them until the pod ends", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x" }] } },
    });
    fake.setPodLog(ns, "p", "one\ntwo\nthree\n");
    expect(await core.readNamespacedPodLog({ namespace: ns, name: "p" })).toBe("one\ntwo\nthree\n");
    expect(await core.readNamespacedPodLog({ namespace: ns, name: "p", tailLines: 1 })).toBe("three\n");
    const response = await fetch(`${fake.url}/api/v1/namespaces/${ns}/pods/p/log?follow=true`);
    const text = response.text();
    await waitFor(() =>
      expect(fake.requests.some((r) => r.path.endsWith("/log") && r.query.follow === "true")).toBe(true),
    );
    fake.appendPodLog(ns, "p", "four\n");
    const pod = await core.readNamespacedPod({ namespace: ns, name: "p" });
    await core.replaceNamespacedPodStatus({
      namespace: ns,
      name: "p",
      body: { ...pod, status: { phase: "Succeeded" } },
    });
    expect(await text).toBe("one\ntwo\nthree\nfour\n");
  });

  it("deletes dependents with their owner and a namespace's objects with it", async () => {
    await core.createNamespace({ body: { metadata: { name: "tenant" } } });
    const owner = await core.createNamespacedConfigMap({ namespace: "tenant", body: cm("owner") });
    const ref = { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata?.uid as string };
    await core.createNamespacedSecret({
      namespace: "tenant",
      body: { metadata: { name: "owned", ownerReferences: [ref] } },
    });
    await core.createNamespacedSecret({ namespace: "tenant", body: { metadata: { name: "free" } } });
    await core.deleteNamespacedConfigMap({ namespace: "tenant", name: "owner" });
    expect(
      (await core.listNamespacedSecret({ namespace: "tenant" })).items.map((s) => s.metadata?.name),
    ).toEqual(["free"]);
    await core.deleteNamespace({ name: "tenant" });
    expect(
      (await core.listSecretForAllNamespaces()).items.filter((s) => s.metadata?.namespace === "tenant"),
    ).toEqual([]);
  });

  it("serves resource types registered by tests, like CRDs", async () => {
    await fake.close();
    const widgets = {
      group: "example.org",
      version: "v1alpha1",
      resource: "widgets",
      singular: "widget",
      kind: "Widget",
      namespaced: true,
      statusSubresource: true,
      custom: true,
    };
    fake = await FakeKube.start({ resources: [widgets] });
    custom = fake.kubeConfig().makeApiClient(CustomObjectsApi);
    const target = { group: "example.org", version: "v1alpha1", namespace: ns, plural: "widgets" };
    await custom.createNamespacedCustomObject({
      ...target,
      body: { metadata: { name: "w" }, spec: { size: 1 } },
    });
    const read = (await custom.getNamespacedCustomObject({ ...target, name: "w" })) as KubeObject;
    expect(read).toMatchObject({
      apiVersion: "example.org/v1alpha1",
      kind: "Widget",
      metadata: { generation: 1 },
    });
    // A custom resource must be updated with the resourceVersion it was read at.
    const { resourceVersion: _rv, ...metadata } = read.metadata;
    await expectFailure(
      custom.replaceNamespacedCustomObject({ ...target, name: "w", body: { ...read, metadata } }),
      422,
    );
    await fake.restart({ wipe: true });
    expect(await custom.listNamespacedCustomObject(target)).toMatchObject({ kind: "WidgetList", items: [] });
  });

  it("serves discovery, so the generic object client works", async () => {
    const objects = KubernetesObjectApi.makeApiClient(config);
    const created: KubernetesObject = await objects.create({
      ...virtualMachine("generic"),
      metadata: { name: "generic", namespace: ns },
    });
    expect(created.metadata?.uid).toBeDefined();
    const listed = await objects.list("kubevirt.io/v1", "VirtualMachine", ns);
    expect(listed.items.map((i) => i.metadata?.name)).toEqual(["generic"]);
    const preference = await objects.list(
      "instancetype.kubevirt.io/v1beta1",
      "VirtualMachineClusterPreference",
    );
    expect(preference.items).toEqual([]);
  });
});

describe("test support only", () => {
  it("is imported by no product code", () => {
    const files = readdirSync("src", { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    const importing = files.filter((f) =>
      /from\s+["'][^"']*test\/support/.test(readFileSync(join("src", f), "utf8")),
    );
    expect(importing).toEqual([]);
  });
});

describe("watch", () => {
  it("streams changes after a resourceVersion, with selectors moving objects in and out", async () => {
    const list = await core.listNamespacedConfigMap({ namespace: ns });
    const watch = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: list.metadata?.resourceVersion,
      labelSelector: "app=osimg",
    });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("a", {}, { app: "osimg" }) });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("other") });
    await core.patchNamespacedConfigMap({ namespace: ns, name: "a", body: { data: { k: "v" } } }, merge);
    await core.patchNamespacedConfigMap(
      { namespace: ns, name: "a", body: { metadata: { labels: { app: null } } } },
      merge,
    );
    await core.patchNamespacedConfigMap(
      { namespace: ns, name: "other", body: { metadata: { labels: { app: "osimg" } } } },
      merge,
    );
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "other" });
    await waitFor(() => expect(watch.events).toHaveLength(5));
    expect(watch.events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual([
      "ADDED a",
      "MODIFIED a",
      "DELETED a",
      "ADDED other",
      "DELETED other",
    ]);
    const rvs = watch.events.map((e) => Number(e.object.metadata?.resourceVersion));
    expect([...rvs].sort((x, y) => x - y)).toEqual(rvs);
    watch.abort();
  });

  it("without a resourceVersion starts with the current objects, then an initial-events-end bookmark", async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    const watch = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      allowWatchBookmarks: true,
      sendInitialEvents: true,
      resourceVersionMatch: "NotOlderThan",
    });
    await waitFor(() => expect(watch.events).toHaveLength(2));
    expect(watch.events[0]?.type).toBe("ADDED");
    expect(watch.events[1]).toMatchObject({
      type: "BOOKMARK",
      object: { metadata: { annotations: { "k8s.io/initial-events-end": "true" } } },
    });
    watch.abort();
  });

  it("sends bookmarks carrying the latest resourceVersion, and only to watches that allow them", async () => {
    const withBookmarks = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: "1",
      allowWatchBookmarks: true,
    });
    const without = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: "1" });
    const secret = await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "s" } } });
    await waitFor(() => expect(fake.openWatches).toBe(2));
    fake.sendBookmarks();
    await waitFor(() => expect(withBookmarks.events).toHaveLength(1));
    expect(withBookmarks.events[0]).toMatchObject({
      type: "BOOKMARK",
      object: { metadata: { resourceVersion: secret.metadata?.resourceVersion } },
    });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    await waitFor(() => expect(without.events.map((e) => e.type)).toEqual(["ADDED"]));
    withBookmarks.abort();
    without.abort();
  });

  it("answers a compacted resourceVersion with an ERROR event holding a 410 Expired Status", async () => {
    const before = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("b") });
    fake.expireHistory();
    const watch = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: before.metadata?.resourceVersion,
    });
    expect(await watch.done).toBeNull();
    expect(watch.events).toEqual([
      {
        type: "ERROR",
        object: expect.objectContaining({
          kind: "Status",
          code: 410,
          reason: "Expired",
          message: expect.stringContaining("too old resource version"),
        }),
      },
    ]);
  });

  it("answers HTTP 410 instead when configured so, and 504 for a resourceVersion from the future", async () => {
    await fake.close();
    fake = await FakeKube.start({ goneAs: "http", tooLargeWaitMs: 50 });
    config = fake.kubeConfig();
    core = config.makeApiClient(CoreV1Api);
    const a = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    fake.expireHistory();
    const expired = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: "1" });
    expect(await expired.done).toMatchObject({ statusCode: 410 });
    const future = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: String(Number(a.metadata?.resourceVersion) + 100),
    });
    expect(await future.done).toMatchObject({ statusCode: 504 });
    const list = await failureOf(core.listNamespacedConfigMap({ namespace: ns, resourceVersion: "999999" }));
    expect(list.body).toMatchObject({
      code: 504,
      details: { causes: [{ reason: "ResourceVersionTooLarge" }] },
    });
  });

  it("ends a watch after timeoutSeconds, and on demand abruptly or gracefully", async () => {
    const timed = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: "1",
      timeoutSeconds: 1,
    });
    expect(await timed.done).toBeNull();
    const abrupt = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: "1" });
    const graceful = await openWatch(config, `/api/v1/namespaces/${ns}/secrets`, { resourceVersion: "1" });
    await waitFor(() => expect(fake.openWatches).toBe(2));
    expect(fake.dropWatches("graceful")).toBe(2);
    expect(await graceful.done).toBeNull();
    expect(await abrupt.done).toBeNull();
    const cut = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: "1" });
    await waitFor(() => expect(fake.openWatches).toBe(1));
    fake.dropWatches("abrupt");
    expect(await cut.done).toBeInstanceOf(Error);
  });
});

describe("controls", () => {
  it("restarts on the same port keeping the state, or wiped with resourceVersions starting low again", async () => {
    const a = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a", { k: "v" }) });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm("b") });
    const url = fake.url;
    await fake.restart();
    expect(fake.url).toBe(url);
    expect((await core.readNamespacedConfigMap({ namespace: ns, name: "a" })).data).toEqual({ k: "v" });
    // A new watch cache: history from before the restart is gone.
    const watch = await openWatch(config, `/api/v1/namespaces/${ns}/configmaps`, {
      resourceVersion: a.metadata?.resourceVersion,
    });
    await watch.done;
    expect(watch.events[0]?.object).toMatchObject({ code: 410 });
    await fake.restart({ wipe: true });
    await expectFailure(core.readNamespacedConfigMap({ namespace: ns, name: "a" }), 404);
    const again = await core.createNamespacedConfigMap({ namespace: ns, body: cm("a") });
    expect(Number(again.metadata?.resourceVersion)).toBeLessThanOrEqual(Number(a.metadata?.resourceVersion));
  });

  it("fails the next matching requests on demand, with a Status or a cut connection", async () => {
    fake.failNext({
      method: "GET",
      path: "/configmaps",
      status: 503,
      reason: "ServiceUnavailable",
      message: "etcd is down",
      times: 2,
    });
    await expectFailure(core.listNamespacedConfigMap({ namespace: ns }), 503, "ServiceUnavailable");
    await expectFailure(core.listNamespacedConfigMap({ namespace: ns }), 503);
    await core.listNamespacedConfigMap({ namespace: ns });
    fake.failNext({ path: "/secrets", reset: true });
    const cut = await failureOf(core.listNamespacedSecret({ namespace: ns }));
    expect(cut.code).toBeUndefined();
    expect(fake.requests.filter((r) => r.path.endsWith("/configmaps")).map((r) => r.status)).toEqual([
      503, 503, 200,
    ]);
  });
});

describe("KubeVirt and CDI validation", () => {
  const createVm = (body: unknown) => custom.createNamespacedCustomObject({ ...vms, body });

  it("accepts a VirtualMachine and a DataVolume that match the schemas", async () => {
    await createVm(virtualMachine("ok"));
    await custom.createNamespacedCustomObject({
      ...dvs,
      body: {
        apiVersion: "cdi.kubevirt.io/v1beta1",
        kind: "DataVolume",
        metadata: { name: "root" },
        spec: {
          source: { http: { url: "https://example.org/disk.qcow2" } },
          storage: { resources: { requests: { storage: "10Gi" } } },
        },
      },
    });
  });

  it("accepts every VirtualMachineClusterPreference of kubevirt/common-instancetypes", async () => {
    const text = readFileSync(`${REFERENCE_DIR}/common-clusterpreferences.yaml`, "utf8");
    const preferences = parseAllDocuments(text)
      .map((d) => d.toJS())
      .filter(Boolean);
    expect(preferences.length).toBeGreaterThan(50);
    for (const body of preferences)
      await custom.createClusterCustomObject({
        group: "instancetype.kubevirt.io",
        version: "v1beta1",
        plural: "virtualmachineclusterpreferences",
        body,
      });
  });

  it("rejects unknown fields, wrong types, missing required fields and values outside an enum, with field paths", async () => {
    const bad = virtualMachine(
      "bad",
      { bogus: true },
      {
        domain: {
          devices: {
            disks: [{ name: "root", disk: { bus: "virtio" }, bootOrder: "first" }],
            interfaces: [{ name: "default", masquerade: {}, colour: "red" }],
          },
        },
        volumes: [{ name: "root", containerDisk: { image: "x", imagePullPolicy: "Sometimes" } }],
      },
    );
    const failure = await expectFailure(createVm(bad), 422, "Invalid");
    const causes = (failure.body as { details: { causes: { field: string }[] } }).details.causes;
    expect(causes.map((c) => c.field).sort()).toEqual([
      "spec.bogus",
      "spec.template.spec.domain.devices.disks[0].bootOrder",
      "spec.template.spec.domain.devices.interfaces[0].colour",
      "spec.template.spec.volumes[0].containerDisk.imagePullPolicy",
    ]);
    expect(failure.message).toContain('unknown field "spec.bogus"');
    expect(failure.message).toContain("must be of type integer");
    expect(failure.message).toContain('Unsupported value: "Sometimes"');
    const noTemplate = await expectFailure(
      createVm({ apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", metadata: { name: "t" }, spec: {} }),
      422,
    );
    expect(noTemplate.message).toContain("spec.template: Required value");
    const dv = await expectFailure(
      custom.createNamespacedCustomObject({
        ...dvs,
        body: {
          apiVersion: "cdi.kubevirt.io/v1beta1",
          kind: "DataVolume",
          metadata: { name: "d" },
          spec: { source: { http: { uri: "x" } } },
        },
      }),
      422,
    );
    expect(dv.message).toContain("spec.source.http.url: Required value");
    expect(dv.message).toContain('unknown field "spec.source.http.uri"');
  });

  it("validates updates and patches too", async () => {
    await createVm(virtualMachine("vm"));
    const patch = custom.patchNamespacedCustomObject(
      { ...vms, name: "vm", body: { spec: { template: { spec: { hostname: 42 } } } } },
      merge,
    );
    const failure = await expectFailure(patch, 422);
    expect(failure.message).toContain("spec.template.spec.hostname");
  });

  it("applies KubeVirt's admission rules", async () => {
    const rejects = async (vm: unknown, field: string, text: string) => {
      const failure = await expectFailure(createVm(vm), 422, "Invalid");
      const causes = (failure.body as { details: { causes: { field: string; message: string }[] } }).details
        .causes;
      expect(causes).toContainEqual(
        expect.objectContaining({ field, message: expect.stringContaining(text) }),
      );
    };
    await rejects(virtualMachine("a", { runStrategy: "Sometimes" }), "spec.runStrategy", "supported values");
    await rejects(
      virtualMachine("b", { runStrategy: "Always", running: true }),
      "spec.running",
      "mutually exclusive",
    );
    const big = "#cloud-config\n" + "# padding\n".repeat(250);
    const withUserData = (userData: Record<string, string>) =>
      virtualMachine(
        "c",
        {},
        {
          domain: { devices: { disks: [{ name: "ci", disk: { bus: "virtio" } }] } },
          volumes: [{ name: "ci", cloudInitNoCloud: userData }],
        },
      );
    await rejects(
      withUserData({ userData: big }),
      "spec.template.spec.volumes[0].cloudInitNoCloud.userData",
      "2048",
    );
    await rejects(
      withUserData({ userDataBase64: Buffer.from(big).toString("base64") }),
      "spec.template.spec.volumes[0].cloudInitNoCloud.userDataBase64",
      "2048",
    );
    await createVm({ ...withUserData({ userData: big.slice(0, 2048) }), metadata: { name: "fits" } });
    const efi = (features: Record<string, unknown>, efiSpec: Record<string, unknown> = {}) =>
      virtualMachine(
        "d",
        {},
        { domain: { devices: {}, firmware: { bootloader: { efi: efiSpec } }, features } },
      );
    await rejects(efi({}), "spec.template.spec.domain.firmware.bootloader.efi.secureBoot", "SMM");
    await rejects(
      efi({ smm: { enabled: false } }),
      "spec.template.spec.domain.firmware.bootloader.efi.secureBoot",
      "SMM",
    );
    await createVm({ ...efi({ smm: {} }), metadata: { name: "secure" } });
    await createVm({ ...efi({}, { secureBoot: false }), metadata: { name: "insecure" } });
    const hyperv = (h: Record<string, unknown>) =>
      virtualMachine("e", {}, { domain: { devices: {}, features: { hyperv: h } } });
    await rejects(
      hyperv({ spinlocks: { spinlocks: 100 } }),
      "spec.template.spec.domain.features.hyperv.spinlocks.spinlocks",
      "4096",
    );
    await rejects(hyperv({ reset: {} }), "spec.template.spec.domain.features.hyperv.reset", '"synic"');
    await rejects(
      hyperv({ tlbflush: {}, vpindex: { enabled: false } }),
      "spec.template.spec.domain.features.hyperv.tlbflush",
      '"vpindex"',
    );
    await rejects(hyperv({ ipi: {} }), "spec.template.spec.domain.features.hyperv.ipi", '"vpindex"');
    await rejects(hyperv({ evmcs: {} }), "spec.template.spec.domain.features.hyperv.evmcs", '"vapic"');
    // The enlightenments of KubeVirt's Windows preferences, together, are accepted.
    await createVm({
      ...hyperv({
        relaxed: {},
        vapic: {},
        vpindex: {},
        spinlocks: { spinlocks: 8191 },
        runtime: {},
        synic: {},
        synictimer: { direct: {} },
        reset: {},
        frequencies: {},
        reenlightenment: {},
        tlbflush: {},
        ipi: {},
      }),
      metadata: { name: "windows" },
    });
  });

  it("needs a VM state storage class for a persistent TPM when the cluster has none", async () => {
    const tpm = virtualMachine("tpm", {}, { domain: { devices: { tpm: { persistent: true } } } });
    await createVm(tpm);
    await fake.close();
    fake = await FakeKube.start({ admission: {} });
    custom = fake.kubeConfig().makeApiClient(CustomObjectsApi);
    await expectFailure(createVm(tpm), 422);
  });

  it("supports dry runs that validate without storing", async () => {
    await custom.createNamespacedCustomObject({ ...vms, body: virtualMachine("dry"), dryRun: "All" });
    await expectFailure(getVm("dry"), 404);
    await expectFailure(
      custom.createNamespacedCustomObject({
        ...vms,
        body: virtualMachine("dry", { bogus: 1 }),
        dryRun: "All",
      }),
      422,
    );
  });
});

describe("KubeVirt lifecycle", () => {
  const withRootDisk = (name: string, runStrategy: string) =>
    virtualMachine(
      name,
      {
        runStrategy,
        dataVolumeTemplates: [
          {
            metadata: { name: `${name}-root` },
            spec: {
              source: { http: { url: "https://example.org/debian.qcow2" } },
              storage: { resources: { requests: { storage: "10Gi" } } },
            },
          },
        ],
      },
      { volumes: [{ name: "root", dataVolume: { name: `${name}-root` } }] },
    );

  it("imports the DataVolume with progress, then schedules and runs the instance", async () => {
    const list = await core.listNamespacedConfigMap({ namespace: ns });
    const from = list.metadata?.resourceVersion;
    const dvWatch = await openWatch(config, `/apis/cdi.kubevirt.io/v1beta1/namespaces/${ns}/datavolumes`, {
      resourceVersion: from,
    });
    const vmiWatch = await openWatch(
      config,
      `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`,
      { resourceVersion: from },
    );
    const vmWatch = await openWatch(config, `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, {
      resourceVersion: from,
    });
    await custom.createNamespacedCustomObject({ ...vms, body: withRootDisk("web", "Always") });
    await waitFor(async () => expect(statusOf(await getVm("web")).printableStatus).toBe("Running"));
    const phases = (events: typeof dvWatch.events) => [
      ...new Set(
        events.map((e) => (e.object.status as { phase?: string } | undefined)?.phase).filter(Boolean),
      ),
    ];
    expect(phases(dvWatch.events)).toEqual(["Pending", "ImportScheduled", "ImportInProgress", "Succeeded"]);
    const progress = dvWatch.events
      .map((e) => (e.object.status as { progress?: string } | undefined)?.progress)
      .filter((p) => p?.endsWith("%"));
    expect(progress).toEqual(["0.00%", "33.33%", "66.67%", "100.0%"]);
    expect(phases(vmiWatch.events)).toEqual(["Pending", "Scheduling", "Scheduled", "Running"]);
    const printable = [
      ...new Set(
        vmWatch.events
          .map((e) => (e.object.status as { printableStatus?: string } | undefined)?.printableStatus)
          .filter(Boolean),
      ),
    ];
    expect(printable).toEqual(["Provisioning", "Starting", "Running"]);
    const vmi = await getVmi("web");
    expect(statusOf(vmi).nodeName).toBe("fake-node-1");
    expect(vmi.metadata.ownerReferences?.[0]).toMatchObject({
      kind: "VirtualMachine",
      name: "web",
      controller: true,
    });
    for (const w of [dvWatch, vmiWatch, vmWatch]) w.abort();
  });

  it("starts, stops, restarts, pauses and unpauses through the subresource API", async () => {
    await custom.createNamespacedCustomObject({ ...vms, body: withRootDisk("db", "Halted") });
    await waitFor(async () => expect(statusOf(await getVm("db")).printableStatus).toBe("Stopped"));
    expect(await subresource("virtualmachines", "db", "stop")).toMatchObject({
      status: 409,
      body: expect.stringContaining("VM is not running"),
    });
    expect((await subresource("virtualmachines", "db", "start")).status).toBe(202);
    expect(((await getVm("db")).spec as { runStrategy: string }).runStrategy).toBe("Always");
    await waitFor(async () => expect(statusOf(await getVm("db")).printableStatus).toBe("Running"));
    expect((await subresource("virtualmachines", "db", "start")).status).toBe(409);
    const firstUid = (await getVmi("db")).metadata.uid;
    expect((await subresource("virtualmachines", "db", "restart")).status).toBe(202);
    await waitFor(async () => {
      const vmi = await getVmi("db");
      expect(vmi.metadata.uid).not.toBe(firstUid);
      expect(statusOf(vmi).phase).toBe("Running");
    });
    expect((await subresource("virtualmachineinstances", "db", "pause")).status).toBe(200);
    await waitFor(async () => expect(statusOf(await getVm("db")).printableStatus).toBe("Paused"));
    expect((await subresource("virtualmachineinstances", "db", "pause")).status).toBe(409);
    expect((await subresource("virtualmachineinstances", "db", "unpause")).status).toBe(200);
    await waitFor(async () => expect(statusOf(await getVm("db")).printableStatus).toBe("Running"));
    expect((await subresource("virtualmachines", "db", "stop")).status).toBe(202);
    await waitFor(async () => expect(statusOf(await getVm("db")).printableStatus).toBe("Stopped"));
    await expectFailure(getVmi("db"), 404);
    expect((await subresource("virtualmachines", "missing", "start")).status).toBe(404);
    expect((await subresource("virtualmachines", "db", "explode")).status).toBe(404);
  });

  it("runs a Manual VM on request and reports a failing import", async () => {
    await custom.createNamespacedCustomObject({
      ...vms,
      body: virtualMachine("manual", { runStrategy: "Manual" }),
    });
    await waitFor(async () => expect(statusOf(await getVm("manual")).printableStatus).toBe("Stopped"));
    expect((await subresource("virtualmachines", "manual", "start")).status).toBe(202);
    await waitFor(async () => expect(statusOf(await getVm("manual")).printableStatus).toBe("Running"));
    expect((await subresource("virtualmachines", "manual", "stop")).status).toBe(202);
    await waitFor(async () => expect(statusOf(await getVm("manual")).printableStatus).toBe("Stopped"));

    await custom.createNamespacedCustomObject({ ...vms, body: withRootDisk("broken", "Always") });
    fake.controllers.failImport(ns, "broken-root", "Unable to connect to http data source: 404 Not Found");
    await waitFor(async () => {
      const dv = (await custom.getNamespacedCustomObject({ ...dvs, name: "broken-root" })) as KubeObject;
      expect(statusOf(dv).conditions).toContainEqual(
        expect.objectContaining({
          type: "Running",
          status: "False",
          reason: "Error",
          message: expect.stringContaining("404"),
        }),
      );
    });
    expect(statusOf(await getVm("broken")).printableStatus).toBe("Provisioning");
  });

  it("deletes what the VM owns with it", async () => {
    await custom.createNamespacedCustomObject({ ...vms, body: withRootDisk("gone", "Always") });
    await waitFor(async () => expect(statusOf(await getVm("gone")).printableStatus).toBe("Running"));
    await custom.deleteNamespacedCustomObject({ ...vms, name: "gone" });
    await expectFailure(getVmi("gone"), 404);
    await expectFailure(custom.getNamespacedCustomObject({ ...dvs, name: "gone-root" }), 404);
  });
});
