// The catalog from a ConfigMap, watched through the Kubernetes API (list by name with a field selector,
// then watch from the list's resourceVersion with bookmarks; resumed, relisted on 410 Gone and retried
// with backoff by ListWatch). Every ConfigMap version is offered to the CatalogState like file.ts does; a
// rejected one is also reported as a Warning Event on the ConfigMap, once per catalog version across all
// replicas.
//
// Positions: the catalog is built from the data["images.yaml"] string itself, so findings' line:column
// count within images.yaml (what `kubectl get cm NAME -o jsonpath='{.data.images\.yaml}'` prints and
// what `kubectl create configmap --from-file=images.yaml` was made from) and the catalog version is the
// sha256 of that string: equal on every replica and unchanged by metadata-only edits (labels,
// annotations, managedFields), which a whole-manifest hash would not be.
//
// Project overlays (OverlayCatalogSource): ConfigMaps labelled osimg.io/catalog=true in any namespace,
// watched the same way; each one adds entries to its own namespace only.
import { hostname } from "node:os";
import { CoreV1Api, type CoreV1Event, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { stringify } from "yaml";
import { type KubeFailure, kubeFailure } from "../../kube/client.ts";
import { ListWatch, type ListWatchOptions } from "../../kube/list-watch.ts";
import {
  buildCatalog,
  type Catalog,
  type CatalogSource,
  catalogVersion,
  isServable,
  unreadableCatalog,
} from "../catalog.ts";
import { CONFIGMAP_KEY } from "../parse.ts";
import type { CatalogState } from "../state.ts";
import type { EditableSource, SourceText, WriteResult } from "./editable.ts";

export interface ConfigMapSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  state: CatalogState;
  logger: Logger;
  /** Report rejected catalogs as Events on the ConfigMap; default true. */
  events?: boolean;
  /** Who reports the Events: the pod name in a cluster; default the host name. */
  instance?: string;
  /** The server ends each watch after this long and it is resumed; default 300 s. */
  watchTimeoutSeconds?: number;
  /** A watch that delivers nothing (not even a bookmark) for this long is treated as dead; default timeout + 30 s. */
  idleTimeoutMs?: number;
  /** First and longest wait between failed attempts (doubling, with jitter); default 200 ms and 10 s. */
  backoff?: { initialMs: number; maxMs: number };
}

export const EVENT_REASON = "CatalogInvalid";
const EVENT_MESSAGE_LIMIT = 1024;
const REPORTED_ERRORS = 3;
/** The label that makes a ConfigMap in a tenant namespace a project overlay. */
export const OVERLAY_LABEL = "osimg.io/catalog";
export const OVERLAY_SELECTOR = `${OVERLAY_LABEL}=true`;

/** The catalog of one ConfigMap: its images.yaml, or the ConfigMap itself when the key is missing. */
export function configMapCatalog(configMap: V1ConfigMap, source: CatalogSource): Catalog {
  const text = configMap.data?.[CONFIGMAP_KEY];
  // Without the key, the parser reads the ConfigMap itself and names the key it found instead.
  return text === undefined
    ? buildCatalog(stringify({ apiVersion: "v1", kind: "ConfigMap", data: configMap.data ?? {} }), source)
    : buildCatalog(text, source);
}

/** Reports rejected catalogs as Warning Events on their ConfigMap, once per catalog version. */
class CatalogEvents {
  readonly #core: CoreV1Api;
  readonly #logger: Logger;
  readonly #instance: string;
  readonly #reported = new Set<string>();
  count = 0;

  constructor(core: CoreV1Api, logger: Logger, instance: string | undefined) {
    this.#core = core;
    this.#logger = logger;
    this.#instance = instance ?? hostname();
  }

