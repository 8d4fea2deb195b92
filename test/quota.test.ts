// Project quotas: the quota file (errors with line:column), usage and what a VM would exceed (pure), and
// on a real server: concurrent creates of which only one fits the quota — exactly one passes — with the
// refusal naming the quota and the usage, the quota endpoint, and quotas read from a ConfigMap.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exceeded, limitsFor, parseQuotaConfig, usageOf } from "../src/quota/quota.ts";
import { bearer, LOCAL_ENTRY, type RoleTokens, startTokenServer } from "./support/auth.ts";
import { catalogYaml } from "./support/catalogs.ts";
import { FakeKube } from "./support/fake-kube/index.ts";
import { startTestServer, type TestServer, tempDir } from "./support/server.ts";

const GiB = 2 ** 30;
const ENTRY = LOCAL_ENTRY;

describe("the quota file", () => {
  it("merges a project's limits over the default", () => {
    const config = parseQuotaConfig(
      "default:\n  vms: 10\n  memory: 32Gi\nprojects:\n  demo:\n    vms: 2\n    cpu: 4\n",
      "quotas.yaml",
    );
    expect(limitsFor(config, "demo")).toEqual({ vms: 2, cpu: 4, memory: "32Gi" });
    expect(limitsFor(config, "other")).toEqual({ vms: 10, memory: "32Gi" });
    expect(limitsFor(parseQuotaConfig("projects: {}\n", "q"), "demo")).toBeUndefined();
  });

  it("names the line, column and field of a mistake", () => {
    expect(() => parseQuotaConfig("projects:\n  demo:\n    memory: 8GB\n", "quotas.yaml")).toThrow(
      /^quotas\.yaml:3:13: projects\.demo\.memory: "8GB" has an unknown unit "GB" \(write "8G"/,
    );
    expect(() => parseQuotaConfig("projects:\n  demo:\n    vcpus: 2\n", "quotas.yaml")).toThrow(
      /quotas\.yaml:3:5: projects\.demo: Unrecognized key: "vcpus"; fields: vms, cpu, memory, storage/,
    );
    expect(() => parseQuotaConfig("projects:\n  Demo_1:\n    vms: 2\n", "quotas.yaml")).toThrow(/DNS-1123/);
    expect(() => parseQuotaConfig("default: [\n", "quotas.yaml")).toThrow(/^quotas\.yaml:\d+:\d+: /);
  });

  it("says what one more VM would exceed, with limit, usage and request", () => {
    const usage = usageOf([
      { spec: { cpu: 2, memoryBytes: 2 * GiB, storageBytes: 20e9 } },
      { spec: { cpu: 1, memoryBytes: GiB, storageBytes: 10e9 } },
    ] as never);
    expect(usage).toEqual({ vms: 2, cpu: 3, memoryBytes: 3 * GiB, storageBytes: 30e9 });
    const over = exceeded({ vms: 3, cpu: 4, memory: "4Gi", storage: "100G" }, usage, {
      cpu: 2,
      memoryBytes: 2 * GiB,
      storageBytes: 10e9,
    });
    expect(over).toEqual([
      { resource: "cpu", limit: "4", used: "3", requested: "2" },
      { resource: "memory", limit: "4Gi", used: "3 GiB", requested: "2 GiB" },
    ]);
    expect(exceeded({ vms: 2 }, usage, { cpu: 1, memoryBytes: 1, storageBytes: 1 })[0]?.resource).toBe("vms");
  });
});

describe("quotas on the server", () => {
  let server: TestServer;
  let tokens: RoleTokens;
  let quotaFile: string;

  beforeAll(async () => {
    let dataDir: string;
    ({ server, tokens, dataDir } = await startTokenServer({
      prefix: "osimg-quota-",
      files: { "quotas.yaml": "projects:\n  demo:\n    cpu: 3\n    memory: 8Gi\n" },
    }));
    quotaFile = join(dataDir, "quotas.yaml");
  });

  afterAll(async () => {
    await server?.stop();
  });

  const create = (name: string, extra: Record<string, unknown> = {}) =>
    fetch(`${server.url}/api/v1/namespaces/demo/vms`, {
      method: "POST",
      headers: { ...bearer(tokens.member), "content-type": "application/json" },
      body: JSON.stringify({
        name,
        image: ENTRY.OS_NAME,
        cpu: 2,
        memory: "1Gi",
        runStrategy: "Halted",
        ...extra,
      }),
    });
  const remove = (name: string) =>
    fetch(`${server.url}/api/v1/namespaces/demo/vms/${name}`, {
      method: "DELETE",
      headers: bearer(tokens.member),
    });
  const quota = async () =>
    (await (
      await fetch(`${server.url}/api/v1/namespaces/demo/quota`, { headers: bearer(tokens.viewer) })
    ).json()) as {
      limits: Record<string, unknown> | null;
      usage: { vms: number; cpu: number; memoryBytes: number };
    };

  it("lets exactly one of several concurrent creates through when only one fits", async () => {
    const names = ["race-1", "race-2", "race-3", "race-4", "race-5", "race-6"];
    const answers = await Promise.all(names.map((n) => create(n)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 403)).toHaveLength(names.length - 1);
    const refusal = (await answers[statuses.indexOf(403)]?.json()) as {
      error: string;
      message: string;
      details: { field: string; message: string }[];
    };
    expect(refusal.error).toBe("quota_exceeded");
    expect(refusal.message).toBe(
      "the quota of project demo does not allow this VM: cpu 2 used + 2 requested > 3",
    );
    expect(refusal.details).toEqual([{ field: "quota.cpu", message: "limit 3, used 2, requested 2" }]);
    const status = await quota();
    expect(status.limits).toEqual({ cpu: 3, memory: "8Gi", memoryBytes: 8 * GiB });
    expect(status.usage).toMatchObject({ vms: 1, cpu: 2, memoryBytes: GiB });
    // What the list shows agrees: one VM.
    const list = (await (
      await fetch(`${server.url}/api/v1/namespaces/demo/vms`, { headers: bearer(tokens.viewer) })
    ).json()) as { items: { name: string }[] };
    expect(list.items).toHaveLength(1);
    await remove(list.items[0]?.name as string);
    expect((await quota()).usage.vms).toBe(0);
  });

  it("refuses by memory too, and follows an edit of the quota file", async () => {
    expect((await create("big-1", { cpu: 1, memory: "6Gi" })).status).toBe(201);
    const second = await create("big-2", { cpu: 1, memory: "6Gi" });
    expect(second.status).toBe(403);
    expect(((await second.json()) as { message: string }).message).toContain(
      "memory 6 GiB used + 6 GiB requested > 8Gi",
    );
    writeFileSync(quotaFile, "projects:\n  demo:\n    memory: 16Gi\n");
    expect((await create("big-2", { cpu: 1, memory: "6Gi" })).status).toBe(201);
    await remove("big-1");
    await remove("big-2");
  });

  it("answers the quota of a project without one: no limits, the usage", async () => {
    const response = await fetch(`${server.url}/api/v1/namespaces/other/quota`, {
      headers: bearer(tokens.admin),
    });
    expect(await response.json()).toMatchObject({ namespace: "other", limits: null, usage: { vms: 0 } });
  });
});

describe("quotas from a ConfigMap", () => {
  it("reads data[quotas.yaml] of the named ConfigMap", async () => {
    const fake = await FakeKube.start({ namespaces: ["osimg"] });
    const dataDir = tempDir("osimg-quota-cm-");
    const catalogPath = join(dataDir, "catalog.yaml");
    writeFileSync(catalogPath, catalogYaml([ENTRY]));
    await fake
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespacedConfigMap({
        namespace: "osimg",
        body: { metadata: { name: "osimg-quotas" }, data: { "quotas.yaml": "default:\n  vms: 0\n" } },
      });
    const server = await startTestServer({
      catalogPath,
      dataDir,
      tenancy: {
        quota: { configMap: { namespace: "osimg", name: "osimg-quotas", kubeConfig: fake.kubeConfig() } },
      },
    });
    try {
      const response = await fetch(`${server.url}/api/v1/namespaces/team/vms`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "one", image: ENTRY.OS_NAME }),
      });
      expect(response.status).toBe(403);
      const body = (await response.json()) as { error: string };
      expect(body.error).toBe("quota_exceeded");
      const quota = await (await fetch(`${server.url}/api/v1/namespaces/team/quota`)).json();
      expect(quota).toMatchObject({
        source: 'configmap osimg/osimg-quotas (data["quotas.yaml"])',
        limits: { vms: 0 },
      });
    } finally {
      await server.stop();
      await fake.close();
    }
  });
});
