// The server's builds: a spec (and the files it names) submitted over the API is validated at once, then
// built in the background, one build at a time, in the server's data directory, or as a Kubernetes Job
// (`osimg serve --builds cluster`: the Job's pods' log lines streamed, its record read from the result
// line, the image optionally written into a catalog ConfigMap; stopping the server deletes the Job).
// Each build keeps its state, its record and the last lines of its log; listeners get log lines and state
// changes as they happen (the API streams them).
import { EventEmitter } from "node:events";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Finding } from "../catalog/findings.ts";
import { kubeFailure, type ObjectRef, parseObjectRef } from "../kube/client.ts";
import { type BuildRecord, build, newBuildId, SpecError } from "./build.ts";
import { ClusterBuildError, runClusterBuild, specBundle, writeBack } from "./cluster.ts";
import { catalogValues } from "./register.ts";
import { type BuildKind, parseSpec, relativePath } from "./spec.ts";

export type BuildState = "queued" | "running" | "succeeded" | "failed";

export interface BuildView {
  id: string;
  kind: BuildKind;
  state: BuildState;
  runner: "local" | "cluster";
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
  /** Findings that made the build fail (positions in the submitted spec). */
  findings?: Finding[];
  record?: BuildRecord;
  logLines: number;
}

export interface BuildRequest {
  /** The spec's TOML text. */
  spec: string;
  kind: BuildKind;
  /** Files the spec names, by their path relative to the spec (base64). */
  files?: Record<string, string>;
  push?: { reference: string; tlsVerify: boolean };
  /**
   * Cluster builds: on success, write the pushed image into this catalog ConfigMap ("namespace/name"), as
   * `osimg build --on-cluster --catalog-configmap` does.
   */
  catalogConfigMap?: string;
}

/** Kinds a Job builds: what it builds must be pushed, its outputs are gone with its pod. */
export const CLUSTER_KINDS: readonly BuildKind[] = ["container-disk", "upgrade-img", "admin-container"];

export class BuildRequestError extends Error {
  override name = "BuildRequestError";
  readonly findings: Finding[];
  readonly field: string | undefined;

  constructor(message: string, findings: Finding[] = [], field?: string) {
    super(message);
    this.findings = findings;
    this.field = field;
  }
}

export interface BuildServiceOptions {
  dataDir: string;
  logger?: Logger;
  /** Run builds as Jobs on this cluster instead of on the server. */
  cluster?: {
    kubeConfig: KubeConfig;
    namespace: string;
    builderImage: string;
    credentialsSecret?: string;
    timeoutMs: number;
  };
  /** Log lines kept per build. */
  logLimit?: number;
  /** Builds kept in the list. */
  historyLimit?: number;
}

interface Entry {
  view: BuildView;
  request: BuildRequest;
  catalog?: ObjectRef;
  log: string[];
  controller: AbortController;
}

