// Builds on the HTTP API of a real `osimg serve --builds cluster`: each build runs as a Kubernetes Job on
// the fake API server, whose Job controller runs the pod's osimg command here on a synthetic root
// filesystem seeded into the pod's data volume (seconds, no Debian download). A containerDisk is pushed to
// a real registry; the Job and its ConfigMap are as rendered, in the build namespace, with the builder
// image; the pod's log lines are streamed as server-sent events; the record comes from the result line;
// the image is written into a catalog ConfigMap. A failing build ends failed with the Job's log tail and
// the spec's findings; stopping the server deletes a running build's Job. And the serve flags, and the
// follower of a Job's pods' logs on its own (a connection cut mid-stream, a pod that cannot start, a retry).
import { execFile, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  BUILD_ID_ANNOTATION,
  followJobLogs,
  LATEST_IMAGE_ANNOTATION,
  RESULT_PREFIX,
} from "../src/build/cluster.ts";
import { parseCatalog } from "../src/catalog/parse.ts";
import { accessKey, bearer, startFakeReviews } from "./support/auth.ts";
import {
  holdingPodRunner,
  localPodRunner,
  OSIMG_BIN,
  type Registry,
  seedSyntheticBase,
  startRegistry,
  tempDir,
} from "./support/build.ts";
import { FakeKube, JobController, type KubeObject } from "./support/fake-kube/index.ts";
import { startTestServer, type TestServer } from "./support/server.ts";

const run = promisify(execFile);
const NS = "builds";
const IMAGE = "osimg:test";

const SPEC = `[from_repo]
suite = "bookworm"
version = "7"

[[users]]
name = "ops"

[[copy_files]]
src = "files/hello.txt"
dst = "/etc/hello.txt"
mode = "0640"
owner = "ops"

[systemd_service]
name = ["demo"]

[disk_partition]
root = 256

[catalog]
OS_NAME = "Synthetic (cluster build)"
CLOUD_USER = "ops"
OS_IMAGE_URL = "https://images.example.com/synthetic/system.qcow2"
`;
const FILES = { "files/hello.txt": Buffer.from("hello from a Job\n").toString("base64") };
const CATALOG =
  'images:\n  # kept as it is\n  - OS_NAME: "Ubuntu 24.04"\n    CLOUD_USER: ubuntu\n    OS_IMAGE_URL: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"\n';
/** A spec whose pod never ends by itself (held until its Job is deleted). */
const HANG_MARK = "# test: the pod hangs";

let fake: FakeKube;
let jobs: JobController;
let registry: Registry;
let podData: string;
let server: TestServer;
let logs: string[];

interface View {
  id: string;
  state: string;
  kind: string;
  runner: string;
  error?: string;
  findings?: { path: string; line: number; column: number; message: string }[];
  record?: {
    buildId: string;
    outputs: { name: string; path: string; sha256?: string }[];
    push?: { reference: string; digest: string };
  };
}
const json = async <T = View>(response: Response) => (await response.json()) as T;
type Event = { event: string; data: unknown };

function post(base: string, body: unknown): Promise<Response> {
  return fetch(`${base}/api/v1/builds`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** A build's server-sent events until the stream ends. */
async function events(base: string, id: string): Promise<Event[]> {
  const response = await fetch(`${base}/api/v1/builds/${id}/logs`);
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  return (await response.text())
    .split("\n\n")
    .filter(Boolean)
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)?.[1] ?? "",
      data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null"),
    }));
}
const lines = (stream: Event[]) => stream.filter((e) => e.event === "log").map((e) => e.data as string);

const type = (group: string, resource: string) => fake.cluster.type(group, "v1", resource);
const get = (group: string, resource: string, namespace: string, name: string) =>
  fake.cluster.get(type(group, resource), namespace, name);
