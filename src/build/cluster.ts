// Builds as Kubernetes Jobs (the pod-VM image model): the spec and the files it names go into a ConfigMap,
// a Job (backoffLimit 1) runs the osimg image as the builder with registry credentials from a Secret, and
// osimg follows the Job by watch with a deadline. On success the builder's result line (its build record)
// is read from the pod's log and written back: the image into the target catalog ConfigMap's entry and
// the annotations osimg.io/latest-image and osimg.io/build-id. A deletion Job removes a built image from
// its registry and clears those keys. A failed Job's logs are reported. Manifests are built by pure
// functions (renderBuildJob, renderDeleteJob); the client calls are separate.
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import {
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1ConfigMap,
  type V1Job,
  Watch,
} from "@kubernetes/client-node";
import { kubeFailure } from "../kube/client.ts";
import type { BuildRecord } from "./build.ts";
import { checkEdited, removeCatalogKeys, upsertCatalogEntry } from "./register.ts";
import { containedPath } from "./rootfs.ts";
import type { BuildKind, BuildSpec } from "./spec.ts";

export const DEFAULT_BUILDER_IMAGE = "ghcr.io/osimg/osimg:latest";
export const RESULT_PREFIX = "OSIMG_BUILD_RESULT ";
export const LATEST_IMAGE_ANNOTATION = "osimg.io/latest-image";
export const BUILD_ID_ANNOTATION = "osimg.io/build-id";
/** ConfigMaps hold at most 1 MiB (etcd's request limit). */
const CONFIGMAP_LIMIT = 1024 * 1024 - 16 * 1024;
const CATALOG_KEY = "images.yaml";
const SPEC_MOUNT = "/spec";
const SCRATCH_MOUNT = "/scratch";
/** Room for a root filesystem tar and its unpacked tree (memory-backed: it counts as the pod's memory). */
const SCRATCH_SIZE = "6Gi";

export class ClusterBuildError extends Error {
  override name = "ClusterBuildError";
  /** The last lines of the failed pod's log. */
  readonly logs: string;

  constructor(message: string, logs = "") {
    super(logs ? `${message}\n--- builder log (last lines) ---\n${logs}` : message);
    this.logs = logs;
  }
}

export interface BundleFile {
  /** Relative to the spec's directory. */
  path: string;
  data: Buffer;
  mode: number;
}

/** The spec and every file it names (copy_files, chroot_script, hostshell, a relative keyring). */
export async function specBundle(specText: string, spec: BuildSpec, specDir: string): Promise<BundleFile[]> {
  const files: BundleFile[] = [{ path: "spec.toml", data: Buffer.from(specText), mode: 0o644 }];
  const seen = new Set(["spec.toml"]);
  const add = async (relativePath: string, field: string) => {
    const real = await containedPath(specDir, relativePath, field);
    const realRoot = await containedPath(specDir, ".", field);
    const walk = async (path: string): Promise<void> => {
      const stat = await lstat(path);
      if (stat.isDirectory()) {
        for (const child of (await readdir(path)).sort()) await walk(join(path, child));
        return;
      }
      if (!stat.isFile()) return;
      const rel = relative(realRoot, path);
      if (seen.has(rel)) return;
      seen.add(rel);
      files.push({ path: rel, data: await readFile(path), mode: stat.mode & 0o777 });
    };
    await walk(real);
  };
  for (const [i, copy] of spec.copy_files.entries()) await add(copy.src, `copy_files[${i}].src`);
  if (spec.chroot_script) await add(spec.chroot_script.path, "chroot_script.path");
  if (spec.admin_container?.hostshell) await add(spec.admin_container.hostshell, "admin_container.hostshell");
  if (spec.from_repo.keyring && !spec.from_repo.keyring.startsWith("/"))
    await add(spec.from_repo.keyring, "from_repo.keyring");
  const total = files.reduce((n, f) => n + f.data.length, 0);
  if (total > CONFIGMAP_LIMIT)
    throw new ClusterBuildError(
      `the spec and its files are ${total} bytes; a ConfigMap holds at most ${CONFIGMAP_LIMIT}`,
      "",
    );
  return files;
}

