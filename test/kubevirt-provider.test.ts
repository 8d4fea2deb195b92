// The KubeVirt provider end to end: `osimg serve --configmap` against the fake Kubernetes API server
// (real client library, real REST, watch and WebSocket protocols), VMs created from the catalog through
// the API routes, their phases while CDI imports and KubeVirt starts them, lifecycle actions through the
// subresource API, consoles proxied from the VMI's console and vnc subresources, deletion of exactly what
// osimg created, and the caller's Kubernetes token passed through so that RBAC decides.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseAllDocuments } from "yaml";
import { type RunningServer, type ServeOptions, startServer } from "../src/server/serve.ts";
import type { Vm, VmEvent } from "../src/vms/model.ts";
import { VmError } from "../src/vms/provider.ts";
import { KubevirtProvider } from "../src/vms/providers/kubevirt/provider.ts";
import { DEFAULT_SETTINGS } from "../src/vms/providers/kubevirt/settings.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { type AccessCheck, FakeKube } from "./support/fake-kube/index.ts";
import { entriesOf, SSH_KEY, specFor, TEST_CATALOGS } from "./support/fake-kube/vm-specs.ts";

const logger = pino({ level: process.env.OSIMG_TEST_LOG ?? "silent" });
const waitFor = <T>(check: () => T | Promise<T>, timeout = 60_000) =>
  vi.waitFor(check, { timeout, interval: 20 });

const CATALOG_NS = "kube-dc";
const NS = "tenant-a";
// Loopback URLs: the server's image verifier refuses them without a connection (no traffic leaves).
const IMAGE = (name: string) => `http://127.0.0.1:9/${name}.qcow2`;
const CATALOG = catalogYaml([
  { ...UBUNTU, OS_IMAGE_URL: IMAGE("ubuntu") },
  {
    ...UBUNTU,
    OS_NAME: "Ubuntu verified",
    OS_IMAGE_URL: IMAGE("ubuntu-verified"),
    OS_IMAGE_SHA256: "5f2c2b1e0d6a8a1f3c4b9e7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f",
  },
  {
    OS_NAME: "CirrOS",
    CLOUD_USER: "cirros",
    OS_IMAGE_URL: IMAGE("cirros"),
    MIN_MEMORY: "256Mi",
    MIN_VCPU: "1",
    MIN_STORAGE: "1G",
  },
]);

const VM = { group: "kubevirt.io", version: "v1", plural: "virtualmachines" } as const;
const VMI = { group: "kubevirt.io", version: "v1", plural: "virtualmachineinstances" } as const;
const DV = { group: "cdi.kubevirt.io", version: "v1beta1", plural: "datavolumes" } as const;

interface Harness {
  fake: FakeKube;
  server: RunningServer;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  api(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  vm(name: string, token?: string): Promise<Vm>;
  stop(): Promise<void>;
}

async function start(
  options: {
    fake?: ConstructorParameters<typeof FakeKube>[0];
    /** osimg's own token, when the cluster tells users apart; setup runs as the fake's admin token. */
    osimgToken?: string;
    serve?: (osimgConfig: ReturnType<FakeKube["kubeConfig"]>) => Partial<ServeOptions>;
  } = {},
): Promise<Harness> {
  const fake = await FakeKube.start({ namespaces: ["default", CATALOG_NS, NS, "tenant-b"], ...options.fake });
  const config = fake.kubeConfig();
  const core = config.makeApiClient(CoreV1Api);
  await core.createNamespacedConfigMap({
    namespace: CATALOG_NS,
    body: { metadata: { name: "images-configmap" }, data: { "images.yaml": CATALOG } },
  });
  const dataDir = mkdtempSync(join(tmpdir(), "osimg-kubevirt-"));
  const osimgConfig = options.osimgToken ? fake.kubeConfig("default", options.osimgToken) : config;
  const server = await startServer({
    configMap: { namespace: CATALOG_NS, name: "images-configmap", kubeConfig: osimgConfig },
    port: 0,
    host: "127.0.0.1",
    dataDir,
    logger,
    auth: { mode: "none", quiet: true },
    ...options.serve?.(osimgConfig),
  });
  const api = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: {
        ...(init.body ? { "content-type": "application/json" } : {}),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      },
    });
  return {
    fake,
    server,
    core,
    custom: config.makeApiClient(CustomObjectsApi),
    api,
    vm: async (name, token) => {
      const response = await api(`/api/v1/namespaces/${NS}/vms/${name}`, { token });
      expect(response.status, await response.clone().text()).toBe(200);
      return (await response.json()) as Vm;
    },
    async stop() {
      await server.close();
      await fake.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const post = (body: unknown, token?: string) => ({ method: "POST", body: JSON.stringify(body), token });

const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second));