const exists = (group: string, resource: string, namespace: string, name: string) => {
  try {
    get(group, resource, namespace, name);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  registry = await startRegistry();
  fake = await FakeKube.start({ namespaces: ["default", "kube-dc", NS] });
  const configMaps = fake.cluster.type("", "v1", "configmaps");
  const secrets = fake.cluster.type("", "v1", "secrets");
  // The pods' data volume: the build cache with the synthetic root filesystem the spec's base key names.
  podData = await tempDir("osimg-pod-data-");
  await seedSyntheticBase(podData, SPEC, "container-disk");
  const runner = localPodRunner({
    configMaps: (namespace, name) => fake.cluster.get(configMaps, namespace, name),
    secrets: (namespace, name) => fake.cluster.get(secrets, namespace, name),
    dataDir: podData,
  });
  jobs = new JobController(
    fake,
    holdingPodRunner(runner, (namespace, name) => fake.cluster.get(configMaps, namespace, name), HANG_MARK),
  );
  jobs.start();
  fake.cluster.create(configMaps, "kube-dc", {
    metadata: { name: "images-configmap" },
    data: { "images.yaml": CATALOG },
  });
  fake.cluster.create(secrets, NS, {
    metadata: { name: "registry-credentials" },
    data: { OSIMG_REGISTRY_USERNAME: Buffer.from("builder").toString("base64") },
  });
  logs = [];
  server = await startTestServer({
    builds: {
      runner: "cluster",
      namespace: NS,
      builderImage: IMAGE,
      credentialsSecret: "registry-credentials",
      timeoutMs: 300_000,
      kubeConfig: fake.kubeConfig("default"),
    },
    logger: pino({ level: "info" }, { write: (line: string) => logs.push(line) }),
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  jobs?.stop();
  await fake?.close();
  await registry?.stop();
  if (podData) await rm(podData, { recursive: true, force: true });
});

describe("osimg serve --builds cluster", () => {
  it("says at start where builds run", () => {
    const started = logs.map(
      (l) => JSON.parse(l) as { msg: string; namespace?: string; builderImage?: string },
    );
    expect(started).toContainEqual(
      expect.objectContaining({
        msg: `builds run as Kubernetes Jobs in namespace ${NS}`,
        namespace: NS,
        builderImage: IMAGE,
      }),
    );
  });

  it("refuses what a Job cannot build, at once", async () => {
    const refused = async (body: Record<string, unknown>, field: string, message: RegExp) => {
      const response = await post(server.url, { spec: SPEC, files: FILES, ...body });
      expect(response.status).toBe(400);
      const error = await json<{ field?: string; message: string }>(response);
      expect(error.field).toBe(field);
      expect(error.message).toMatch(message);
    };
    const push = { reference: `${registry.address}/osimg/x:1`, tlsVerify: false };
    await refused({ kind: "vm-img", push }, "kind", /outputs are gone with their pod/);
    await refused({ kind: "container-disk" }, "push", /REGISTRY\/REPOSITORY:TAG/);
    await refused(
      { kind: "container-disk", push, catalogConfigMap: "images-configmap" },
      "catalogConfigMap",
      /expected NAMESPACE\/NAME/,
    );
    await refused(
      { kind: "upgrade-img", push, catalogConfigMap: "kube-dc/images-configmap" },
      "catalogConfigMap",
      /has no disk image/,
    );
    await refused(
      {
        kind: "container-disk",
        push,
        catalogConfigMap: "kube-dc/images-configmap",
        spec: SPEC.slice(0, SPEC.indexOf("[catalog]")),
      },
      "catalogConfigMap",
      /no \[catalog\] section/,
    );
  });

  it("builds a containerDisk in a Job: its log streamed, its record on the API, the image in the catalog ConfigMap", async () => {
    const reference = `${registry.address}/osimg/synthetic:api`;
    const response = await post(server.url, {
      kind: "container-disk",
      spec: SPEC,
      files: FILES,
      push: { reference, tlsVerify: false },
      catalogConfigMap: "kube-dc/images-configmap",
    });
    expect(response.status).toBe(202);
    const queued = await json(response);
    expect(queued).toMatchObject({ kind: "container-disk", runner: "cluster" });
    const stream = await events(server.url, queued.id);
    expect(stream.at(-1)?.event, JSON.stringify(stream.slice(-8))).toBe("done");
    const streamed = lines(stream);
    const job = `osimg-build-${queued.id}`;
    expect(streamed).toContain(`created Job ${NS}/${job}; following it (deadline 300 s)`);
    expect(streamed.some((l) => new RegExp(`^pod ${job}-\\w+:$`).test(l))).toBe(true);
    // The pod's own output, line by line, as the builder wrote it.
    expect(streamed).toContain(
      "==> customize.rootfs: users, passwords, os-release, files and units in the root filesystem",
    );
    expect(streamed.some((l) => l.startsWith("==> disk.qcow2"))).toBe(true);
    expect(streamed).toContain(`Job ${job}: active 0, succeeded 1, failed 0`);
    // The result line is the record, not a log line.
    expect(streamed.filter((l) => l.includes("OSIMG_BUILD_RESULT"))).toEqual([]);

    // The Job and its ConfigMap, in the build namespace.
    const created = get("batch", "jobs", NS, job) as KubeObject & {
      spec: {
        backoffLimit: number;
        template: {
          spec: {
            containers: { image: string; command: string[]; envFrom?: { secretRef: { name: string } }[] }[];
          };
        };
      };
    };
    expect(created.spec.backoffLimit).toBe(1);
    const container = created.spec.template.spec.containers[0];
    expect(container?.image).toBe(IMAGE);
    expect(container?.command).toEqual(expect.arrayContaining(["--push", reference, "--no-tls-verify"]));
    expect(container?.envFrom).toEqual([{ secretRef: { name: "registry-credentials", optional: false } }]);
    const configMap = get("", "configmaps", NS, job) as KubeObject & { data: Record<string, string> };
    expect(configMap.data["spec.toml"]).toBe(SPEC);
    expect(configMap.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Job", name: job, uid: created.metadata.uid }),
    ]);

    // The record, from the result line.
    const view = await json(await fetch(`${server.url}/api/v1/builds/${queued.id}`));
    expect(view).toMatchObject({ state: "succeeded", runner: "cluster" });
    const qcow2 = view.record?.outputs.find((o) => o.name === "system.qcow2");
    expect(qcow2?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(view.record?.push?.reference).toBe(reference);
    const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reference}`]);
    expect(JSON.parse(stdout).Digest).toBe(view.record?.push?.digest);

    // Written back into the catalog ConfigMap.
    const image = `${reference}@${view.record?.push?.digest}`;
    expect(streamed.at(-1)).toBe(
      `catalog ConfigMap kube-dc/images-configmap: entry "Synthetic (cluster build)" now points at ${image}`,
    );
    const catalog = get("", "configmaps", "kube-dc", "images-configmap") as KubeObject & {
      data: Record<string, string>;
    };
    expect(catalog.metadata.annotations).toMatchObject({
      [LATEST_IMAGE_ANNOTATION]: image,
      // The build's id on the API: the Job's osimg.io/build-id label.
      [BUILD_ID_ANNOTATION]: queued.id,
    });
    expect(catalog.data["images.yaml"]).toContain("# kept as it is");
    const entry = parseCatalog(catalog.data["images.yaml"] ?? "").entries.find(
      (e) => e.values.OS_NAME === "Synthetic (cluster build)",
    );
    expect(entry?.values).toMatchObject({
      OS_CONTAINERDISK_REPO: `${registry.address}/osimg/synthetic`,
      OS_CONTAINERDISK_TAG: "api",
      OS_IMAGE_SHA256: qcow2?.sha256,
    });
  }, 300_000);

  it("a build that fails in its Job ends failed, with the Job's log tail and the spec's findings", async () => {
    const response = await post(server.url, {
      kind: "container-disk",
      spec: SPEC.replace('name = ["demo"]', 'name = ["missing"]'),
      files: FILES,
      push: { reference: `${registry.address}/osimg/broken:1`, tlsVerify: false },
    });
    const { id } = await json(response);
    const stream = await events(server.url, id);
    expect(stream.at(-1)?.event).toBe("failed");
    const job = `osimg-build-${id}`;
    const streamed = lines(stream);
    // Both attempts' pods are followed (backoffLimit 1: one retry).
    expect(streamed.filter((l) => new RegExp(`^pod ${job}-\\w+:$`).test(l))).toHaveLength(2);
    expect(
      streamed.filter((l) => l.includes("systemd unit missing.service is not in the image")),
    ).toHaveLength(2);
    expect(streamed.at(-1)).toBe(
      `build failed: Job ${NS}/${job} failed: BackoffLimitExceeded: Job has reached the specified backoff limit`,
    );
    const view = await json(await fetch(`${server.url}/api/v1/builds/${id}`));
    expect(view.state).toBe("failed");
    expect(view.error).toMatch(/failed: BackoffLimitExceeded/);
    expect(view.error).toContain("--- builder log (last lines) ---");
    expect(view.error).toContain("systemd unit missing.service is not in the image");
    expect(view.findings).toEqual([
      expect.objectContaining({
        path: "systemd_service.name[0]",
        line: 15,
        column: 9,
        message: "systemd unit missing.service is not in the image",
      }),
    ]);
    const pods = fake.cluster.list(type("", "pods"), NS, { labelSelector: `job-name=${job}` });
    expect(pods.items.map((p) => (p.status as { phase: string }).phase)).toEqual(["Failed", "Failed"]);
  }, 300_000);

  it("stopping the server deletes the Job of a running build (and its ConfigMap with it)", async () => {
    const own = await startTestServer({
      builds: { runner: "cluster", namespace: NS, builderImage: IMAGE, kubeConfig: fake.kubeConfig() },
    });
    let stopped = false;
    try {
      const response = await post(own.url, {
        kind: "upgrade-img",
        spec: `${HANG_MARK}\n${SPEC}`,
        files: FILES,
        push: { reference: `${registry.address}/osimg/never:1`, tlsVerify: false },
      });
      const { id } = await json(response);
      const job = `osimg-build-${id}`;
      // The stream, read as it comes: the pod's line arrives live, then the build fails when stopped.
      const res = await fetch(`${own.url}/api/v1/builds/${id}/logs`);
      const reader = (res.body as ReadableStream<Uint8Array>)
        .pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while (!text.includes(JSON.stringify("holding on until the Job is deleted"))) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended: ${text}`);
        text += value;
      }
      expect(exists("", "configmaps", NS, job)).toBe(true);
      await own.stop();
      stopped = true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      const failed = JSON.parse(/event: failed\ndata: (.*)/.exec(text)?.[1] ?? "null") as View | null;
      expect(failed?.error).toBe(`the build was stopped; Job ${NS}/${job} deleted`);
      expect(exists("batch", "jobs", NS, job)).toBe(false);
      expect(exists("", "configmaps", NS, job)).toBe(false);
    } finally {
      if (!stopped) await own.stop();
    }
  }, 120_000);
});

