// The fake API server's newer parts, through the real client library: users and RBAC (401, 403 with
// apiserver's message, TokenReview and SubjectAccessReview answering the same), the console and vnc
// WebSocket subresources of a running VMI, preference admission, and VMs waiting for DataVolumes of
// their own.
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
} from "@kubernetes/client-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { expectFailure } from "./support/fake-kube/client-helpers.ts";
import { type AccessCheck, FakeKube } from "./support/fake-kube/index.ts";
import { requestAttributes } from "./support/fake-kube/rbac.ts";
import { KUBEVIRT_STREAM_PROTOCOL } from "./support/fake-kube/server.ts";

const NS = "demo";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 60_000, interval: 20 });
const VMS = { group: "kubevirt.io", version: "v1", namespace: NS, plural: "virtualmachines" } as const;
const DVS = { group: "cdi.kubevirt.io", version: "v1beta1", namespace: NS, plural: "datavolumes" } as const;

let fake: FakeKube;
afterEach(async () => {
  await fake?.close();
});

const vm = (
  name: string,
  spec: Record<string, unknown> = {},
  volumes: unknown[] = [],
  sizes: { cpu?: Record<string, number>; memory?: string } = {},
) => ({
  metadata: { name },
  spec: {
    runStrategy: "Always",
    template: {
      spec: {
        domain: {
          devices: {},
          ...(sizes.cpu ? { cpu: sizes.cpu } : {}),
          memory: { guest: sizes.memory ?? "1Gi" },
        },
        volumes,
      },
    },
    ...spec,
  },
});

async function printable(custom: CustomObjectsApi, name: string): Promise<string | undefined> {
  const object = (await custom.getNamespacedCustomObject({ ...VMS, name })) as {
    status?: { printableStatus?: string };
  };
  return object.status?.printableStatus;
}

describe("users and RBAC", () => {
  const users = {
    "fake-token": { username: "admin" },
    "alice-token": { username: "alice", groups: ["devs"] },
  };
  const authorize = (c: AccessCheck) =>
    c.user === "admin" || (c.user === "alice" && c.namespace === NS && c.verb !== "delete");

  it("reads a request as RBAC attributes", () => {
    expect(requestAttributes("GET", "/api/v1/namespaces/demo/configmaps", true)).toEqual({
      verb: "watch",
      group: "",
      resource: "configmaps",
      namespace: "demo",
    });
    expect(
      requestAttributes(
        "PUT",
        "/apis/subresources.kubevirt.io/v1/namespaces/demo/virtualmachines/web/start",
        false,
      ),
    ).toEqual({
      verb: "update",
      group: "subresources.kubevirt.io",
      resource: "virtualmachines",
      subresource: "start",
      namespace: "demo",
      name: "web",
    });
    expect(requestAttributes("DELETE", "/api/v1/namespaces/demo/secrets", false)?.verb).toBe(
      "deletecollection",
    );
    expect(requestAttributes("GET", "/version", false)).toBeUndefined();
  });

  it("answers 401 to an unknown token and 403 with apiserver's message to a refused one", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS], users, authorize });
    const as = (token: string): KubeConfig => fake.kubeConfig(NS, token);
    await expectFailure(
      as("nobody").makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: NS }),
      401,
    );
    const alice = as("alice-token").makeApiClient(CoreV1Api);
    await alice.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "mine" } } });
    const refused = await expectFailure(
      alice.deleteNamespacedConfigMap({ namespace: NS, name: "mine" }),
      403,
      "Forbidden",
    );
    expect(refused.message).toBe(
      'configmaps "mine" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "demo"',
    );
    await expectFailure(alice.listNamespacedConfigMap({ namespace: "default" }), 403);
    expect(fake.requests.at(-1)).toMatchObject({ token: "alice-token", status: 403 });
  });

  it("answers TokenReview and SubjectAccessReview from the same users and rules", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS], users, authorize });
    const authn = fake.kubeConfig().makeApiClient(AuthenticationV1Api);
    const ok = await authn.createTokenReview({ body: { spec: { token: "alice-token" } } });
    expect(ok.status).toMatchObject({ authenticated: true, user: { username: "alice", groups: ["devs"] } });
    const bad = await authn.createTokenReview({ body: { spec: { token: "forged" } } });
    expect(bad.status?.authenticated).toBe(false);
    const authz = fake.kubeConfig().makeApiClient(AuthorizationV1Api);
    const review = (namespace: string, verb: string) =>
      authz
        .createSubjectAccessReview({
          body: {
            spec: {
              user: "alice",
              groups: ["devs"],
              resourceAttributes: { verb, group: "kubevirt.io", resource: "virtualmachines", namespace },
            },
          },
        })
        .then((r) => r.status?.allowed);
    expect(await review(NS, "create")).toBe(true);
    expect(await review(NS, "delete")).toBe(false);
    expect(await review("default", "list")).toBe(false);
  });
});