export interface BuildJobInput {
  buildId: string;
  namespace: string;
  kind: BuildKind;
  files: BundleFile[];
  builderImage: string;
  /** A Secret whose keys become the builder's environment (OSIMG_REGISTRY_USERNAME, _PASSWORD). */
  credentialsSecret?: string;
  push?: { reference: string; tlsVerify: boolean };
  /** Boot-test the image in the Job before it succeeds. */
  bootTest?: "bios" | "efi";
  deadlineSeconds: number;
  sourceDateEpoch?: number;
}

const LABELS = (buildId: string, role: "build" | "delete") => ({
  "app.kubernetes.io/name": `osimg-${role}`,
  "app.kubernetes.io/managed-by": "osimg",
  "osimg.io/build-id": buildId,
});

export const jobName = (buildId: string, role: "build" | "delete" = "build") => `osimg-${role}-${buildId}`;

function jobSkeleton(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  deadlineSeconds: number,
): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace, labels },
    spec: {
      // One pod at a time, one retry: the pod-VM image jobs' settings.
      parallelism: 1,
      completions: 1,
      backoffLimit: 1,
      activeDeadlineSeconds: deadlineSeconds,
      template: { metadata: { labels }, spec: { restartPolicy: "Never", containers: [] } },
    },
  };
}

/** The ConfigMap with the spec and its files, and the Job that builds from it. */
export function renderBuildJob(input: BuildJobInput): { configMap: V1ConfigMap; job: V1Job } {
  const name = jobName(input.buildId);
  const labels = LABELS(input.buildId, "build");
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  const items = input.files.map((file, i) => {
    const key = i === 0 ? "spec.toml" : `file-${i}`;
    const text = file.data.toString("utf8");
    if (Buffer.from(text, "utf8").equals(file.data)) data[key] = text;
    else binaryData[key] = file.data.toString("base64");
    return { key, path: file.path, mode: file.mode };
  });
  const configMap: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: input.namespace, labels },
    data,
    ...(Object.keys(binaryData).length > 0 ? { binaryData } : {}),
  };
  const command = [
    "osimg",
    "build",
    "--file",
    `${SPEC_MOUNT}/spec.toml`,
    input.kind,
    "--out",
    "/out",
    "--data-dir",
    "/var/lib/osimg",
    "--result-line",
  ];
  if (input.push)
    command.push("--push", input.push.reference, ...(input.push.tlsVerify ? [] : ["--no-tls-verify"]));
  if (input.bootTest) command.push("--boot-test", input.bootTest);
  const job = jobSkeleton(name, input.namespace, labels, input.deadlineSeconds);
  const pod = job.spec?.template.spec as NonNullable<V1Job["spec"]>["template"]["spec"] & object;
  pod.containers = [
    {
      name: "build",
      image: input.builderImage,
      imagePullPolicy: "IfNotPresent",
      command,
      env: [
        // The unpacked root filesystem goes to memory (a disk-backed emptyDir is ten times slower at it).
        { name: "OSIMG_BUILD_SCRATCH", value: SCRATCH_MOUNT },
        ...(input.sourceDateEpoch !== undefined
          ? [{ name: "SOURCE_DATE_EPOCH", value: String(input.sourceDateEpoch) }]
          : []),
      ],
      ...(input.credentialsSecret
        ? { envFrom: [{ secretRef: { name: input.credentialsSecret, optional: false } }] }
        : {}),
      volumeMounts: [
        { name: "spec", mountPath: SPEC_MOUNT, readOnly: true },
        { name: "out", mountPath: "/out" },
        { name: "data", mountPath: "/var/lib/osimg" },
        { name: "scratch", mountPath: SCRATCH_MOUNT },
      ],
      // mmdebstrap needs mount namespaces (and chroot) for the packages' maintainer scripts.
      securityContext: { privileged: true, runAsUser: 0 },
    },
  ];
  pod.volumes = [
    { name: "spec", configMap: { name, items } },
    { name: "out", emptyDir: {} },
    { name: "data", emptyDir: {} },
    { name: "scratch", emptyDir: { medium: "Memory", sizeLimit: SCRATCH_SIZE } },
  ];
  return { configMap, job };
}

