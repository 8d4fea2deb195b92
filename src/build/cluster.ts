// Builds as Kubernetes Jobs (the pod-VM image model): the spec and the files it names go into a ConfigMap,
// a Job (backoffLimit 1) runs the osimg image as the builder with registry credentials from a Secret, and
// osimg follows the Job by watch with a deadline, passing its pods' log lines on as they are written;
// stopped, it deletes the Job. On success the builder's result line (its build record)
// is read from the pod's log and written back: the image into the target catalog ConfigMap's entry and
// the annotations osimg.io/latest-image and osimg.io/build-id. A deletion Job removes a built image from
// its registry and clears those keys. A failed Job's logs are reported. Manifests are built by pure
// functions (renderBuildJob, renderDeleteJob); the client calls are separate.
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import {
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  Log,
  type V1ConfigMap,
  type V1Job,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import type { Finding } from "../catalog/findings.ts";
import { kubeFailure } from "../kube/client.ts";
import type { BuildRecord } from "./build.ts";
import { checkEdited, removeCatalogKeys, upsertCatalogEntry } from "./register.ts";
import { containedPath } from "./rootfs.ts";
import type { BuildKind, BuildSpec } from "./spec.ts";

export const DEFAULT_BUILDER_IMAGE = "ghcr.io/osimg/osimg:latest";
/** A build Job's deadline unless told (`osimg build --on-cluster --timeout`, `osimg serve --build-timeout`). */
export const DEFAULT_BUILD_TIMEOUT_MS = 3600 * 1000;
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
  /** The spec's findings the builder reported in its log (positions in the submitted spec). */
  readonly findings: Finding[];

  constructor(message: string, logs = "", findings: Finding[] = []) {
    super(logs ? `${message}\n--- builder log (last lines) ---\n${logs}` : message);
    this.logs = logs;
    this.findings = findings;
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
    if (options.signal?.aborted) throw new ClusterBuildError(`stopped following Job ${namespace}/${name}`);
    const remaining = deadline - Date.now();
    if (remaining <= 0)
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

/** The builder's findings in its log (`/spec/spec.toml:LINE:COL: error: message [path]`, then `  hint: …`). */
export function findingsFromLog(log: string): Finding[] {
  const findings: Finding[] = [];
  const lines = log.split("\n");
  for (const [i, line] of lines.entries()) {
    const m = /^(?:\S*\/)?spec\.toml:(\d+):(\d+): (error|warning|info): (.*?)(?: \[(\S+)\])?$/.exec(line);
    if (!m) continue;
    const hint = /^ {2}hint: (.*)$/.exec(lines[i + 1] ?? "")?.[1];
    findings.push({
      severity: m[3] as Finding["severity"],
      code: "build.job",
      path: m[5] ?? "",
      line: Number(m[1]),
      column: Number(m[2]),
      message: m[4] as string,
      ...(hint ? { hint } : {}),
    });
  }
  return findings;
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

export interface JobLogFollower {
  /** Looks for new pods now (the Job's status changed). */
  wake(): void;
  /** The Job has finished: reads what its pods wrote last, then stops (at the latest after graceMs). */
  finish(graceMs?: number): Promise<void>;
}

interface FollowedPod {
  /** Bytes of its log passed on (a resumed stream starts at the beginning: these are skipped). */
  bytes: number;
  decoder: StringDecoder;
  partial: string;
  /** The stream running now. */
  active?: Promise<void>;
  abort?: () => void;
  /** When a list first showed it Succeeded or Failed. */
  terminalAt?: number;
  done: boolean;
  waiting?: string;
  failure?: string;
}

const TERMINAL = new Set(["Succeeded", "Failed"]);

/**
 * Follows the logs of a Job's pods as they are written (a retry's pod after the first), passing on each
 * line but the result line. Pods are found by listing them (label job-name) when woken and every pollMs;
 * a pod's log is streamed (follow) once its container runs, resumed where it was when the stream breaks,
 * and read to its end once the pod has finished. A pod that cannot start says why (ErrImagePull, …).
 */
export function followJobLogs(
  kubeConfig: KubeConfig,
  namespace: string,
  job: string,
  options: { container: string; log: (line: string) => void; pollMs?: number },
): JobLogFollower {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const logs = new Log(kubeConfig);
  const pods = new Map<string, FollowedPod>();
  const pollMs = options.pollMs ?? 2000;
  let finishing = false;
  let stopped = false;
  let pending = false;
  let interrupt: (() => void) | undefined;
  const wake = () => {
    pending = true;
    interrupt?.();
  };

  const emit = (pod: FollowedPod, text: string, flush = false) => {
    const lines = (pod.partial + text).split("\n");
    const rest = lines.pop() ?? "";
    pod.partial = flush ? "" : rest;
    if (flush && rest !== "") lines.push(rest);
    for (const line of lines) if (!line.startsWith(RESULT_PREFIX)) options.log(line.replace(/\r$/, ""));
  };
  const close = (pod: FollowedPod) => {
    pod.done = true;
    emit(pod, pod.decoder.end(), true);
  };

  const stream = async (name: string, pod: FollowedPod, follow: boolean): Promise<void> => {
    let skip = pod.bytes;
    const ours = new AbortController();
    pod.abort = () => ours.abort();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        let data = chunk;
        if (skip > 0) {
          const n = Math.min(skip, data.length);
          data = data.subarray(n);
          skip -= n;
        }
        pod.bytes += data.length;
        if (data.length > 0) emit(pod, pod.decoder.write(data));
        callback();
      },
    });
    // The response body is piped in: errors on it (a broken connection, our abort) would be unhandled
    // and do not end the sink, so they are caught here and end the wait.
    sink.once("pipe", (source: NodeJS.ReadableStream) => {
      source.on("error", () => ours.abort());
    });
    const ended = new Promise<void>((resolve) => {
      sink.once("finish", resolve);
      sink.once("error", resolve);
      ours.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    try {
      const request = await logs.log(namespace, name, options.container, sink, { follow });
      if (ours.signal.aborted) request.abort();
      else ours.signal.addEventListener("abort", () => request.abort(), { once: true });
      await ended;
      pod.failure = undefined;
    } catch (error) {
      // 400 while the container is being created; anything else is said once.
      const failure = kubeFailure(error);
      if (failure.code !== 400 && pod.failure !== failure.message)
        options.log(`pod ${name}: its log cannot be read: ${failure.message}`);
      pod.failure = failure.message;
    } finally {
      pod.abort = undefined;
    }
  };

  const visit = (item: V1Pod) => {
    const name = item.metadata?.name;
    if (!name) return;
    let pod = pods.get(name);
    if (!pod) {
      pod = { bytes: 0, decoder: new StringDecoder("utf8"), partial: "", done: false };
      pods.set(name, pod);
      options.log(`pod ${name}:`);
    }
    if (pod.done) return;
    const phase = item.status?.phase ?? "Pending";
    const waiting = item.status?.containerStatuses?.find((c) => c.name === options.container)?.state?.waiting;
    const reason = waiting?.reason && waiting.reason !== "ContainerCreating" ? waiting.reason : undefined;
    if (reason && reason !== pod.waiting)
      options.log(`pod ${name}: waiting: ${reason}${waiting?.message ? `: ${waiting.message}` : ""}`);
    pod.waiting = reason;
    if (TERMINAL.has(phase)) pod.terminalAt ??= Date.now();
    if (pod.active) {
      // A stream that outlives its pod's end by seconds is cut; the next one reads the rest.
      if (pod.terminalAt !== undefined && Date.now() - pod.terminalAt > 5000) pod.abort?.();
      return;
    }
    if (phase === "Pending" || stopped) return;
    const final = pod.terminalAt !== undefined;
    const current = pod;
    current.active = stream(name, current, !final).then(() => {
      current.active = undefined;
      // Started after the pod had finished: its whole log has been read (or cannot be: said once).
      if (final) close(current);
      wake();
    });
  };

  const loop = (async () => {
    while (!stopped) {
      // Only a list made after finish() was called can tell that every pod has been read.
      const finalRound = finishing;
      try {
        const list = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
        const sorted = [...list.items].sort(
          (a, b) =>
            String(a.metadata?.creationTimestamp ?? "").localeCompare(
              String(b.metadata?.creationTimestamp ?? ""),
            ) || Number(a.metadata?.resourceVersion ?? 0) - Number(b.metadata?.resourceVersion ?? 0),
        );
        for (const item of sorted) visit(item);
        // Pods gone meanwhile (their Job deleted) have no more to read.
        const listed = new Set(sorted.map((p) => p.metadata?.name));
        if (finalRound)
          for (const [name, pod] of pods) if (!listed.has(name) && !pod.active && !pod.done) close(pod);
      } catch {
        // The next round lists again.
      }
      if (finalRound && [...pods.values()].every((p) => p.done)) break;
      if (!pending) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          interrupt = resolve;
          timer = setTimeout(resolve, pollMs);
        });
        clearTimeout(timer);
        interrupt = undefined;
      }
      pending = false;
    }
  })();

  return {
    wake,
    async finish(graceMs = 10_000) {
      finishing = true;
      wake();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      stopped = true;
      wake();
      for (const pod of pods.values()) pod.abort?.();
      await Promise.all([...pods.values()].map((p) => p.active));
      for (const pod of pods.values()) if (!pod.done) close(pod);
      await loop;
    },
  };
}