describe("catalogConfigMap", () => {
  it("is for builds as Jobs only", async () => {
    const local = await startTestServer();
    try {
      const response = await post(local.url, {
        kind: "vm-img",
        spec: SPEC,
        files: FILES,
        catalogConfigMap: "kube-dc/images-configmap",
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({
        field: "catalogConfigMap",
        message: expect.stringMatching(/needs builds as Kubernetes Jobs \(osimg serve --builds cluster\)/),
      });
    } finally {
      await local.stop();
    }
  });

  it("with --auth kubernetes: needs catalog.write (osimg.io/catalogs update) besides build.create", async () => {
    const reviews = await startFakeReviews();
    reviews.users.set("builder-token", { username: "builder" });
    reviews.users.set("root-token", { username: "root" });
    for (const user of ["builder", "root"])
      reviews.allow.add(accessKey(user, "create", "osimg.io", "builds"));
    reviews.allow.add(accessKey("root", "update", "osimg.io", "catalogs"));
    const own = await startTestServer({
      auth: { mode: "kubernetes", kubeConfig: reviews.kubeConfig },
      builds: { runner: "cluster", namespace: NS, builderImage: IMAGE, kubeConfig: fake.kubeConfig() },
    });
    try {
      const send = (token: string, body: Record<string, unknown>) =>
        fetch(`${own.url}/api/v1/builds`, {
          method: "POST",
          headers: { ...bearer(token), "content-type": "application/json" },
          // vm-img: refused once allowed, so that nothing is built.
          body: JSON.stringify({ spec: SPEC, kind: "vm-img", ...body }),
        });
      const target = { catalogConfigMap: "kube-dc/images-configmap" };
      const refused = await send("builder-token", target);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ error: "forbidden", field: "catalogConfigMap" });
      expect((await send("builder-token", {})).status).toBe(400);
      expect((await send("root-token", target)).status).toBe(400);
      expect(reviews.reviews.access).toContainEqual({
        user: "builder",
        verb: "update",
        resource: "catalogs",
      });
    } finally {
      await own.stop();
      await reviews.stop();
    }
  }, 60_000);
});