/** The Job that deletes a built image from its registry. */
export function renderDeleteJob(input: {
  buildId: string;
  namespace: string;
  reference: string;
  tlsVerify: boolean;
  builderImage: string;
  credentialsSecret?: string;
  deadlineSeconds: number;
}): V1Job {
  const job = jobSkeleton(
    jobName(input.buildId, "delete"),
    input.namespace,
    LABELS(input.buildId, "delete"),
    input.deadlineSeconds,
  );
  const pod = job.spec?.template.spec as NonNullable<V1Job["spec"]>["template"]["spec"] & object;
  pod.containers = [
    {
      name: "delete",
      image: input.builderImage,
      imagePullPolicy: "IfNotPresent",
      command: ["osimg", "build-delete", input.reference, ...(input.tlsVerify ? [] : ["--no-tls-verify"])],
      ...(input.credentialsSecret
        ? { envFrom: [{ secretRef: { name: input.credentialsSecret, optional: false } }] }
        : {}),
    },
  ];
  return job;
}

export interface JobOutcome {
  succeeded: boolean;
  reason: string;
  /** The log of the job's last pod. */
  log: string;
  pod?: string;
}

/** Waits (by watch) until the Job is Complete or Failed, or the deadline passes. */
export async function waitForJob(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
  options: { timeoutMs: number; signal?: AbortSignal; onStatus?: (job: V1Job) => void },
): Promise<JobOutcome> {
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const finished = (job: V1Job): { succeeded: boolean; reason: string } | undefined => {
    for (const c of job.status?.conditions ?? []) {
      if (c.status !== "True") continue;
      if (c.type === "Complete") return { succeeded: true, reason: "Complete" };
      if (c.type === "Failed")
        return { succeeded: false, reason: `${c.reason ?? "Failed"}${c.message ? `: ${c.message}` : ""}` };
    }
    return undefined;
  };
  const deadline = Date.now() + options.timeoutMs;
  let result: { succeeded: boolean; reason: string } | undefined;
  while (!result) {
    const list = await batch.listNamespacedJob({ namespace, fieldSelector: `metadata.name=${name}` });
    const job = list.items[0];
    if (!job) throw new ClusterBuildError(`Job ${namespace}/${name} does not exist (deleted?)`);
    options.onStatus?.(job);
    result = finished(job);
    if (result) break;
    const remaining = deadline - Date.now();
    if (remaining <= 0 || options.signal?.aborted)
      throw new ClusterBuildError(
        `Job ${namespace}/${name} did not finish within ${Math.round(options.timeoutMs / 1000)} s`,
        await lastPodLog(kubeConfig, namespace, name),
      );
    // Watch from the list's version until the job finishes, the watch ends, or the deadline.
    result = await new Promise<{ succeeded: boolean; reason: string } | undefined>((resolve) => {
      let controller: AbortController | undefined;
      let done = false;
      const settle = (value: { succeeded: boolean; reason: string } | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        controller?.abort();
        resolve(value);
      };
      const timer = setTimeout(() => settle(undefined), remaining);
      const onAbort = () => settle(undefined);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      new Watch(kubeConfig)
        .watch(
          `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`,
          {
            fieldSelector: `metadata.name=${name}`,
            resourceVersion: list.metadata?.resourceVersion,
            allowWatchBookmarks: true,
          },
          (type, object: V1Job) => {
            if (type === "ERROR" || type === "BOOKMARK") return;
            if (type === "DELETED") return settle({ succeeded: false, reason: "the Job was deleted" });
            options.onStatus?.(object);
            const outcome = finished(object);
            if (outcome) settle(outcome);
          },
          () => settle(undefined),
        )
        .then(
          (c) => {
            controller = c;
            if (done) c.abort();
          },
          () => settle(undefined),
        );
    });
  }
  const log = await lastPodLog(kubeConfig, namespace, name, result.succeeded ? "Succeeded" : "Failed");
  return { ...result, log };
}

