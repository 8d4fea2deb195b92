// The deployable package: `kubectl kustomize deploy/` renders a least-privilege deployment, whose RBAC
// rules are exactly what osimg uses (osimg runs with the rendered Deployment's arguments against the fake
// API server, which enforces those rules, through a scenario that exercises every code path needing a
// permission; each permission must be used and no request refused), with and without the caller-identity
// component, and with the cluster-builds component (a build run as a Job through the API, pushed and
// written into the catalog ConfigMap, and one stopped with the server). And the Dockerfile: what it copies exists, the runtime needs no devDependency, and its start
// command serves from a copy of the tree.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseAllDocuments } from "yaml";
import { PROJECT_ROOT } from "../src/config/paths.ts";
import { WEB_DIST } from "../src/server/routes/ui.ts";
import {
  holdingPodRunner,
  localPodRunner,
  type Registry,
  seedSyntheticBase,
  startRegistry,
} from "./support/build.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { type AccessCheck, FakeKube, JobController, type KubeObject } from "./support/fake-kube/index.ts";
import { describePermission, type Permission, permissionsOf, permits } from "./support/fake-kube/rbac.ts";
import { SSH_KEY } from "./support/fake-kube/vm-specs.ts";

const DEPLOY = join(PROJECT_ROOT, "deploy");
const BIN = join(PROJECT_ROOT, "bin", "osimg.js");
const SA_USER = "system:serviceaccount:osimg:osimg";
const NS = "tenant-a";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 60_000) =>
  vi.waitFor(check, { timeout, interval: 25 });

/** A port nothing listens on now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
};

function kustomize(dir: string): Manifest[] {
  const result = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((d) => d.toJS() as Manifest);
}

/** The base with components, as a user's own kustomization would use them. */
function withComponents(...components: string[]): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), "osimg-kustomize-"));
  try {
    writeFileSync(
      join(dir, "kustomization.yaml"),
      `resources:\n  - ${relative(dir, DEPLOY)}\ncomponents:\n${components.map((c) => `  - ${relative(dir, join(DEPLOY, "components", c))}\n`).join("")}`,
    );
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const withCallerIdentity = () => withComponents("caller-identity");
const withClusterBuilds = () => withComponents("cluster-builds");
const BUILD_NS = "osimg-builds";

const find = (objects: Manifest[], kind: string, name: string) => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};

type Container = {
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
};
type Deployment = Manifest & {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: { name: string; emptyDir?: unknown }[];
      };
    };
  };
};