describe("osimg serve's build flags", () => {
  const serve = (args: string[]) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [OSIMG_BIN, "serve", "--port", "0", "--auth", "none", ...args], {
        env: { ...process.env, OSIMG_LOG_LEVEL: "info" },
      });
      let output = "";
      const onData = (d: Buffer) => {
        output += d.toString();
        // Started: that is all this test needs.
        if (/osimg listening on/.test(output)) child.kill("SIGTERM");
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.on("exit", (code) => resolve({ code, output }));
    });

  it("refuses a --builds that is not local or cluster, and cluster flags without --builds cluster", async () => {
    const bad = await serve(["--builds", "laptop", "--data-dir", await tempDir()]);
    expect(bad.code).toBe(1);
    expect(bad.output).toContain('error: --builds is local or cluster, not "laptop"');
    const without = await serve(["--build-namespace", "builds", "--data-dir", await tempDir()]);
    expect(without.code).toBe(1);
    expect(without.output).toContain("error: --build-namespace is for --builds cluster");
    const namespace = await serve(["--builds", "cluster", "--build-namespace", "Not_A_Label"]);
    expect(namespace.code).toBe(1);
    expect(namespace.output).toMatch(
      /--build-namespace.*'Not_A_Label' is invalid. a namespace is a DNS-1123 label/,
    );
    const timeout = await serve(["--builds", "cluster", "--build-timeout", "0"]);
    expect(timeout.output).toMatch(/--build-timeout.*a number of seconds greater than 0/);
  }, 60_000);

  it("--builds cluster: builds run as Jobs in --build-namespace with --builder-image (the server's kubeconfig)", async () => {
    const dir = await tempDir();
    const kubeconfig = join(dir, "kubeconfig");
    await fake.writeKubeconfig(kubeconfig);
    const started = await serve([
      "--data-dir",
      dir,
      "--kubeconfig",
      kubeconfig,
      "--builds",
      "cluster",
      "--build-namespace",
      NS,
      "--builder-image",
      "registry.example/osimg:1",
      "--build-timeout",
      "900",
    ]);
    expect(started.output).toMatch(/osimg listening on/);
    const line = started.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === `builds run as Kubernetes Jobs in namespace ${NS}`);
    expect(line).toMatchObject({ namespace: NS, builderImage: "registry.example/osimg:1", timeoutSec: 900 });
    const local = await serve(["--data-dir", dir]);
    expect(local.output).toMatch(/builds run on this server/);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);
});