export interface ClusterBuildOptions {
  kubeConfig: KubeConfig;
  job: BuildJobInput;
  timeoutMs: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Creates the Job and its ConfigMap, follows the Job (its pods' logs passed to `log` as they are
 * written), and returns the builder's record. Stopped through `signal`, it deletes the Job (its pods and
 * its ConfigMap go with it).
 */
export async function runClusterBuild(
  options: ClusterBuildOptions,
): Promise<{ record: BuildRecord; log: string }> {
  const { kubeConfig, job: input } = options;
  const log = options.log ?? (() => {});
  const { configMap, job } = renderBuildJob(input);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const { namespace } = input;
  // The Job first, then the ConfigMap it mounts, owned by the Job from the start: deleting the Job deletes
  // it, and nothing is left behind when either is refused. (A pod that starts before its ConfigMap exists
  // waits for it, as the kubelet retries the mount.)
  const created = await batch.createNamespacedJob({ namespace, body: job });
  const name = created.metadata?.name as string;
  const remove = async (): Promise<string> => {
    try {
      await batch.deleteNamespacedJob({ namespace, name, propagationPolicy: "Background" });
      return `Job ${namespace}/${name} deleted`;
    } catch (error) {
      return `Job ${namespace}/${name} could not be deleted: ${kubeFailure(error).message}`;
    }
  };
  try {
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        ...configMap,
        metadata: {
          ...configMap.metadata,
          ownerReferences: [
            { apiVersion: "batch/v1", kind: "Job", name, uid: created.metadata?.uid as string },
          ],
        },
      },
    });
  } catch (error) {
    const removed = await remove();
    throw new ClusterBuildError(
      `ConfigMap ${namespace}/${configMap.metadata?.name} (the spec) could not be created: ${kubeFailure(error).message}; ${removed}`,
    );
  }
  log(`created Job ${namespace}/${name}; following it (deadline ${Math.round(options.timeoutMs / 1000)} s)`);
  const follower = followJobLogs(kubeConfig, namespace, name, { container: "build", log });
  let last = "";
  let outcome: JobOutcome;
  try {
    outcome = await waitForJob(kubeConfig, namespace, name, {
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      onStatus: (j) => {
        const s = j.status ?? {};
        const line = `Job ${name}: active ${s.active ?? 0}, succeeded ${s.succeeded ?? 0}, failed ${s.failed ?? 0}`;
        if (line !== last) {
          last = line;
          log(line);
          follower.wake();
        }
      },
    });
  } catch (error) {
    if (!options.signal?.aborted) {
      await follower.finish(2000);
      throw error;
    }
    const removed = await remove();
    await follower.finish(2000);
    throw new ClusterBuildError(`the build was stopped; ${removed}`);
  }
  await follower.finish();
  if (!outcome.succeeded)
    throw new ClusterBuildError(
      `Job ${namespace}/${name} failed: ${outcome.reason}`,
      tail(outcome.log),
      findingsFromLog(outcome.log),
    );
  const record = resultFromLog(outcome.log);
  if (!record)
    throw new ClusterBuildError(
      `Job ${namespace}/${name} succeeded but its log has no result line`,
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