describe("kubectl kustomize deploy/", { timeout: 60_000 }, () => {
  const objects = kustomize(DEPLOY);
  const deployment = find(objects, "Deployment", "osimg") as Deployment;
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0] as Container;

  it("renders a Deployment of 2 non-root replicas with probes, resources and a read-only root filesystem", () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container.ports).toEqual([{ name: "http", containerPort: 8080 }]);
    expect(Object.keys(container.resources.requests).sort()).toEqual(["cpu", "memory"]);
    expect(container.resources.limits.memory).toBeDefined();
    // Everything osimg writes is on the two emptyDir volumes.
    expect(container.volumeMounts.map((m) => m.mountPath).sort()).toEqual(["/tmp", "/var/lib/osimg"]);
    expect(pod.volumes.every((v) => v.emptyDir !== undefined)).toBe(true);
    expect(container.args).toContain("--data-dir=/var/lib/osimg");
    expect(container.image).toBe("ghcr.io/osimg/osimg:0.1.0");
    expect(pod.serviceAccountName).toBe("osimg");
  });

  it("wires the Service, PodDisruptionBudget and ServiceAccount to the pods", () => {
    const labels = deployment.spec.template.metadata.labels;
    const service = find(objects, "Service", "osimg") as Manifest & {
      spec: { selector: Record<string, string>; ports: { targetPort: string }[] };
    };
    for (const [k, v] of Object.entries(service.spec.selector)) expect(labels[k]).toBe(v);
    expect(service.spec.ports[0]?.targetPort).toBe("http");
    const pdb = find(objects, "PodDisruptionBudget", "osimg") as Manifest & {
      spec: { selector: { matchLabels: Record<string, string> } };
    };
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const account = find(objects, "ServiceAccount", "osimg");
    expect(account.metadata.namespace).toBe(deployment.metadata.namespace);
  });

  it("holds the images-configmap in the Kube-DC format, in sync with the built-in catalog", () => {
    const configMap = find(objects, "ConfigMap", "images-configmap") as Manifest & {
      data: Record<string, string>;
    };
    expect(configMap.metadata.namespace).toBe("kube-dc");
    expect(Object.keys(configMap.data)).toEqual(["images.yaml"]);
    expect(configMap.data["images.yaml"]).toBe(
      readFileSync(join(PROJECT_ROOT, "catalog", "images.yaml"), "utf8"),
    );
  });

  it("with the caller-identity component: --identity=caller and no rights over VMs", () => {
    const variant = withCallerIdentity();
    const args = (find(variant, "Deployment", "osimg") as Deployment).spec.template.spec.containers[0]?.args;
    expect(args).toContain("--identity=caller");
    expect(args).not.toContain("--identity=service-account");
    const permissions = permissionsOf(variant, { namespace: "osimg", name: "osimg" });
    expect(permissions.filter((p) => /kubevirt|secrets/.test(`${p.group}/${p.resource}`))).toEqual([]);
    expect(variant.some((o) => o.metadata.name === "osimg-vms")).toBe(false);
  });

  it("with the cluster-builds component: builds as Jobs in a privileged namespace of their own, with the Deployment's image", () => {
    const variant = withClusterBuilds();
    const container = (find(variant, "Deployment", "osimg") as Deployment).spec.template.spec
      .containers[0] as Container;
    expect(container.args).toEqual(
      expect.arrayContaining([
        "--builds=cluster",
        `--build-namespace=${BUILD_NS}`,
        `--builder-image=${container.image}`,
      ]),
    );
    expect(find(variant, "Namespace", BUILD_NS).metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "privileged",
    });
    // A build lives in one replica's memory: a client stays on one.
    expect(
      (find(variant, "Service", "osimg") as Manifest & { spec: Record<string, unknown> }).spec,
    ).toMatchObject({ sessionAffinity: "ClientIP" });
    const held = (o: Manifest[]) =>
      permissionsOf(o, { namespace: "osimg", name: "osimg" }).map(describePermission);
    const base = new Set(held(objects));
    expect(
      held(variant)
        .filter((p) => !base.has(p))
        .sort(),
    ).toEqual(
      [
        "create batch/jobs",
        "list batch/jobs",
        "watch batch/jobs",
        "delete batch/jobs",
        "create configmaps",
        "list pods",
        "get pods/log",
      ]
        .map((p) => `${p} in ${BUILD_NS}`)
        .sort(),
    );
    // With caller-identity as well: both apply.
    const args = (
      find(withComponents("caller-identity", "cluster-builds"), "Deployment", "osimg") as Deployment
    ).spec.template.spec.containers[0]?.args;
    expect(args).toEqual(expect.arrayContaining(["--identity=caller", "--builds=cluster"]));
  });
});

/** What the scenario runs against: the fake, enforcing the rendered rules for osimg's service account. */
interface Cluster {
  fake: FakeKube;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  permissions: Permission[];
  used: Set<Permission>;
  refused: string[];
}

async function clusterFor(objects: Manifest[]): Promise<Cluster> {
  const permissions = permissionsOf(objects, { namespace: "osimg", name: "osimg" });
  const used = new Set<Permission>();
  const refused: string[] = [];
  const authorize = (check: AccessCheck) => {
    if (check.user !== SA_USER) return true; // the admin (test setup) and alice (a tenant admin)
    const match = permissions.filter((p) => permits(p, check));
    for (const p of match) used.add(p);
    if (match.length === 0)
      refused.push(
        `${check.verb} ${check.group}/${check.resource}${check.subresource ? `/${check.subresource}` : ""} ${check.namespace ?? "(cluster)"}`,
      );
    return match.length > 0;
  };
  const fake = await FakeKube.start({
    namespaces: ["default", "kube-dc", "osimg", NS, BUILD_NS],
    users: {
      "fake-token": { username: "admin", groups: ["system:masters"] },
      "osimg-sa-token": { username: SA_USER, groups: ["system:serviceaccounts"] },
      "alice-token": { username: "alice", groups: ["tenant-a-admins"] },
    },
    authorize,
  });
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  const configMap = find(objects, "ConfigMap", "images-configmap");
  await core.createNamespacedConfigMap({ namespace: "kube-dc", body: configMap as never });
  return {
    fake,
    core,
    custom: fake.kubeConfig().makeApiClient(CustomObjectsApi),
    permissions,
    used,
    refused,
  };
}