describe("console and vnc subresources", { timeout: 60_000 }, () => {
  const open = (url: string) =>
    new Promise<{ socket: WebSocket; first: string }>((resolve, reject) => {
      const socket = new WebSocket(url, [KUBEVIRT_STREAM_PROTOCOL], {
        headers: { authorization: "Bearer fake-token" },
      });
      socket.once("message", (data: Buffer) => resolve({ socket, first: data.toString() }));
      socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      socket.once("error", reject);
    });

  it("streams to a running VMI with KubeVirt's subprotocol, and refuses one that is not running", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    const base = `${fake.url.replace("http", "ws")}/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`;
    await expect(open(`${base}/web/console`)).rejects.toThrow("HTTP 404");
    // A VMI of its own, its phase set by hand (the controllers would move it on by themselves).
    fake.controllers.stop();
    const vmiType = fake.cluster.typeOfKind("VirtualMachineInstance");
    const created = fake.cluster.create(vmiType, NS, {
      metadata: { name: "web" },
      spec: { domain: { devices: {} } },
    });
    await expect(open(`${base}/web/console`)).rejects.toThrow("HTTP 400");
    fake.cluster.update(
      vmiType,
      NS,
      "web",
      { ...created, status: { phase: "Running" } },
      { subresource: "status" },
    );
    const serial = await open(`${base}/web/console`);
    expect(serial.socket.protocol).toBe(KUBEVIRT_STREAM_PROTOCOL);
    expect(serial.first).toBe("\r\nweb login: ");
    const echoed = new Promise<string>((resolve) =>
      serial.socket.once("message", (d: Buffer) => resolve(d.toString())),
    );
    serial.socket.send(Buffer.from("root\r"));
    expect(await echoed).toBe("root\r");
    const vnc = await open(`${base}/web/vnc`);
    expect(vnc.first).toBe("RFB 003.008\n");
    expect(fake.openConsoles(NS, "web")).toBe(2);
    const closed = new Promise((resolve) => serial.socket.once("close", resolve));
    fake.closeConsoles(NS, "web");
    await closed;
    await waitFor(() => expect(fake.openConsoles(NS, "web")).toBe(0));
  });
});

describe("KubeVirt behaviour", { timeout: 60_000 }, () => {
  it("checks a VM against its cluster preference's requirements, and the preference's existence", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    const custom = fake.kubeConfig().makeApiClient(CustomObjectsApi);
    const withPreference = (name: string, cpu: Record<string, number>, memory: string) =>
      vm(name, { preference: { kind: "VirtualMachineClusterPreference", name: "big" } }, [], { cpu, memory });
    const missing = await expectFailure(
      custom.createNamespacedCustomObject({ ...VMS, body: withPreference("a", { cores: 1 }, "1Gi") }),
      422,
    );
    expect(missing.message).toContain(
      'failure to find preference: virtualmachineclusterpreferences.instancetype.kubevirt.io "big" not found',
    );
    await custom.createClusterCustomObject({
      group: "instancetype.kubevirt.io",
      version: "v1beta1",
      plural: "virtualmachineclusterpreferences",
      body: {
        metadata: { name: "big" },
        spec: { requirements: { cpu: { guest: 4 }, memory: { guest: "8Gi" } } },
      },
    });
    const small = withPreference("b", { cores: 2, sockets: 1 }, "1Gi");
    const refused = await expectFailure(custom.createNamespacedCustomObject({ ...VMS, body: small }), 422);
    expect(refused.message).toContain(
      "insufficient CPU resources of 2 vCPU provided by VirtualMachine spec, preference requires 4 vCPU",
    );
    expect(refused.message).toContain(
      "insufficient Memory resources of 1Gi provided by VirtualMachine spec, preference requires 8Gi",
    );
    const enough = withPreference("c", { cores: 2, sockets: 2 }, "8Gi");
    await custom.createNamespacedCustomObject({ ...VMS, body: enough });
  });

  it("waits for a DataVolume of its own (not from a template) before running the VM", async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    const custom = fake.kubeConfig().makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({
      ...VMS,
      body: vm("web", {}, [{ name: "root", dataVolume: { name: "web-disk" } }]),
    });
    await waitFor(async () => expect(await printable(custom, "web")).toBe("Provisioning"));
    await custom.createNamespacedCustomObject({
      ...DVS,
      body: {
        metadata: { name: "web-disk" },
        spec: {
          source: { http: { url: "https://example.org/x.img", checksum: "sha256:00" } },
          storage: { resources: { requests: { storage: "1Gi" } } },
        },
      },
    });
    await waitFor(async () => expect(await printable(custom, "web")).toBe("Running"));
  });
});