  /** The Event's name derives from the catalog version, so replicas create it once. */
  async report(configMap: V1ConfigMap, candidate: Catalog, servedVersion: string | undefined): Promise<void> {
    const namespace = configMap.metadata?.namespace as string;
    const name = configMap.metadata?.name as string;
    const key = `${namespace}/${name}/${candidate.version}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    const now = new Date();
    const event: CoreV1Event = {
      metadata: {
        name: `${name.slice(0, 200)}.catalog-invalid.${candidate.version.slice(0, 16)}`,
        namespace,
      },
      involvedObject: {
        apiVersion: "v1",
        kind: "ConfigMap",
        namespace,
        name,
        uid: configMap.metadata?.uid,
        resourceVersion: configMap.metadata?.resourceVersion,
        fieldPath: `data[${CONFIGMAP_KEY}]`,
      },
      reason: EVENT_REASON,
      type: "Warning",
      message: eventMessage(candidate, servedVersion),
      source: { component: "osimg" },
      reportingComponent: "osimg",
      reportingInstance: this.#instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.#core.createNamespacedEvent({ namespace, body: event });
      this.count++;
    } catch (error) {
      const failure = kubeFailure(error);
      if (failure.code === 409) return; // another replica reported this version first
      this.#logger.warn(
        { code: failure.code },
        `cannot create an Event on ConfigMap ${namespace}/${name}: ${failure.message}`,
      );
    }
  }
}

type WatcherOptions = Pick<
  ConfigMapSourceOptions,
  "kubeConfig" | "logger" | "instance" | "watchTimeoutSeconds" | "idleTimeoutMs" | "backoff"
>;

/** What both sources share: a list+watch of ConfigMaps, and Events for the catalogs they reject. */
abstract class ConfigMapWatcher {
  protected readonly core: CoreV1Api;
  protected readonly events: CatalogEvents;
  readonly #options: WatcherOptions;
  #listWatch: ListWatch<V1ConfigMap> | undefined;

  constructor(options: WatcherOptions) {
    this.#options = options;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.events = new CatalogEvents(this.core, options.logger, options.instance);
  }

  /** Sets up the list+watch (in the subclass's constructor, whose callbacks it takes). */
  protected watch(
    options: Omit<ListWatchOptions<V1ConfigMap>, "kubeConfig" | "logger" | keyof WatcherOptions>,
  ): void {
    const { kubeConfig, logger, watchTimeoutSeconds, idleTimeoutMs, backoff } = this.#options;
    this.#listWatch = new ListWatch<V1ConfigMap>({
      ...options,
      kubeConfig,
      logger,
      watchTimeoutSeconds,
      idleTimeoutMs,
      backoff,
    });
  }

  get #watcher(): ListWatch<V1ConfigMap> {
    if (!this.#listWatch) throw new Error("watch() was not called");
    return this.#listWatch;
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string | undefined {
    return this.#watcher.resourceVersion;
  }

  /** Counters for tests and logs: lists done, watches opened, relists after 410 or a too-large resourceVersion, Events created. */
  get stats(): { lists: number; watches: number; relists: number; events: number } {
    return { ...this.#watcher.stats, events: this.events.count };
  }

  /** Lists once (what is found is offered), then keeps watching in the background. */
  async start(): Promise<void> {
    await this.#watcher.start();
  }

  async stop(): Promise<void> {
    await this.#watcher.stop();
  }
}

export class ConfigMapCatalogSource extends ConfigMapWatcher implements EditableSource {
  readonly #options: ConfigMapSourceOptions;
  /** The version last offered to the state (or why none could be), so equal content is offered once. */
  #offered: string | undefined;

  constructor(options: ConfigMapSourceOptions) {
    super(options);
    this.#options = options;
    const { namespace, name, state } = options;
    const fieldSelector = `metadata.name=${name}`;
    this.watch({
      what: `ConfigMap ${namespace}/${name}`,
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
      fieldSelector,
      list: () => this.core.listNamespacedConfigMap({ namespace, fieldSelector }),
      onList: (items) => {
        const found = items[0];
        if (found) this.#offerConfigMap(found);
        else this.#offerMissing(`ConfigMap ${namespace}/${name} does not exist`);
      },
      onListFailed: (failure) => {
        // Before any catalog is served, say why on /api/v1/catalog; afterwards a blip must not look like a bad catalog.
        if (!state.served)
          this.#offerMissing(`cannot read ConfigMap ${namespace}/${name}: ${describe(failure)}`);
      },
      onEvent: (type, configMap) => {
        if (type === "DELETED") this.#offerMissing(`ConfigMap ${namespace}/${name} was deleted`);
        else this.#offerConfigMap(configMap);
      },
    });
  }

  get source(): CatalogSource {
    return { kind: "configmap", location: `${this.#options.namespace}/${this.#options.name}` };
  }

  /** The images.yaml text as the API server holds it now. */
  async readText(): Promise<SourceText> {
    const { namespace, name } = this.#options;
    const configMap = await this.core.readNamespacedConfigMap({ namespace, name });
    const text = configMap.data?.[CONFIGMAP_KEY] ?? "";
    return { text, version: catalogVersion(text) };
  }

  /**
   * Replaces data["images.yaml"] when it is still at `expectedVersion` and `text` has no errors. The
   * update carries the resourceVersion it was read at, so a concurrent writer (kubectl, another replica)
   * makes it fail with 409 instead of being overwritten.
   */
  async writeText(text: string, expectedVersion: string): Promise<WriteResult> {
    const { namespace, name } = this.#options;
    const candidate = buildCatalog(text, this.source);
    if (!isServable(candidate)) return { ok: false, reason: "invalid", findings: candidate.findings };
    try {
      const configMap = await this.core.readNamespacedConfigMap({ namespace, name });
      const current = catalogVersion(configMap.data?.[CONFIGMAP_KEY] ?? "");
      if (current !== expectedVersion) return { ok: false, reason: "conflict", version: current };
      const updated = await this.core.replaceNamespacedConfigMap({
        namespace,
        name,
        body: { ...configMap, data: { ...configMap.data, [CONFIGMAP_KEY]: text } },
      });
      // Served now rather than when the watch brings it: the writer reads its own write.
      this.#offerConfigMap(updated);
      return { ok: true, version: candidate.version };
    } catch (error) {
      const failure = kubeFailure(error);
      if (failure.code === 409)
        return { ok: false, reason: "conflict", version: (await this.readText()).version };
      if (failure.code === 403 || failure.code === 404)
        return {
          ok: false,
          reason: "read-only",
          message: `ConfigMap ${namespace}/${name} cannot be updated by osimg: ${describe(failure)}`,
        };
      throw error;
    }
  }

  #offerConfigMap(configMap: V1ConfigMap): void {
    const candidate = configMapCatalog(configMap, this.source);
    if (candidate.version === this.#offered) return;
    this.#offered = candidate.version;
    const { state } = this.#options;
    const servedBefore = state.served?.catalog.version;
    if (!state.offer(candidate) && this.#options.events !== false)
      void this.events.report(configMap, candidate, servedBefore);
  }

  #offerMissing(why: string): void {
    if (this.#offered === why) return;
    this.#offered = why;
    this.#options.state.offer(unreadableCatalog(this.source, why));
  }
}

export interface OverlaySourceOptions {
  kubeConfig: KubeConfig;
  state: CatalogState;
  logger: Logger;
  /** Report rejected overlays as Events on their ConfigMap; default true. */
  events?: boolean;
  instance?: string;
  watchTimeoutSeconds?: number;
  idleTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
}

/**
 * Project overlays: every ConfigMap labelled osimg.io/catalog=true, in any namespace, adds its entries to
 * that namespace's catalog (see CatalogState.offerOverlay). One list+watch across the cluster.
 */
export class OverlayCatalogSource extends ConfigMapWatcher {
  readonly #options: OverlaySourceOptions;
  /** namespace/name → the catalog version last offered. */
  readonly #offered = new Map<string, string>();

  constructor(options: OverlaySourceOptions) {
    super(options);
    this.#options = options;
    this.watch({
      what: `ConfigMaps labelled ${OVERLAY_SELECTOR}`,
      path: "/api/v1/configmaps",
      labelSelector: OVERLAY_SELECTOR,
      list: () => this.core.listConfigMapForAllNamespaces({ labelSelector: OVERLAY_SELECTOR }),
      onList: (items) => {
        const present = new Set(items.map(keyOf));
        for (const key of [...this.#offered.keys()]) if (!present.has(key)) this.#remove(key);
        for (const item of items) this.#offer(item);
      },
      onEvent: (type, configMap) => {
        if (type === "DELETED") this.#remove(keyOf(configMap));
        else this.#offer(configMap);
      },
    });
  }

  #offer(configMap: V1ConfigMap): void {
    const namespace = configMap.metadata?.namespace as string;
    const name = configMap.metadata?.name as string;
    const key = `${namespace}/${name}`;
    const candidate = configMapCatalog(configMap, { kind: "configmap", location: key });
    if (this.#offered.get(key) === candidate.version) return;
    this.#offered.set(key, candidate.version);
    const { state } = this.#options;
    const before = state.overlay(namespace, name)?.served?.version;
    if (!state.offerOverlay(namespace, name, candidate) && this.#options.events !== false)
      void this.events.report(configMap, candidate, before);
  }

  #remove(key: string): void {
    this.#offered.delete(key);
    const [namespace, name] = key.split("/") as [string, string];
    this.#options.state.removeOverlay(namespace, name);
  }
}

const keyOf = (configMap: V1ConfigMap) => `${configMap.metadata?.namespace}/${configMap.metadata?.name}`;

/** The first errors with their images.yaml positions, and what is served instead. */
export function eventMessage(candidate: Catalog, servedVersion: string | undefined): string {
  const errors = candidate.findings.filter((f) => f.severity === "error");
  const shown = errors
    .slice(0, REPORTED_ERRORS)
    .map((f) => `${CONFIGMAP_KEY}:${f.line}:${f.column}: ${f.message}${f.hint ? ` (${f.hint})` : ""}`);
  const more = errors.length > REPORTED_ERRORS ? `; and ${errors.length - REPORTED_ERRORS} more` : "";
  const serving = servedVersion
    ? `serving the last good catalog ${servedVersion.slice(0, 12)}`
    : "no catalog is served";
  const message = `catalog ${candidate.version.slice(0, 12)} rejected with ${errors.length} error${errors.length === 1 ? "" : "s"}, ${serving}: ${shown.join("; ")}${more}`;
  return message.length > EVENT_MESSAGE_LIMIT ? `${message.slice(0, EVENT_MESSAGE_LIMIT - 1)}…` : message;
}

function describe(failure: KubeFailure): string {
  return failure.code === undefined
    ? failure.message
    : `${failure.code} ${failure.reason ?? ""} ${failure.message}`.replace(/\s+/g, " ");
}