/** The log of a Job's newest pod, or of its newest pod in `phase` when there is one ("" when none). */
export async function lastPodLog(
  kubeConfig: KubeConfig,
  namespace: string,
  job: string,
  phase?: "Succeeded" | "Failed",
): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  try {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
    // Creation times have a resolution of seconds: the resourceVersion orders pods made in one second.
    const order = (p: (typeof pods.items)[number]) =>
      [String(p.metadata?.creationTimestamp ?? ""), Number(p.metadata?.resourceVersion ?? 0)] as const;
    const sorted = [...pods.items].sort((a, b) => {
      const [ta, ra] = order(a);
      const [tb, rb] = order(b);
      return ta.localeCompare(tb) || ra - rb;
    });
    const newest = sorted.filter((p) => !phase || p.status?.phase === phase).pop() ?? sorted.pop();
    if (!newest?.metadata?.name) return "";
    return await core.readNamespacedPodLog({ namespace, name: newest.metadata.name, tailLines: 2000 });
  } catch {
    return "";
  }
}

/** The builder's record from its log (the last result line). */
export function resultFromLog(log: string): BuildRecord | undefined {
  const line = log
    .split("\n")
    .reverse()
    .find((l) => l.startsWith(RESULT_PREFIX));
  return line ? (JSON.parse(line.slice(RESULT_PREFIX.length)) as BuildRecord) : undefined;
}

const tail = (log: string, lines = 40) => log.trimEnd().split("\n").slice(-lines).join("\n");

export interface CatalogTarget {
  namespace: string;
  name: string;
}

/** Edits the catalog ConfigMap with a read-modify-replace (retried on conflict). */
async function editCatalogConfigMap(
  kubeConfig: KubeConfig,
  target: CatalogTarget,
  edit: (text: string) => string,
  annotations: Record<string, string | null>,
): Promise<V1ConfigMap> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (let attempt = 0; ; attempt++) {
    const current = await core.readNamespacedConfigMap(target);
    const text = current.data?.[CATALOG_KEY] ?? "images: []\n";
    const next = edit(text);
    const merged = { ...(current.metadata?.annotations ?? {}) };
    for (const [k, v] of Object.entries(annotations)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    try {
      return await core.replaceNamespacedConfigMap({
        ...target,
        body: {
          ...current,
          metadata: { ...current.metadata, annotations: merged },
          data: { ...current.data, [CATALOG_KEY]: next },
        },
      });
    } catch (error) {
      if (kubeFailure(error).code !== 409 || attempt >= 5) throw error;
    }
  }
}

/** On success: the image into the catalog entry, and the latest-image and build-id annotations. */
export async function writeBack(
  kubeConfig: KubeConfig,
  target: CatalogTarget,
  values: Record<string, string>,
  image: string,
  buildId: string,
): Promise<V1ConfigMap> {
  return editCatalogConfigMap(
    kubeConfig,
    target,
    (text) => {
      const edited = upsertCatalogEntry(text, values).text;
      checkEdited(text, edited, values.OS_NAME as string);
      return edited;
    },
    { [LATEST_IMAGE_ANNOTATION]: image, [BUILD_ID_ANNOTATION]: buildId },
  );
}