/** A core/v1 Event about an object of NS, as a controller would write it (the fake keeps what it is given). */
function kubeEvent(
  name: string,
  involved: { kind: string; name: string; apiVersion?: string },
  fields: Record<string, unknown>,
  namespace = NS,
) {
  return {
    namespace,
    body: {
      metadata: { name, namespace },
      involvedObject: { ...involved, namespace },
      type: "Normal",
      ...fields,
    } as never,
  };
}

/** Reads a WebSocket until `until` matches what arrived. */
async function exchange(url: string, send: string | undefined, until: RegExp): Promise<string> {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  let received = "";
  try {
    await new Promise<void>((resolve, reject) => {
      socket.onerror = () => reject(new Error(`cannot open ${url}`));
      socket.onclose = (e) =>
        reject(new Error(`closed: ${e.code} ${e.reason} after ${JSON.stringify(received)}`));
      socket.onmessage = (event) => {
        received += Buffer.from(event.data as ArrayBuffer).toString("utf8");
        if (until.test(received)) resolve();
      };
      socket.onopen = () => {
        if (send !== undefined) socket.send(Buffer.from(send));
      };
    });
  } finally {
    socket.onclose = null;
    socket.close();
  }
  return received;
}

describe("VMs on KubeVirt through the API (service account)", { timeout: 120_000 }, () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it("serves the ConfigMap catalog and defaults to the KubeVirt provider", async () => {
    const images = (await (await h.api(`/api/create-vm/${NS}/os-images`)).json()) as { OS_NAME: string }[];
    expect(images.map((i) => i.OS_NAME)).toEqual(["Ubuntu 24.04", "Ubuntu verified", "CirrOS"]);
    const list = (await (await h.api(`/api/v1/namespaces/${NS}/vms`)).json()) as { items: Vm[] };
    expect(list.items).toEqual([]);
  });

  it("creates a VM, provisioning while its image is imported, then runs it to Ready", async () => {
    const events: string[] = [];
    const controller = new AbortController();
    const stream = await fetch(`${h.server.url}/api/v1/namespaces/${NS}/vm-events`, {
      signal: controller.signal,
    });
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>)
        events.push(decoder.decode(chunk));
    })().catch(() => undefined);

    const response = await h.api(
      `/api/v1/namespaces/${NS}/vms`,
      post({ name: "web", image: "Ubuntu 24.04", sshKeys: [SSH_KEY], password: "pa55word", memory: "2Gi" }),
    );
    expect(response.status, await response.clone().text()).toBe(201);
    const created = (await response.json()) as Vm;
    expect(created).toMatchObject({ provider: "kubevirt", namespace: NS, name: "web" });
    expect(created.spec).toMatchObject({ memory: "2Gi", hasPassword: true, sshKeys: [SSH_KEY] });
    expect(JSON.stringify(created)).not.toContain("pa55word");
    expect(created.status.phase).toBe("Provisioning");

    await waitFor(async () => expect((await h.vm("web")).status.phase).toBe("Ready"));
    const ready = await h.vm("web");
    expect(ready.status.ipAddresses).toEqual(["10.244.0.17"]);
    expect(ready.status.runtime).toMatch(/node fake-node-1/);
    expect(ready.status.conditions).toContainEqual(
      expect.objectContaining({ type: "ImageImported", status: "True" }),
    );
    expect(ready.status.startedAt).toBeTruthy();
    expect(ready.status.readyAt).toBeTruthy();
    await waitFor(() => expect(events.join("")).toContain('"name":"web"'));
    controller.abort();

    // What osimg made in the cluster: the VM, its DataVolume, the Secret with the user-data, owned by the VM.
    const vm = (await h.custom.getNamespacedCustomObject({ ...VM, namespace: NS, name: "web" })) as {
      metadata: { uid: string };
      spec: Record<string, unknown>;
    };
    expect(vm.spec.runStrategy).toBe("Always");
    const secret = await h.core.readNamespacedSecret({ namespace: NS, name: "web-cloudinit" });
    expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "VirtualMachine",
      uid: vm.metadata.uid,
    });
    expect(Buffer.from(secret.data?.userdata ?? "", "base64").toString()).toContain("pa55word");
    expect(JSON.stringify(vm)).not.toContain("pa55word");
  });

  it("reports an import that fails, with CDI's message, while it stays provisioning", async () => {
    // The import fails from its first attempt (CDI retries: Running=False, reason Error).
    h.fake.controllers.failImport(
      NS,
      "stuck-rootdisk",
      "Unable to connect to http data source: 404 Not Found",
    );
    const response = await h.api(`/api/v1/namespaces/${NS}/vms`, post({ name: "stuck", image: "CirrOS" }));
    expect(response.status).toBe(201);
    expect(((await response.json()) as Vm).status.phase).toBe("Provisioning");
    await waitFor(async () => {
      const vm = await h.vm("stuck");
      expect(vm.status.phase).toBe("Provisioning");
      expect(vm.status.importProgress).toBe(0);
      expect(vm.status.conditions).toContainEqual(
        expect.objectContaining({
          type: "ImageImported",
          status: "False",
          reason: "ImportFailing",
          message: expect.stringMatching(
            /stuck-rootdisk: Unable to connect.*404 Not Found \(attempt \d+; CDI retries\)/,
          ),
        }),
      );
      expect(vm.status.notes.join("\n")).toMatch(/importing the image fails/);
    });
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/stuck`, { method: "DELETE" })).status).toBe(204);
  });

  it("runs a small VM to Ready after CDI's import steps", async () => {
    const response = await h.api(`/api/v1/namespaces/${NS}/vms`, post({ name: "slow", image: "CirrOS" }));
    expect(response.status).toBe(201);
    await waitFor(async () => expect((await h.vm("slow")).status.phase).toBe("Ready"));
    // Each step of the import was written by the fake CDI; the provider saw them through its watch.
    const dv = (await h.custom.getNamespacedCustomObject({
      ...DV,
      namespace: NS,
      name: "slow-rootdisk",
    })) as {
      status: { phase: string; progress: string };
    };
    expect(dv.status).toMatchObject({ phase: "Succeeded", progress: "100.0%" });
  });

  it("shows the Kubernetes Events of the VM, its instance, its DataVolume and PVC, and no others", async () => {
    const vm = { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "web" };
    const vmi = { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "web" };
    const dv = { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "web-rootdisk" };
    const pvc = { apiVersion: "v1", kind: "PersistentVolumeClaim", name: "web-rootdisk" };
    const events = [
      kubeEvent("web.1", vm, {
        reason: "SuccessfulCreate",
        message: "Started the virtual machine by creating the new virtual machine instance web",
        source: { component: "virtualmachine-controller" },
        firstTimestamp: at(1),
        lastTimestamp: at(1),
        count: 1,
      }),
      // The newer shape (events.k8s.io written through core/v1): eventTime and a series, no timestamps.
      kubeEvent("web.2", vmi, {
        reason: "Created",
        message: "VirtualMachineInstance defined.",
        eventTime: at(3),
        series: { count: 3, lastObservedTime: at(5) },
        reportingComponent: "virt-handler",
        reportingInstance: "fake-node-1",
        action: "Create",
      }),
      kubeEvent("web-rootdisk.3", dv, {
        reason: "ImportSucceeded",
        message: "Import Successful",
        source: { component: "datavolume-import-controller" },
        firstTimestamp: at(2),
        lastTimestamp: at(2),
        count: 1,
      }),
      kubeEvent("web-rootdisk.4", pvc, {
        type: "Warning",
        reason: "ProvisioningFailed",
        message: 'storageclass.storage.k8s.io "fast" not found',
        source: { component: "persistentvolume-controller" },
        firstTimestamp: at(0),
        lastTimestamp: at(4),
        count: 4,
      }),
      // Not this VM's: another kind of the same name, another VM, the same VM name in another namespace.
      kubeEvent("web.5", { apiVersion: "v1", kind: "ConfigMap", name: "web" }, { reason: "CatalogInvalid" }),
      kubeEvent("slow.6", { ...vm, name: "slow" }, { reason: "SuccessfulCreate", lastTimestamp: at(6) }),
      kubeEvent("web.7", vm, { reason: "SuccessfulCreate", lastTimestamp: at(7) }, "tenant-b"),
    ];
    for (const event of events) await h.core.createNamespacedEvent(event);

    const response = await h.api(`/api/v1/namespaces/${NS}/vms/web/events`);
    expect(response.status, await response.clone().text()).toBe(200);
    const { items } = (await response.json()) as { items: VmEvent[] };
    expect(items).toEqual([
      {
        time: at(1).toISOString(),
        type: "Normal",
        reason: "SuccessfulCreate",
        message: "Started the virtual machine by creating the new virtual machine instance web",
        count: 1,
        source: "virtualmachine-controller",
      },
      {
        time: at(2).toISOString(),
        type: "Normal",
        reason: "ImportSucceeded",
        message: "Import Successful",
        count: 1,
        source: "datavolume-import-controller",
        object: { kind: "DataVolume", name: "web-rootdisk" },
      },
      {
        time: at(4).toISOString(),
        firstTime: at(0).toISOString(),
        type: "Warning",
        reason: "ProvisioningFailed",
        message: 'storageclass.storage.k8s.io "fast" not found',
        count: 4,
        source: "persistentvolume-controller",
        object: { kind: "PersistentVolumeClaim", name: "web-rootdisk" },
      },
      {
        time: at(5).toISOString(),
        firstTime: at(3).toISOString(),
        type: "Normal",
        reason: "Created",
        message: "VirtualMachineInstance defined.",
        count: 3,
        source: "virt-handler",
        object: { kind: "VirtualMachineInstance", name: "web" },
      },
    ]);
    // One list per name, each with a field selector: never all the namespace's Events.
    const lists = h.fake.requests.filter(
      (r) => r.method === "GET" && r.path === `/api/v1/namespaces/${NS}/events`,
    );
    expect(lists.map((r) => r.query.fieldSelector).sort()).toEqual([
      "involvedObject.name=web",
      "involvedObject.name=web-rootdisk",
    ]);

    const unknown = await h.api(`/api/v1/namespaces/${NS}/vms/nope/events`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: "not_found" });
  });

  it("starts, stops, restarts, pauses and unpauses through KubeVirt's subresource API", async () => {
    const act = async (action: string) => {
      const response = await h.api(`/api/v1/namespaces/${NS}/vms/web/${action}`, { method: "POST" });
      expect(response.status, await response.clone().text()).toBe(200);
      return (await response.json()) as Vm;
    };
    await act("pause");
    await waitFor(async () => expect((await h.vm("web")).status.phase).toBe("Paused"));
    await act("unpause");
    await waitFor(async () => expect((await h.vm("web")).status.phase).toBe("Ready"));
    await act("stop");
    await waitFor(async () => expect((await h.vm("web")).status.phase).toBe("Stopped"));
    const refused = await h.api(`/api/v1/namespaces/${NS}/vms/web/pause`, { method: "POST" });
    expect(refused.status).toBe(409);
    await act("start");
    await waitFor(async () => expect((await h.vm("web")).status.phase).toBe("Ready"));
    const before = (await h.custom.getNamespacedCustomObject({ ...VMI, namespace: NS, name: "web" })) as {
      metadata: { uid: string };
    };
    await act("restart");
    await waitFor(async () => {
      const vmi = (await h.custom.getNamespacedCustomObject({ ...VMI, namespace: NS, name: "web" })) as {
        metadata: { uid: string };
      };
      expect(vmi.metadata.uid).not.toBe(before.metadata.uid);
      expect((await h.vm("web")).status.phase).toBe("Ready");
    });
    const paths = h.fake.requests
      .filter((r) => r.path.includes("subresources.kubevirt.io"))
      .map((r) => r.path);
    for (const action of [
      "virtualmachines/web/stop",
      "virtualmachines/web/start",
      "virtualmachines/web/restart",
    ])
      expect(paths.some((p) => p.endsWith(action))).toBe(true);
    expect(paths.some((p) => p.endsWith("virtualmachineinstances/web/pause"))).toBe(true);
  });

  it("proxies the serial console and VNC from the VMI's subresources", async () => {
    const base = `${h.server.url.replace("http", "ws")}/api/v1/namespaces/${NS}/vms/web`;
    const serial = await exchange(`${base}/console`, "hello kubevirt\r", /hello kubevirt\r/);
    expect(serial).toContain("web login: ");
    const vnc = await exchange(`${base}/vnc`, undefined, /RFB 003\.008\n/);
    expect(vnc).toBe("RFB 003.008\n");
    const streams = h.fake.requests.filter((r) =>
      /virtualmachineinstances\/web\/(console|vnc)$/.test(r.path),
    );
    expect(streams.map((r) => r.status)).toEqual([101, 101]);
    await waitFor(() => expect(h.fake.openConsoles(NS, "web")).toBe(0));
  });

  it("refuses the console of a VM that is not running", async () => {
    await h.api(`/api/v1/namespaces/${NS}/vms/slow/stop`, { method: "POST" });
    await waitFor(async () => expect((await h.vm("slow")).status.phase).toBe("Stopped"));
    const socket = new WebSocket(
      `${h.server.url.replace("http", "ws")}/api/v1/namespaces/${NS}/vms/slow/console`,
    );
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => {
      socket.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    });
    expect(closed.code).toBe(1011);
    expect(closed.reason).toMatch(/not running/);
  });

  it("shows the manifests, and with dryRun creates nothing and never shows the password", async () => {
    const manifest = (await (await h.api(`/api/v1/namespaces/${NS}/vms/web/manifest`)).json()) as {
      format: string;
      text: string;
    };
    expect(manifest.format).toBe("yaml");
    const kinds = parseAllDocuments(manifest.text).map((d) => (d.toJS() as { kind: string }).kind);
    expect(kinds).toEqual(["Secret", "VirtualMachine"]);

    const before = h.fake.requests.filter((r) => r.method === "POST").length;
    const dry = await h.api(
      `/api/v1/namespaces/${NS}/vms?dryRun=true`,
      post({ name: "preview", image: "Ubuntu verified", password: "top-secret-1" }),
    );
    expect(dry.status).toBe(200);
    const { rendered } = (await dry.json()) as { rendered: { format: string; text: string } };
    expect(rendered.text).not.toContain("top-secret-1");
    expect(rendered.text).toContain("<redacted>");
    expect(rendered.text).toContain("checksum: sha256:5f2c2b1e");
    expect(h.fake.requests.filter((r) => r.method === "POST").length).toBe(before);
  });

  it("verifies a checksum through a DataVolume owned by the VM", async () => {
    const response = await h.api(
      `/api/v1/namespaces/${NS}/vms`,
      post({ name: "sum", image: "Ubuntu verified" }),
    );
    expect(response.status, await response.clone().text()).toBe(201);
    const vm = (await h.custom.getNamespacedCustomObject({ ...VM, namespace: NS, name: "sum" })) as {
      metadata: { uid: string };
      spec: { dataVolumeTemplates?: unknown };
    };
    expect(vm.spec.dataVolumeTemplates).toBeUndefined();
    const dv = (await h.custom.getNamespacedCustomObject({ ...DV, namespace: NS, name: "sum-rootdisk" })) as {
      metadata: { ownerReferences?: { uid: string }[] };
      spec: { source: { http: { checksum: string } } };
    };
    expect(dv.spec.source.http.checksum).toMatch(/^sha256:5f2c/);
    expect(dv.metadata.ownerReferences?.[0]?.uid).toBe(vm.metadata.uid);
    await waitFor(async () => expect((await h.vm("sum")).status.phase).toBe("Ready"));
  });

  it("refuses a name in use, and never replaces an object it did not create", async () => {
    const again = await h.api(`/api/v1/namespaces/${NS}/vms`, post({ name: "web", image: "CirrOS" }));
    expect(again.status).toBe(409);
    expect(((await again.json()) as { message: string }).message).toMatch(/already exists/);

    await h.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "taken-cloudinit" }, stringData: { mine: "yes" } },
    });
    const clash = await h.api(
      `/api/v1/namespaces/${NS}/vms`,
      post({ name: "taken", image: "CirrOS", password: "pw-for-taken" }),
    );
    expect(clash.status).toBe(409);
    expect(((await clash.json()) as { hint: string }).hint).toMatch(
      /does not replace objects it did not create/,
    );
    // Rolled back: no VM left, and the user's Secret untouched.
    await expect(
      h.custom.getNamespacedCustomObject({ ...VM, namespace: NS, name: "taken" }),
    ).rejects.toMatchObject({
      code: 404,
    });
    const theirs = await h.core.readNamespacedSecret({ namespace: NS, name: "taken-cloudinit" });
    expect(Buffer.from(theirs.data?.mine ?? "", "base64").toString()).toBe("yes");
  });

  it("deletes what osimg created for a VM, and nothing else", async () => {
    // Neighbours: a user's Secret and DataVolume named like osimg's, a VM osimg did not make, another osimg VM.
    await h.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "web-cloudinit-backup" }, stringData: { keep: "1" } },
    });
    await h.custom.createNamespacedCustomObject({
      ...DV,
      namespace: NS,
      body: {
        metadata: { name: "web-data" },
        spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
      },
    });
    await h.custom.createNamespacedCustomObject({
      ...VM,
      namespace: NS,
      body: {
        metadata: { name: "handmade" },
        spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
      },
    });
    const listed = (await (await h.api(`/api/v1/namespaces/${NS}/vms`)).json()) as { items: Vm[] };
    expect(listed.items.map((v) => v.name)).toEqual(["slow", "sum", "web"]);

    const response = await h.api(`/api/v1/namespaces/${NS}/vms/web`, { method: "DELETE" });
    expect(response.status).toBe(204);
    const names = async (resource: typeof VM | typeof VMI | typeof DV) =>
      (
        (await h.custom.listNamespacedCustomObject({ ...resource, namespace: NS })) as {
          items: { metadata: { name: string } }[];
        }
      ).items
        .map((o) => o.metadata.name)
        .sort();
    expect(await names(VM)).toEqual(["handmade", "slow", "sum"]);
    expect((await names(VMI)).includes("web")).toBe(false);
    expect(await names(DV)).toEqual(["slow-rootdisk", "sum-rootdisk", "web-data"]);
    const secrets = (await h.core.listNamespacedSecret({ namespace: NS })).items
      .map((s) => s.metadata?.name)
      .sort();
    expect(secrets).toEqual(["taken-cloudinit", "web-cloudinit-backup"]);
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/web`)).status).toBe(404);
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/handmade`, { method: "DELETE" })).status).toBe(404);

    // The checksum VM's own DataVolume goes with it too.
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/sum`, { method: "DELETE" })).status).toBe(204);
    expect(await names(DV)).toEqual(["slow-rootdisk", "web-data"]);
  });

  it("keeps its cache right across a dropped watch and an API server restart", async () => {
    h.fake.dropWatches("abrupt");
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/slow/start`, { method: "POST" })).status).toBe(200);
    await waitFor(async () => expect((await h.vm("slow")).status.phase).toBe("Ready"));
    // A restart forgets the watch history: the provider's watches get 410 Gone and list again.
    await h.fake.restart();
    expect((await h.api(`/api/v1/namespaces/${NS}/vms/slow/stop`, { method: "POST" })).status).toBe(200);
    await waitFor(async () => expect((await h.vm("slow")).status.phase).toBe("Stopped"));
  });
});

describe("the caller's Kubernetes token passed through (identity: caller)", { timeout: 120_000 }, () => {
  // alice may do anything in tenant-a; bob nothing with VMs; osimg's own token (osimg-token) may read the
  // catalog ConfigMaps, write Events and review tokens, and has no right over VMs at all.
  const users = {
    "fake-token": { username: "admin" },
    "osimg-token": { username: "system:serviceaccount:osimg:osimg" },
    "alice-token": { username: "alice", groups: ["tenant-a-admins"] },
    "bob-token": { username: "bob" },
  };
  const authorize = (c: AccessCheck) => {
    if (c.user === "admin") return true;
    if (c.user === "system:serviceaccount:osimg:osimg")
      return (
        (c.resource === "configmaps" && ["get", "list", "watch"].includes(c.verb)) ||
        (c.resource === "events" && c.verb === "create") ||
        c.resource === "tokenreviews" ||
        c.resource === "subjectaccessreviews"
      );
    if (c.user === "alice") return c.namespace === NS;
    return false;
  };
  let h: Harness;
  beforeAll(async () => {
    h = await start({
      fake: { users, authorize },
      osimgToken: "osimg-token",
      serve: (kubeConfig) => ({
        auth: { mode: "kubernetes", kubeConfig },
        kubevirt: { identity: "caller", settings: DEFAULT_SETTINGS },
      }),
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("creates, reads, operates and deletes as the caller, and RBAC refuses others", async () => {
    const created = await h.api(
      `/api/v1/namespaces/${NS}/vms`,
      post({ name: "mine", image: "CirrOS" }, "alice-token"),
    );
    expect(created.status, await created.clone().text()).toBe(201);
    const vmCalls = h.fake.requests.filter((r) => r.path.includes("/virtualmachines"));
    expect(vmCalls.length).toBeGreaterThan(0);
    expect(vmCalls.every((r) => r.token === "alice-token")).toBe(true);
    await waitFor(async () => expect((await h.vm("mine", "alice-token")).status.phase).toBe("Ready"));

    const stop = await h.api(`/api/v1/namespaces/${NS}/vms/mine/stop`, {
      method: "POST",
      token: "alice-token",
    });
    expect(stop.status).toBe(200);

    const bob = await h.api(`/api/v1/namespaces/${NS}/vms`, { token: "bob-token" });
    expect(bob.status).toBe(403);
    expect(((await bob.json()) as { message: string }).message).toMatch(/bob.*cannot list/);
    const bobCreate = await h.api(
      `/api/v1/namespaces/${NS}/vms`,
      post({ name: "his", image: "CirrOS" }, "bob-token"),
    );
    expect(bobCreate.status).toBe(403);
    const elsewhere = await h.api(
      "/api/v1/namespaces/tenant-b/vms",
      post({ name: "away", image: "CirrOS" }, "alice-token"),
    );
    expect(elsewhere.status).toBe(403);
    const anonymous = await h.api(`/api/v1/namespaces/${NS}/vms`);
    expect(anonymous.status).toBe(401);

    const removed = await h.api(`/api/v1/namespaces/${NS}/vms/mine`, {
      method: "DELETE",
      token: "alice-token",
    });
    expect(removed.status).toBe(204);
    // osimg's own identity never touched a VM.
    expect(
      h.fake.requests.filter((r) => r.path.includes("virtualmachine") && r.token === "osimg-token"),
    ).toEqual([]);
  });

  it("streams changes from a watch opened with the subscriber's token", async () => {
    const controller = new AbortController();
    const events: string[] = [];
    const stream = await fetch(`${h.server.url}/api/v1/namespaces/${NS}/vm-events`, {
      headers: { authorization: "Bearer alice-token" },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>)
        events.push(decoder.decode(chunk));
    })().catch(() => undefined);
    await waitFor(() =>
      expect(
        h.fake.requests.some(
          (r) => r.watch && r.token === "alice-token" && r.path.includes(`/namespaces/${NS}/virtualmachines`),
        ),
      ).toBe(true),
    );
    // VMs, instances, DataVolumes: one watch each, with alice's token.
    await waitFor(() => expect(h.fake.openWatchesOf("alice-token")).toBe(3));
    await h.api(`/api/v1/namespaces/${NS}/vms`, post({ name: "watched", image: "CirrOS" }, "alice-token"));
    await waitFor(() => expect(events.join("")).toContain('"name":"watched"'));
    controller.abort();
    // The subscriber's watches (VMs, instances, DataVolumes) end with its stream.
    await waitFor(() => expect(h.fake.openWatchesOf("alice-token")).toBe(0));
  });

  it("lists a VM's Events with the caller's token", async () => {
    await h.core.createNamespacedEvent(
      kubeEvent(
        "watched.1",
        { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "watched" },
        {
          reason: "SuccessfulCreate",
          message: "created by alice",
          source: { component: "virtualmachine-controller" },
          lastTimestamp: at(1),
        },
      ),
    );
    const response = await h.api(`/api/v1/namespaces/${NS}/vms/watched/events`, { token: "alice-token" });
    expect(response.status, await response.clone().text()).toBe(200);
    expect(((await response.json()) as { items: VmEvent[] }).items).toEqual([
      expect.objectContaining({ reason: "SuccessfulCreate", message: "created by alice", count: 1 }),
    ]);
    const lists = h.fake.requests.filter(
      (r) => r.method === "GET" && r.path === `/api/v1/namespaces/${NS}/events`,
    );
    expect(lists.map((r) => r.query.fieldSelector)).toContain("involvedObject.name=watched");
    expect(lists.every((r) => r.token === "alice-token")).toBe(true);
    const bob = await h.api(`/api/v1/namespaces/${NS}/vms/watched/events`, { token: "bob-token" });
    expect(bob.status).toBe(403);
  });
});

describe("KubevirtProvider directly", { timeout: 180_000 }, () => {
  let fake: FakeKube;
  afterEach(async () => {
    await fake?.close();
  });

  it("creates a VM for every entry of the built-in catalog, which the fake cluster validates and runs", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    const provider = new KubevirtProvider({
      kubeConfig: fake.kubeConfig(),
      settings: DEFAULT_SETTINGS,
      identity: "service-account",
      logger,
    });
    await provider.start();
    try {
      const entries = entriesOf(TEST_CATALOGS["catalog/images.yaml"] as string);
      for (const [i, entry] of entries.entries()) await provider.create(specFor(entry, `vm-${i}`, NS));
      await waitFor(async () => {
        const vms = await provider.list(NS);
        expect(vms).toHaveLength(entries.length);
        expect(vms.filter((v) => v.status.phase !== "Ready" && v.status.phase !== "Running")).toEqual([]);
      }, 60_000);
      await expect(
        provider.create(specFor(entries[0] as (typeof entries)[0], "vm-0", NS)),
      ).rejects.toMatchObject({
        kind: "exists",
      });
      for (const [i] of entries.entries()) await provider.delete(NS, `vm-${i}`);
      await waitFor(async () => expect(await provider.list(NS)).toEqual([]));
      const left = fake.cluster.store.list("cdi.kubevirt.io/v1beta1/datavolumes", NS);
      expect(left).toEqual([]);
    } finally {
      await provider.close();
    }
  });

  it("needs the caller's token in caller mode", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    const provider = new KubevirtProvider({
      kubeConfig: fake.kubeConfig(),
      settings: DEFAULT_SETTINGS,
      identity: "caller",
      logger,
    });
    const error = await provider.list(NS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmError);
    expect((error as VmError).kind).toBe("forbidden");
    await provider.close();
  });
});
