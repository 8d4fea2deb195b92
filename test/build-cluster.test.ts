// Builds as Kubernetes Jobs, against the fake API server with its Job controller running each pod's osimg
// command on this machine: the Job and its ConfigMap as rendered, the build followed by watch, the image
// pushed to a real registry and written back into the catalog ConfigMap with the latest-image and build-id
// annotations; the deletion Job removing it and clearing those keys; a failing Job retried once and its
// logs reported; a Job past its deadline.
import { execFile } from "node:child_process";
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildRecord } from "../src/build/build.ts";
import {
  BUILD_ID_ANNOTATION,
  ClusterBuildError,
  LATEST_IMAGE_ANNOTATION,
  renderBuildJob,
  runClusterBuild,
  runClusterDelete,
  specBundle,
} from "../src/build/cluster.ts";
import { parseSpec } from "../src/build/spec.ts";
import { parseCatalog } from "../src/catalog/parse.ts";
import {
  buildTestDataDir,
  localPodRunner,
  OSIMG_BIN,
  type Registry,
  startRegistry,
  tempDir,
} from "./support/build.ts";
import { FakeKube, JobController } from "./support/fake-kube/index.ts";

const run = promisify(execFile);
const EXAMPLE_DIR = new URL("../examples/debian-cloud/", import.meta.url).pathname;
const CATALOG =
  'images:\n  # kept as it is\n  - OS_NAME: "Ubuntu 24.04"\n    CLOUD_USER: ubuntu\n    OS_IMAGE_URL: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"\n';

let fake: FakeKube;
let jobs: JobController;
let registry: Registry;
let dir: string;
let pushed: string | undefined;

beforeAll(async () => {
  dir = await tempDir("osimg-cluster-build-");
  registry = await startRegistry();
  fake = await FakeKube.start();
  const configMaps = fake.cluster.type("", "v1", "configmaps");
  const secrets = fake.cluster.type("", "v1", "secrets");
  jobs = new JobController(
    fake,
    localPodRunner({
      configMaps: (namespace, name) => fake.cluster.get(configMaps, namespace, name),
      secrets: (namespace, name) => fake.cluster.get(secrets, namespace, name),
      dataDir: buildTestDataDir(),
    }),
  );
  jobs.start();
  fake.cluster.create(configMaps, "default", {
    metadata: { name: "images-configmap" },
    data: { "images.yaml": CATALOG },
  });
  fake.cluster.create(secrets, "default", {
    metadata: { name: "registry-credentials" },
    data: { OSIMG_REGISTRY_USERNAME: Buffer.from("builder").toString("base64") },
  });
}, 60_000);