export class BuildService extends EventEmitter<{
  log: [id: string, line: string];
  update: [view: BuildView];
}> {
  readonly #options: BuildServiceOptions;
  readonly #builds = new Map<string, Entry>();
  #queue: Promise<void> = Promise.resolve();

  constructor(options: BuildServiceOptions) {
    super();
    this.setMaxListeners(0);
    this.#options = options;
  }

  list(): BuildView[] {
    return [...this.#builds.values()].map((e) => ({ ...e.view })).reverse();
  }

  get(id: string): BuildView | undefined {
    const entry = this.#builds.get(id);
    return entry && { ...entry.view };
  }

  logs(id: string): string[] | undefined {
    return this.#builds.get(id)?.log.slice();
  }

  /** Validates the request (spec findings, file paths) and queues the build. */
  submit(request: BuildRequest): BuildView {
    const parsed = parseSpec(request.spec);
    if (!parsed.spec) throw new BuildRequestError("the spec has errors", parsed.findings);
    for (const path of Object.keys(request.files ?? {})) {
      const problem = relativePath(path);
      if (problem) throw new BuildRequestError(`files: "${path}" ${problem.message}`, [], `files.${path}`);
    }
    const cluster = this.#options.cluster !== undefined;
    if (cluster && !CLUSTER_KINDS.includes(request.kind))
      throw new BuildRequestError(
        `kind: builds run as Kubernetes Jobs here, whose outputs are gone with their pod: build ${CLUSTER_KINDS.join(", ")} and push it, not ${request.kind}`,
        [],
        "kind",
      );
    if (cluster && !request.push)
      throw new BuildRequestError(
        "push: builds run as Kubernetes Jobs here: name the REGISTRY/REPOSITORY:TAG the Job pushes to (its outputs are gone with its pod)",
        [],
        "push",
      );
    let catalog: ObjectRef | undefined;
    if (request.catalogConfigMap !== undefined) {
      const field = "catalogConfigMap";
      if (!cluster)
        throw new BuildRequestError(
          "catalogConfigMap: writing the image into a catalog ConfigMap needs builds as Kubernetes Jobs (osimg serve --builds cluster)",
          [],
          field,
        );
      try {
        catalog = parseObjectRef(request.catalogConfigMap, field);
      } catch (error) {
        throw new BuildRequestError((error as Error).message, [], field);
      }
      if (request.kind !== "container-disk")
        throw new BuildRequestError(
          `catalogConfigMap: a ${request.kind} build has no disk image for a catalog entry; build container-disk`,
          [],
          field,
        );
      if (!parsed.spec.catalog)
        throw new BuildRequestError(
          "catalogConfigMap: the spec has no [catalog] section (OS_NAME, CLOUD_USER, OS_IMAGE_URL of the entry)",
          [],
          field,
        );
      if (!parsed.spec.catalog.OS_IMAGE_URL)
        throw new BuildRequestError(
          "catalogConfigMap: [catalog] has no OS_IMAGE_URL (where system.qcow2 is published)",
          [],
          field,
        );
    }
    const id = newBuildId();
    const entry: Entry = {
      view: {
        id,
        kind: request.kind,
        state: "queued",
        runner: this.#options.cluster ? "cluster" : "local",
        createdAt: new Date().toISOString(),
        logLines: 0,
      },
      request,
      ...(catalog ? { catalog } : {}),
      log: [],
      controller: new AbortController(),
    };
    this.#builds.set(id, entry);
    this.#trim();
    this.emit("update", { ...entry.view });
    this.#queue = this.#queue.then(() => this.#run(entry));
    return { ...entry.view };
  }

  /** Stops running and queued builds (server shutdown). */
  async close(): Promise<void> {
    for (const entry of this.#builds.values()) entry.controller.abort();
    await this.#queue;
  }

  #trim(): void {
    const limit = this.#options.historyLimit ?? 100;
    for (const [id, entry] of this.#builds) {
      if (this.#builds.size <= limit) break;
      if (entry.view.state === "succeeded" || entry.view.state === "failed") this.#builds.delete(id);
    }
  }

  #log(entry: Entry, line: string): void {
    entry.log.push(line);
    if (entry.log.length > (this.#options.logLimit ?? 5000)) entry.log.shift();
    entry.view.logLines++;
    this.emit("log", entry.view.id, line);
  }

  #update(entry: Entry, change: Partial<BuildView>): void {
    Object.assign(entry.view, change);
    this.emit("update", { ...entry.view });
  }

  async #run(entry: Entry): Promise<void> {
    if (entry.controller.signal.aborted) {
      this.#update(entry, {
        state: "failed",
        error: "the server stopped before the build started",
        finishedAt: new Date().toISOString(),
      });
      return;
    }
    const { id } = entry.view;
    const dir = join(resolve(this.#options.dataDir), "build", "requests", id);
    this.#update(entry, { state: "running", startedAt: new Date().toISOString() });
    try {
      const specFile = join(dir, "spec.toml");
      await mkdir(dir, { recursive: true });
      await writeFile(specFile, entry.request.spec);
      for (const [path, data] of Object.entries(entry.request.files ?? {})) {
        const target = resolve(dir, path);
        if (!target.startsWith(`${dir}${sep}`))
          throw new BuildRequestError(`files: "${path}" leaves the spec's directory`);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, Buffer.from(data, "base64"));
      }
      const log = (line: string) => this.#log(entry, line);
      let record: BuildRecord;
      const cluster = this.#options.cluster;
      if (cluster) {
        const spec = parseSpec(entry.request.spec).spec;
        if (!spec) throw new BuildRequestError("the spec has errors");
        log(`building as a Kubernetes Job in namespace ${cluster.namespace} with ${cluster.builderImage}`);
        ({ record } = await runClusterBuild({
          kubeConfig: cluster.kubeConfig,
          job: {
            buildId: id,
            namespace: cluster.namespace,
            kind: entry.request.kind,
            files: await specBundle(entry.request.spec, spec, dir),
            builderImage: cluster.builderImage,
            ...(cluster.credentialsSecret ? { credentialsSecret: cluster.credentialsSecret } : {}),
            ...(entry.request.push ? { push: entry.request.push } : {}),
            deadlineSeconds: Math.ceil(cluster.timeoutMs / 1000),
          },
          timeoutMs: cluster.timeoutMs,
          log,
          signal: entry.controller.signal,
        }));
        if (entry.catalog) await this.#writeBack(entry, spec.catalog, record, cluster.kubeConfig);
      } else {
        record = await build({
          buildId: id,
          specFile,
          kind: entry.request.kind,
          outDir: join(resolve(this.#options.dataDir), "build", "outputs", id),
          dataDir: this.#options.dataDir,
          ...(entry.request.push ? { push: entry.request.push } : {}),
          log,
          signal: entry.controller.signal,
        });
      }
      this.#update(entry, { state: "succeeded", record, finishedAt: new Date().toISOString() });
      this.#options.logger?.info(
        { build: id, kind: entry.request.kind, ms: record.durationMs },
        "build succeeded",
      );
    } catch (error) {
      const findings =
        error instanceof SpecError || error instanceof BuildRequestError || error instanceof ClusterBuildError
          ? error.findings
          : undefined;
      const message = (error as Error).message;
      // A Job's log tail is in the error, and its lines are in the log already.
      this.#log(
        entry,
        `build failed: ${error instanceof ClusterBuildError ? (message.split("\n")[0] as string) : message}`,
      );
      this.#update(entry, {
        state: "failed",
        error: message,
        ...(findings?.length ? { findings } : {}),
        ...(error instanceof CatalogWriteError ? { record: error.record } : {}),
        finishedAt: new Date().toISOString(),
      });
      this.#options.logger?.warn(
        { build: id, kind: entry.request.kind },
        `build failed: ${(error as Error).message.split("\n")[0]}`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** The pushed image into the catalog ConfigMap's entry, with the latest-image and build-id annotations. */
  async #writeBack(
    entry: Entry,
    section: Parameters<typeof catalogValues>[0],
    record: BuildRecord,
    kubeConfig: KubeConfig,
  ): Promise<void> {
    const target = entry.catalog as ObjectRef;
    const where = `catalog ConfigMap ${target.namespace}/${target.name}`;
    try {
      if (!record.push) throw new Error("the Job pushed nothing");
      const values = catalogValues(section, record);
      const image = `${record.push.reference}@${record.push.digest}`;
      // The build's id on the API, which is also its Job's osimg.io/build-id label.
      await writeBack(kubeConfig, target, values, image, entry.view.id);
      this.#log(entry, `${where}: entry "${values.OS_NAME}" now points at ${image}`);
    } catch (error) {
      const reason = kubeFailure(error).message;
      throw new CatalogWriteError(
        `the image was built and pushed, but the ${where} was not updated: ${reason}`,
        record,
      );
    }
  }
}

/** The build succeeded, writing its image into the catalog did not: the record is kept. */
class CatalogWriteError extends Error {
  override name = "CatalogWriteError";
  readonly record: BuildRecord;

  constructor(message: string, record: BuildRecord) {
    super(message);
    this.record = record;
  }
}