/** Starts `osimg` with the Deployment's arguments (address, port and data directory made local). */
async function startOsimg(
  objects: Manifest[],
  cluster: Cluster,
  dir: string,
): Promise<{ url: string; child: ChildProcess }> {
  const container = (find(objects, "Deployment", "osimg") as Deployment).spec.template.spec
    .containers[0] as Container;
  const kubeconfig = join(dir, "kubeconfig");
  await cluster.fake.writeKubeconfig(kubeconfig, "osimg", "osimg-sa-token");
  const port = await freePort();
  const args = container.args.map((a) =>
    a.startsWith("--host=")
      ? "--host=127.0.0.1"
      : a.startsWith("--port=")
        ? `--port=${port}`
        : a.startsWith("--data-dir=")
          ? `--data-dir=${join(dir, "data")}`
          : a,
  );
  const child = spawn(process.execPath, [BIN, ...args, `--kubeconfig=${kubeconfig}`], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, OSIMG_LOG_LEVEL: "warn" },
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`osimg exited ${child.exitCode}: ${stderr}`);
    expect((await fetch(`${url}/readyz`).catch(() => undefined))?.status).toBe(200);
  }, 60_000);
  return { url, child };
}

/** Every operation whose Kubernetes calls need a permission, as a tenant admin drives them. */
async function scenario(url: string, cluster: Cluster): Promise<void> {
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, {
      ...init,
      headers: {
        authorization: "Bearer alice-token",
        ...(init.body ? { "content-type": "application/json" } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  const vms = `/api/v1/namespaces/${NS}/vms`;
  const expectStatus = async (response: Promise<Response>, status: number) => {
    const r = await response;
    expect(r.status, `${r.url}: ${await r.clone().text()}`).toBe(status);
    return r;
  };
  const phase = async (name: string) =>
    ((await (await api(`${vms}/${name}`)).json()) as { status: { phase: string } }).status.phase;

  await expectStatus(api(`/api/create-vm/${NS}/os-images`), 200);
  // The catalog editor: get and update the ConfigMap; a checksum entry for the VM below.
  const source = (await (await expectStatus(api("/api/v1/catalog/source"), 200)).json()) as {
    text: string;
    version: string;
  };
  const withChecksum = `${source.text}${catalogYaml([
    {
      ...UBUNTU,
      OS_NAME: "Checked",
      OS_IMAGE_URL: "http://127.0.0.1:9/checked.img",
      OS_IMAGE_SHA256: "ab".repeat(32),
    },
  ]).replace("images:\n", "")}`;
  await expectStatus(
    api("/api/v1/catalog/source", {
      method: "PUT",
      headers: { "if-match": `"${source.version}"` },
      body: JSON.stringify({ text: withChecksum }),
    }),
    200,
  );
  // A broken catalog and a broken overlay (written by someone else): Events on their ConfigMaps.
  const current = await cluster.core.readNamespacedConfigMap({
    namespace: "kube-dc",
    name: "images-configmap",
  });
  await cluster.core.replaceNamespacedConfigMap({
    namespace: "kube-dc",
    name: "images-configmap",
    body: { ...current, data: { "images.yaml": `${withChecksum}  - OS_NAME: "Broken"\n` } },
  });
  await cluster.core.createNamespacedConfigMap({
    namespace: NS,
    body: {
      metadata: { name: "team-images", labels: { "osimg.io/catalog": "true" } },
      data: { "images.yaml": 'images:\n  - OS_NAME: "Team"\n' },
    },
  });
  await waitFor(async () => {
    const events = [
      ...(await cluster.core.listNamespacedEvent({ namespace: "kube-dc" })).items,
      ...(await cluster.core.listNamespacedEvent({ namespace: NS })).items,
    ];
    expect(events.map((e) => e.involvedObject.name).sort()).toEqual(["images-configmap", "team-images"]);
  });

  // VMs: a password (a Secret), a checksum (a DataVolume of its own), then every lifecycle action.
  const create = (body: Record<string, unknown>) =>
    api(vms, { method: "POST", body: JSON.stringify({ image: "Checked", sshKeys: [SSH_KEY], ...body }) });
  await expectStatus(create({ name: "web", password: "pa55word" }), 201);
  await waitFor(async () => expect(await phase("web")).toBe("Ready"));
  const act = async (action: string, after: string) => {
    await expectStatus(api(`${vms}/web/${action}`, { method: "POST" }), 200);
    await waitFor(async () => expect(await phase("web")).toBe(after));
  };
  await act("pause", "Paused");
  await act("unpause", "Ready");
  await act("stop", "Stopped");
  await act("start", "Ready");
  for (const stream of ["console", "vnc"]) {
    const socket = new WebSocket(`${url.replace("http", "ws")}${vms}/web/${stream}`, {
      headers: { authorization: "Bearer alice-token", origin: url },
    } as unknown as string[]);
    await new Promise<void>((resolve, reject) => {
      socket.onmessage = () => resolve();
      socket.onclose = (e) => reject(new Error(`${stream} closed: ${e.code} ${e.reason}`));
    });
    socket.onclose = null;
    socket.close();
  }
  // Last: what follows needs no running instance (a restart's Ready may still be the old instance's).
  await act("restart", "Ready");
  await expectStatus(api(`${vms}/web/manifest`), 200);
  await expectStatus(api(`${vms}/web/events`), 200);
  // A create that fails half-way is undone: a Secret of that name exists already.
  await cluster.core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: "clash-cloudinit" } },
  });
  await expectStatus(create({ name: "clash", password: "pa55word" }), 409);
  await expectStatus(api(`${vms}/web`, { method: "DELETE" }), 204);
  const left = (await cluster.custom.listNamespacedCustomObject({
    group: "cdi.kubevirt.io",
    version: "v1beta1",
    plural: "datavolumes",
    namespace: NS,
  })) as { items: unknown[] };
  expect(left.items).toEqual([]);
}

