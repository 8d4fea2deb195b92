// The kubernetes mode: tokens authenticated by the cluster's TokenReview and every decision left to
// Kubernetes RBAC — through SubjectAccessReviews, or not asked at all for the VM routes when the provider
// calls Kubernetes with the user's token (delegation). The review APIs are served by a stand-in on
// 127.0.0.1 reached through @kubernetes/client-node, as a cluster would be.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { accessKey, bearer, type FakeReviews, startFakeReviews } from "./support/auth.ts";
import { startTestServer, type TestServer, tempDir } from "./support/server.ts";

let kube: FakeReviews;
const servers: TestServer[] = [];

beforeAll(async () => {
  kube = await startFakeReviews();
  kube.users.set("alice-token", { username: "alice", groups: ["team-a"] });
  kube.users.set("root-token", { username: "root", groups: ["system:masters"] });
  kube.allow.add(accessKey("alice", "get", "kubevirt.io", "virtualmachines", "team-a"));
  kube.allow.add(accessKey("alice", "list", "kubevirt.io", "virtualmachines", "team-a"));
  kube.allow.add(accessKey("root", "update", "osimg.io", "catalogs"));
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

afterAll(async () => {
  await kube?.stop();
});

async function serve(delegate: boolean): Promise<TestServer> {
  const server = await startTestServer({
    dataDir: tempDir("osimg-kube-auth-"),
    auth: { mode: "kubernetes", kubeConfig: kube.kubeConfig, delegate },
  });
  servers.push(server);
  return server;
}

describe("osimg serve --auth kubernetes", () => {
  it("authenticates by TokenReview and asks RBAC for every project action", async () => {
    const server = await serve(false);
    const get = (path: string, token?: string) => fetch(`${server.url}${path}`, { headers: bearer(token) });
    expect((await get("/api/v1/namespaces/team-a/vms")).status).toBe(401);
    expect((await get("/api/v1/namespaces/team-a/vms", "stolen")).status).toBe(401);
    const me = await get("/api/v1/whoami", "alice-token");
    expect(await me.json()).toMatchObject({ subject: "k8s:alice", via: "kubernetes", groups: ["team-a"] });
    // The principal's bearer token is kept for pass-through but never shown.
    expect(JSON.stringify(await (await get("/api/v1/whoami", "alice-token")).json())).not.toContain(
      "alice-token",
    );

    kube.reviews.access.length = 0;
    expect((await get("/api/v1/namespaces/team-a/vms", "alice-token")).status).toBe(200);
    expect((await get("/api/v1/namespaces/team-b/vms", "alice-token")).status).toBe(403);
    expect((await get("/api/v1/namespaces/team-a/quota", "alice-token")).status).toBe(200);
    expect(kube.reviews.access).toEqual(
      expect.arrayContaining([
        { user: "alice", verb: "get", resource: "virtualmachines", namespace: "team-a" },
        { user: "alice", verb: "get", resource: "virtualmachines", namespace: "team-b" },
      ]),
    );
    // Creating needs `create virtualmachines`, which alice does not have in team-a.
    const create = await fetch(`${server.url}/api/v1/namespaces/team-a/vms`, {
      method: "POST",
      headers: { ...bearer("alice-token"), "content-type": "application/json" },
      body: "{}",
    });
    expect(create.status).toBe(403);
    // The catalog is readable by anyone authenticated; editing it is asked as osimg.io/catalogs update.
    expect((await get("/api/v1/catalog", "alice-token")).status).toBe(200);
    const edit = (token: string) =>
      fetch(`${server.url}/api/v1/catalog/source`, {
        method: "PUT",
        headers: { ...bearer(token), "content-type": "application/json" },
        body: JSON.stringify({ text: "" }),
      });
    expect((await edit("alice-token")).status).toBe(403);
    expect((await edit("root-token")).status).toBe(428);
  });

  it("caches TokenReviews and access reviews briefly", async () => {
    const server = await serve(false);
    const before = { token: kube.reviews.token, access: kube.reviews.access.length };
    for (let i = 0; i < 5; i++)
      expect(
        (await fetch(`${server.url}/api/v1/namespaces/team-a/vms`, { headers: bearer("alice-token") }))
          .status,
      ).toBe(200);
    expect(kube.reviews.token - before.token).toBe(1);
    expect(kube.reviews.access.length - before.access).toBe(1);
  });

  it("with delegation, leaves the VM routes to Kubernetes RBAC at the provider's calls", async () => {
    const server = await serve(true);
    kube.reviews.access.length = 0;
    const response = await fetch(`${server.url}/api/v1/namespaces/team-b/vms`, {
      headers: bearer("alice-token"),
    });
    expect(response.status).toBe(200);
    expect(kube.reviews.access).toEqual([]);
    // Not delegated: the per-project catalog and the quota are still asked.
    expect(
      (await fetch(`${server.url}/api/v1/namespaces/team-b/quota`, { headers: bearer("alice-token") }))
        .status,
    ).toBe(403);
    // Anonymous callers never get through, delegated or not.
    expect((await fetch(`${server.url}/api/v1/namespaces/team-b/vms`)).status).toBe(401);
  });

  it("answers 503 when the cluster cannot be asked", async () => {
    const server = await serve(false);
    await kube.stop();
    try {
      const response = await fetch(`${server.url}/api/v1/whoami`, { headers: bearer("new-token") });
      expect(response.status).toBe(503);
    } finally {
      kube = await startFakeReviews();
    }
  });
});