describe("following a Job's pods' logs", () => {
  it("passes each line on once, in order: across a cut connection, a retry's pod, a pod that cannot start", async () => {
    const own = await FakeKube.start();
    try {
      const pods = own.cluster.type("", "v1", "pods");
      const pod = (name: string) =>
        own.cluster.create(pods, "default", {
          metadata: { name, labels: { "job-name": "j" } },
          spec: { containers: [{ name: "build", image: IMAGE }] },
        });
      const status = (name: string, value: Record<string, unknown>) =>
        own.cluster.update(
          pods,
          "default",
          name,
          { ...own.cluster.get(pods, "default", name), status: value },
          { subresource: "status" },
        );
      const seen: string[] = [];
      const follower = followJobLogs(own.kubeConfig(), "default", "j", {
        container: "build",
        log: (line) => seen.push(line),
        pollMs: 50,
      });
      const until = (line: string) =>
        vi.waitFor(() => expect(seen).toContain(line), { timeout: 10_000, interval: 20 });
      pod("j-1");
      status("j-1", {
        phase: "Pending",
        containerStatuses: [
          { name: "build", state: { waiting: { reason: "ErrImagePull", message: "no such image" } } },
        ],
      });
      await until("pod j-1: waiting: ErrImagePull: no such image");
      status("j-1", { phase: "Running" });
      own.appendPodLog("default", "j-1", "first\nsecond, in two ");
      own.appendPodLog("default", "j-1", "writes\n");
      await until("second, in two writes");
      // Every connection cut: the follow is resumed, what was read already is not passed on again.
      await own.restart();
      own.appendPodLog("default", "j-1", "after the cut\n");
      await until("after the cut");
      own.appendPodLog("default", "j-1", `${RESULT_PREFIX}{}\nfailed\n`);
      status("j-1", { phase: "Failed" });
      pod("j-2");
      status("j-2", { phase: "Running" });
      own.appendPodLog("default", "j-2", "the retry\nno newline at the end");
      status("j-2", { phase: "Succeeded" });
      await follower.finish();
      expect(seen).toEqual([
        "pod j-1:",
        "pod j-1: waiting: ErrImagePull: no such image",
        "first",
        "second, in two writes",
        "after the cut",
        "failed",
        "pod j-2:",
        "the retry",
        "no newline at the end",
      ]);
    } finally {
      await own.close();
    }
  }, 60_000);
});