afterAll(async () => {
  jobs?.stop();
  await fake?.close();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("builds as Kubernetes Jobs", () => {
  it("renders a Job with backoffLimit 1, the osimg builder image, the spec from a ConfigMap and credentials from a Secret", async () => {
    const text = await readFile(join(EXAMPLE_DIR, "spec.toml"), "utf8");
    const spec = parseSpec(text).spec;
    if (!spec) throw new Error("example spec invalid");
    const files = await specBundle(text, spec, EXAMPLE_DIR);
    expect(files.map((f) => f.path).sort()).toEqual([
      "files/90-osimg-datasource.cfg",
      "files/customize.sh",
      "files/motd",
      "files/ops-notes.txt",
      "files/osimg-hello.service",
      "spec.toml",
    ]);
    const { configMap, job } = renderBuildJob({
      buildId: "b1",
      namespace: "ns",
      kind: "container-disk",
      files,
      builderImage: "registry.example/osimg:1",
      credentialsSecret: "creds",
      push: { reference: "r.example/os/d:1", tlsVerify: true },
      deadlineSeconds: 1800,
    });
    expect(job.spec).toMatchObject({
      backoffLimit: 1,
      parallelism: 1,
      completions: 1,
      activeDeadlineSeconds: 1800,
    });
    const container = job.spec?.template.spec?.containers[0];
    expect(container?.image).toBe("registry.example/osimg:1");
    expect(container?.command).toEqual([
      "osimg",
      "build",
      "--file",
      "/spec/spec.toml",
      "container-disk",
      "--out",
      "/out",
      "--data-dir",
      "/var/lib/osimg",
      "--result-line",
      "--push",
      "r.example/os/d:1",
    ]);
    expect(container?.envFrom).toEqual([{ secretRef: { name: "creds", optional: false } }]);
    const volume = job.spec?.template.spec?.volumes?.find((v) => v.name === "spec");
    const script = volume?.configMap?.items?.find((i) => i.path === "files/customize.sh");
    expect(script?.mode).toBe(0o755);
    expect(configMap.data?.[script?.key as string]).toBe(
      await readFile(join(EXAMPLE_DIR, "files", "customize.sh"), "utf8"),
    );
    expect(configMap.data?.["spec.toml"]).toBe(text);
  });

  it("osimg build --on-cluster: a containerDisk built in a Job, pushed, and written into the catalog ConfigMap", async () => {
    const kubeconfig = join(dir, "kubeconfig");
    await fake.writeKubeconfig(kubeconfig);
    const reference = `${registry.address}/osimg/debian-cloud:job`;
    const { stdout, stderr } = await run(
      process.execPath,
      [
        OSIMG_BIN,
        "build",
        "--file",
        join(EXAMPLE_DIR, "spec.toml"),
        "container-disk",
        "--on-cluster",
        "--kubeconfig",
        kubeconfig,
        "--push",
        reference,
        "--no-tls-verify",
        "--catalog-configmap",
        "default/images-configmap",
        "--credentials-secret",
        "registry-credentials",
        "--builder-image",
        "osimg:test",
        "--json",
      ],
      { maxBuffer: 64 << 20 },
    );
    const record = JSON.parse(stdout) as BuildRecord;
    expect(stderr).toMatch(/Job osimg-build-\S+: active 0, succeeded 1, failed 0/);
    expect(record.push?.reference).toBe(reference);
    const { stdout: inspected } = await run("skopeo", [
      "inspect",
      "--tls-verify=false",
      `docker://${reference}`,
    ]);
    expect(JSON.parse(inspected).Digest).toBe(record.push?.digest);
    const image = `${reference}@${record.push?.digest}`;
    expect(stderr).toContain(`entry "Debian 12 (osimg example)" now points at ${image}`);
    const core = fake.kubeConfig("default").makeApiClient(CoreV1Api);
    const cm = await core.readNamespacedConfigMap({ namespace: "default", name: "images-configmap" });
    // The build id of the Job (its osimg.io/build-id label).
    const jobBuildId = /created Job default\/osimg-build-(\S+);/.exec(stderr)?.[1];
    expect(jobBuildId).toBeDefined();
    expect(cm.metadata?.annotations).toMatchObject({
      [LATEST_IMAGE_ANNOTATION]: image,
      [BUILD_ID_ANNOTATION]: jobBuildId,
    });
    const catalogText = cm.data?.["images.yaml"] ?? "";
    expect(catalogText).toContain("# kept as it is");
    const entry = parseCatalog(catalogText).entries.find(
      (e) => e.values.OS_NAME === "Debian 12 (osimg example)",
    );
    expect(entry?.valid).toBe(true);
    expect(entry?.values).toMatchObject({
      OS_CONTAINERDISK_REPO: `${registry.address}/osimg/debian-cloud`,
      OS_CONTAINERDISK_TAG: "job",
      OS_IMAGE_SHA256: record.outputs.find((o) => o.name === "system.qcow2")?.sha256,
    });
    pushed = reference;
  }, 1_800_000);

  it("the deletion Job removes the image and clears the catalog keys and annotations", async () => {
    expect(pushed).toBeDefined();
    const kubeConfig = fake.kubeConfig("default");
    await runClusterDelete({
      kubeConfig,
      job: {
        buildId: "del1",
        namespace: "default",
        reference: pushed as string,
        tlsVerify: false,
        builderImage: "osimg:test",
        deadlineSeconds: 300,
      },
      catalog: { namespace: "default", name: "images-configmap" },
      osName: "Debian 12 (osimg example)",
      timeoutMs: 300_000,
    });
    await expect(run("skopeo", ["inspect", "--tls-verify=false", `docker://${pushed}`])).rejects.toThrow();
    const cleared = await kubeConfig
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace: "default", name: "images-configmap" });
    expect(cleared.metadata?.annotations?.[LATEST_IMAGE_ANNOTATION]).toBeUndefined();
    expect(cleared.metadata?.annotations?.[BUILD_ID_ANNOTATION]).toBeUndefined();
    const after = parseCatalog(cleared.data?.["images.yaml"] ?? "").entries.find(
      (e) => e.values.OS_NAME === "Debian 12 (osimg example)",
    );
    expect(after?.values.OS_CONTAINERDISK_REPO).toBeUndefined();
    expect(after?.values.OS_IMAGE_SHA256).toBeDefined();
  }, 300_000);

  it("a failing Job is retried once (backoffLimit 1), then reported with its logs", async () => {
    const specDir = join(dir, "broken");
    await cp(EXAMPLE_DIR, specDir, { recursive: true });
    // Valid TOML and spec, but the unit does not exist in the image: the builder fails at customize.
    await writeFile(
      join(specDir, "spec.toml"),
      (await readFile(join(EXAMPLE_DIR, "spec.toml"), "utf8")).replace(
        'name = ["osimg-hello"]',
        'name = ["no-such-unit"]',
      ),
    );
    const text = await readFile(join(specDir, "spec.toml"), "utf8");
    const spec = parseSpec(text).spec;
    if (!spec) throw new Error("spec invalid");
    const error = await runClusterBuild({
      kubeConfig: fake.kubeConfig("default"),
      job: {
        buildId: "cb2",
        namespace: "default",
        kind: "vm-img",
        files: await specBundle(text, spec, specDir),
        builderImage: "osimg:test",
        deadlineSeconds: 900,
      },
      timeoutMs: 900_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClusterBuildError);
    expect((error as Error).message).toMatch(/failed: BackoffLimitExceeded/);
    expect((error as ClusterBuildError).logs).toContain(
      "systemd unit no-such-unit.service is not in the image",
    );
    expect((error as ClusterBuildError).logs).toMatch(/spec\.toml:\d+:\d+: error/);
    const pods = await fake
      .kubeConfig("default")
      .makeApiClient(CoreV1Api)
      .listNamespacedPod({ namespace: "default", labelSelector: "job-name=osimg-build-cb2" });
    expect(pods.items.map((p) => p.status?.phase)).toEqual(["Failed", "Failed"]);
  }, 900_000);
});