describe.each([
  ["service account", () => kustomize(DEPLOY)],
  ["caller identity", withCallerIdentity],
])("the rendered RBAC is exactly what osimg uses (%s)", (_mode, render) => {
  let cluster: Cluster;
  let osimg: { url: string; child: ChildProcess };
  let dir: string;
  const objects = render();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "osimg-deploy-"));
    cluster = await clusterFor(objects);
    osimg = await startOsimg(objects, cluster, dir);
  });

  afterAll(async () => {
    if (osimg?.child.exitCode === null) {
      const exited = new Promise((resolve) => osimg.child.once("exit", resolve));
      osimg.child.kill("SIGTERM");
      await exited;
    }
    await cluster?.fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs every operation without a refusal, and needs every permission it has", async () => {
    await scenario(osimg.url, cluster);
    expect(cluster.refused).toEqual([]);
    const unused = cluster.permissions.filter((p) => !cluster.used.has(p)).map(describePermission);
    expect(unused).toEqual([]);
  }, 300_000);
});

const BUILD_SPEC = `[from_repo]
suite = "bookworm"
version = "7"

[[copy_files]]
src = "files/hello.txt"
dst = "/etc/hello.txt"

[disk_partition]
root = 256

[catalog]
OS_NAME = "Built on the cluster"
CLOUD_USER = "debian"
OS_IMAGE_URL = "https://images.example.com/built/system.qcow2"
`;
/** A spec whose Job's pod runs until the Job is deleted. */
const HOLD = "# held until its Job is deleted";