/** After a deletion: the entry's container-disk keys and the annotations are cleared. */
export async function clearBack(
  kubeConfig: KubeConfig,
  target: CatalogTarget,
  osName: string | undefined,
): Promise<V1ConfigMap> {
  return editCatalogConfigMap(
    kubeConfig,
    target,
    (text) =>
      osName ? removeCatalogKeys(text, osName, ["OS_CONTAINERDISK_REPO", "OS_CONTAINERDISK_TAG"]) : text,
    { [LATEST_IMAGE_ANNOTATION]: null, [BUILD_ID_ANNOTATION]: null },
  );
}

export interface ClusterBuildOptions {
  kubeConfig: KubeConfig;
  job: BuildJobInput;
  timeoutMs: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Creates the Job (and its ConfigMap), follows it, and returns the builder's record. */
export async function runClusterBuild(
  options: ClusterBuildOptions,
): Promise<{ record: BuildRecord; log: string }> {
  const { kubeConfig, job: input } = options;
  const log = options.log ?? (() => {});
  const { configMap, job } = renderBuildJob(input);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  // The ConfigMap first (the pod mounts it), then the Job, which then owns the ConfigMap: deleting the Job
  // deletes it.
  await core.createNamespacedConfigMap({ namespace: input.namespace, body: configMap });
  const created = await batch.createNamespacedJob({ namespace: input.namespace, body: job });
  const owned = await core.readNamespacedConfigMap({
    namespace: input.namespace,
    name: configMap.metadata?.name as string,
  });
  owned.metadata = {
    ...owned.metadata,
    ownerReferences: [
      {
        apiVersion: "batch/v1",
        kind: "Job",
        name: created.metadata?.name as string,
        uid: created.metadata?.uid as string,
      },
    ],
  };
  await core.replaceNamespacedConfigMap({
    namespace: input.namespace,
    name: configMap.metadata?.name as string,
    body: owned,
  });
  const name = created.metadata?.name as string;
  log(
    `created Job ${input.namespace}/${name}; following it (deadline ${Math.round(options.timeoutMs / 1000)} s)`,
  );
  let last = "";
  const outcome = await waitForJob(kubeConfig, input.namespace, name, {
    timeoutMs: options.timeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
    onStatus: (j) => {
      const s = j.status ?? {};
      const line = `Job ${name}: active ${s.active ?? 0}, succeeded ${s.succeeded ?? 0}, failed ${s.failed ?? 0}`;
      if (line !== last) {
        last = line;
        log(line);
      }
    },
  });
  if (!outcome.succeeded)
    throw new ClusterBuildError(
      `Job ${input.namespace}/${name} failed: ${outcome.reason}`,
      tail(outcome.log),
    );
  const record = resultFromLog(outcome.log);
  if (!record)
    throw new ClusterBuildError(
      `Job ${input.namespace}/${name} succeeded but its log has no result line`,
      tail(outcome.log),
    );
  return { record, log: outcome.log };
}

/** Runs the deletion Job and clears the catalog keys on success. */
export async function runClusterDelete(options: {
  kubeConfig: KubeConfig;
  job: Parameters<typeof renderDeleteJob>[0];
  catalog?: CatalogTarget;
  osName?: string;
  timeoutMs: number;
  log?: (line: string) => void;
}): Promise<void> {
  const job = renderDeleteJob(options.job);
  const batch = options.kubeConfig.makeApiClient(BatchV1Api);
  await batch.createNamespacedJob({ namespace: options.job.namespace, body: job });
  const name = job.metadata?.name as string;
  options.log?.(`created Job ${options.job.namespace}/${name}`);
  const outcome = await waitForJob(options.kubeConfig, options.job.namespace, name, {
    timeoutMs: options.timeoutMs,
  });
  if (!outcome.succeeded)
    throw new ClusterBuildError(
      `Job ${options.job.namespace}/${name} failed: ${outcome.reason}`,
      tail(outcome.log),
    );
  if (options.catalog) await clearBack(options.kubeConfig, options.catalog, options.osName);
}