/** Builds as Jobs, as a tenant admin drives them: one pushed and written into the catalog, one stopped. */
async function buildScenario(
  osimg: { url: string; child: ChildProcess },
  cluster: Cluster,
  registry: Registry,
): Promise<void> {
  const headers = { authorization: "Bearer alice-token" };
  const post = (body: Record<string, unknown>) =>
    fetch(`${osimg.url}/api/v1/builds`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({
        kind: "container-disk",
        files: { "files/hello.txt": Buffer.from("hello\n").toString("base64") },
        push: { reference: `${registry.address}/osimg/deployed:1`, tlsVerify: false },
        ...body,
      }),
    });
  const built = await post({ spec: BUILD_SPEC, catalogConfigMap: "kube-dc/images-configmap" });
  expect(built.status, await built.clone().text()).toBe(202);
  const { id } = (await built.json()) as { id: string };
  const log = await (await fetch(`${osimg.url}/api/v1/builds/${id}/logs`, { headers })).text();
  expect(log, log.slice(-2000)).toMatch(/^event: done$/m);
  expect(log).toContain(
    'catalog ConfigMap kube-dc/images-configmap: entry \\"Built on the cluster\\" now points at',
  );
  // Stopping osimg stops the build running then: its Job is deleted.
  const held = await post({ spec: `${HOLD}\n${BUILD_SPEC}` });
  const { id: heldId } = (await held.json()) as { id: string };
  const response = await fetch(`${osimg.url}/api/v1/builds/${heldId}/logs`, { headers });
  const reader = (response.body as ReadableStream<Uint8Array>)
    .pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  while (!text.includes("holding on until the Job is deleted")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended: ${text}`);
    text += value;
  }
  const exited = new Promise((resolve) => osimg.child.once("exit", resolve));
  osimg.child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await exited;
  const job = `osimg-build-${heldId}`;
  expect(text).toContain(`the build was stopped; Job ${BUILD_NS}/${job} deleted`);
  expect(() =>
    cluster.fake.cluster.get(cluster.fake.cluster.type("batch", "v1", "jobs"), BUILD_NS, job),
  ).toThrow();
}

describe("the rendered RBAC is exactly what osimg uses (cluster builds)", () => {
  let cluster: Cluster;
  let osimg: { url: string; child: ChildProcess };
  let dir: string;
  let registry: Registry;
  let jobs: JobController;
  const objects = withClusterBuilds();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "osimg-deploy-"));
    registry = await startRegistry();
    cluster = await clusterFor(objects);
    // The pods' data volume, with the synthetic root filesystem the spec's base names (seconds to build).
    const podData = join(dir, "pod-data");
    await seedSyntheticBase(podData, BUILD_SPEC, "container-disk");
    const configMaps = cluster.fake.cluster.type("", "v1", "configmaps");
    const read = (namespace: string, name: string): KubeObject =>
      cluster.fake.cluster.get(configMaps, namespace, name);
    jobs = new JobController(
      cluster.fake,
      holdingPodRunner(localPodRunner({ configMaps: read, dataDir: podData }), read, HOLD),
    );
    jobs.start();
    osimg = await startOsimg(objects, cluster, dir);
  });

  afterAll(async () => {
    if (osimg?.child.exitCode === null) {
      const exited = new Promise((resolve) => osimg.child.once("exit", resolve));
      osimg.child.kill("SIGTERM");
      await exited;
    }
    jobs?.stop();
    await cluster?.fake.close();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs every operation and builds as Jobs without a refusal, and needs every permission it has", async () => {
    await scenario(osimg.url, cluster);
    await buildScenario(osimg, cluster, registry);
    expect(cluster.refused).toEqual([]);
    const unused = cluster.permissions.filter((p) => !cluster.used.has(p)).map(describePermission);
    expect(unused).toEqual([]);
  }, 300_000);
});

describe("Dockerfile", { timeout: 180_000 }, () => {
  const dockerfile = readFileSync(join(PROJECT_ROOT, "Dockerfile"), "utf8");
  const ignored = readFileSync(join(PROJECT_ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const copied = [
    ...dockerfile.matchAll(/^COPY --from=build \/app\/(\S+)(?: \/app\/(\S+))? \.\/?\S*$/gm),
  ].flatMap((m) => [m[1], m[2]].filter((p): p is string => p !== undefined));

  it("is multi-stage on Node 24, runs as a non-root user, and starts `osimg serve`", () => {
    const stages = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)];
    expect(stages.map((s) => s[1])).toEqual(["node:24-bookworm-slim", "node:24-bookworm-slim"]);
    expect(stages[0]?.[2]).toBe("build");
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/osimg\.js"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["serve"\]$/m);
    const deployment = find(kustomize(DEPLOY), "Deployment", "osimg") as Deployment;
    const user = deployment.spec.template.spec.securityContext.runAsUser;
    expect(dockerfile).toContain(`USER ${user}:${user}`);
  });

  it("copies files that the build produces or the context holds (none excluded by .dockerignore)", () => {
    expect(copied.sort()).toEqual([
      "bin",
      "catalog",
      "node_modules",
      "package-lock.json",
      "package.json",
      "src",
      "web/dist",
    ]);
    for (const path of copied.filter((p) => p !== "node_modules" && p !== "web/dist"))
      expect(existsSync(join(PROJECT_ROOT, path)), path).toBe(true);
    // web/dist is where `node web/build.ts` writes and where the server reads.
    expect(WEB_DIST).toBe(join(PROJECT_ROOT, "web", "dist"));
    expect(readFileSync(join(PROJECT_ROOT, "web", "build.ts"), "utf8")).toContain('join(WEB_ROOT, "dist")');
    // What the build stage needs from the context is not ignored: sources, the UI's sources, package files.
    for (const needed of ["bin", "src", "catalog", "web", "package.json", "package-lock.json"])
      expect(ignored.filter((pattern) => pattern === needed || needed.startsWith(`${pattern}/`))).toEqual([]);
  });

  it("needs no devDependency at run time (npm prune --omit=dev keeps what src/ imports)", async () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const files = (await readdir(join(PROJECT_ROOT, "src"), { recursive: true })).filter((f) =>
      f.endsWith(".ts"),
    );
    const packages = new Set<string>();
    for (const file of files) {
      const text = readFileSync(join(PROJECT_ROOT, "src", file), "utf8");
      for (const m of text.matchAll(/(?:from |import\()"([^".][^"]*)"/g)) {
        const name = (m[1] as string).startsWith("@")
          ? (m[1] as string).split("/").slice(0, 2).join("/")
          : ((m[1] as string).split("/")[0] as string);
        if (!name.startsWith("node:")) packages.add(name);
      }
    }
    expect([...packages].filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });

  it("serves with its start command from a copy of the files it copies", async () => {
    const app = mkdtempSync(join(tmpdir(), "osimg-image-"));
    try {
      for (const path of copied.filter((p) => p !== "node_modules" && p !== "web/dist"))
        cpSync(join(PROJECT_ROOT, path), join(app, path), { recursive: true });
      symlinkSync(join(PROJECT_ROOT, "node_modules"), join(app, "node_modules"));
      const env = Object.fromEntries(
        [...dockerfile.matchAll(/(OSIMG_\w+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string]),
      );
      expect(env).toEqual({ OSIMG_DATA_DIR: "/var/lib/osimg", OSIMG_HOST: "0.0.0.0", OSIMG_PORT: "8080" });
      const port = await freePort();
      // ENTRYPOINT + CMD, with the image's environment (the address and the data directory made local).
      const child = spawn(process.execPath, ["bin/osimg.js", "serve"], {
        cwd: app,
        stdio: ["ignore", "ignore", "pipe"],
        env: {
          ...process.env,
          ...env,
          NODE_ENV: "production",
          OSIMG_HOST: "127.0.0.1",
          OSIMG_PORT: String(port),
          OSIMG_DATA_DIR: join(app, "data"),
          OSIMG_LOG_LEVEL: "warn",
        },
      });
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      try {
        await waitFor(async () => {
          if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr}`);
          expect((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status).toBe(200);
        }, 60_000);
        const images = await fetch(`http://127.0.0.1:${port}/api/create-vm/default/os-images`);
        // The default auth mode (tokens) answers 401 without one: the catalog is not public.
        expect(images.status).toBe(401);
        expect(stderr).toMatch(/admin token/i);
      } finally {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });
});
