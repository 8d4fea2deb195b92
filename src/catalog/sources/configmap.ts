// The catalog from a ConfigMap, watched through the Kubernetes API: list it (by name, with a field
// selector), then watch from the list's resourceVersion with bookmarks. A watch that ends is resumed
// from the last resourceVersion seen; one that fails is retried with backoff after a fresh list; 410 Gone
// (history compacted) and "resourceVersion too large" (a restored etcd) lead to a fresh list at once.
// Every ConfigMap version is offered to the CatalogState like file.ts does; a rejected one is also
// reported as a Warning Event on the ConfigMap, once per catalog version across all replicas.
//
// Positions: the catalog is built from the data["images.yaml"] string itself, so findings' line:column
// count within images.yaml (what `kubectl get cm NAME -o jsonpath='{.data.images\.yaml}'` prints and
// what `kubectl create configmap --from-file=images.yaml` was made from) and the catalog version is the
// sha256 of that string: equal on every replica and unchanged by metadata-only edits (labels,
// annotations, managedFields), which a whole-manifest hash would not be.
import { hostname } from "node:os";
import {
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  type V1ConfigMap,
  Watch,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { stringify } from "yaml";
import { type KubeFailure, kubeFailure } from "../../kube/client.ts";
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

/** How one watch ended. */
type WatchOutcome = "ended" | "relist" | "failed";

export const EVENT_REASON = "CatalogInvalid";
const EVENT_MESSAGE_LIMIT = 1024;
const REPORTED_ERRORS = 3;
/** A watch that stayed open this long (or delivered anything) shows the connection works. */
const HEALTHY_WATCH_MS = 1000;

export class ConfigMapCatalogSource implements EditableSource {
  readonly #options: ConfigMapSourceOptions;
  readonly #core: CoreV1Api;
  readonly #watcher: Watch;
  readonly #reported = new Set<string>();
  #resourceVersion: string | undefined;
  /** The version last offered to the state (or why none could be), so equal content is offered once. */
  #offered: string | undefined;
  #stopped = false;
  /** Ends the current watch (it resolves "ended"); set while one runs. */
  #cancelWatch: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #failures = 0;
  /** Counters for tests and logs: lists done, watches opened, relists after 410 or a too-large resourceVersion, Events created. */
  readonly stats = { lists: 0, watches: 0, relists: 0, events: 0 };

  constructor(options: ConfigMapSourceOptions) {
    this.#options = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#watcher = new Watch(options.kubeConfig);
  }

  get source(): CatalogSource {
    return { kind: "configmap", location: `${this.#options.namespace}/${this.#options.name}` };
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Lists the ConfigMap once (served when good), then keeps watching it in the background. */
  async start(): Promise<void> {
    const listed = await this.#list();
    this.#loop = this.#run(listed);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelWatch?.();
    this.#wake?.();
    await this.#loop;
  }

  /** The images.yaml text as the API server holds it now. */
  async readText(): Promise<SourceText> {
    const { namespace, name } = this.#options;
    const configMap = await this.#core.readNamespacedConfigMap({ namespace, name });
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
      const configMap = await this.#core.readNamespacedConfigMap({ namespace, name });
      const current = catalogVersion(configMap.data?.[CONFIGMAP_KEY] ?? "");
      if (current !== expectedVersion) return { ok: false, reason: "conflict", version: current };
      const updated = await this.#core.replaceNamespacedConfigMap({
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

  async #run(listed: boolean): Promise<void> {
    let needList = !listed;
    while (!this.#stopped) {
      if (needList) {
        if (!(await this.#list())) {
          await this.#backoff();
          continue;
        }
        needList = false;
      }
      const { outcome, healthy } = await this.#watchOnce();
      if (this.#stopped) return;
      // Backoff grows across failures and is forgotten once a watch has worked.
      if (healthy) this.#failures = 0;
      if (outcome === "relist") {
        this.stats.relists++;
        needList = true;
      } else if (outcome === "failed" || !healthy) {
        // A watch the server ends at once, again and again, must not become a busy loop.
        needList = true;
        await this.#backoff();
      }
    }
  }

  async #backoff(): Promise<void> {
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 200, maxMs: 10_000 };
    const ceiling = Math.min(maxMs, initialMs * 2 ** this.#failures);
    this.#failures++;
    // Equal jitter: replicas that lost the server together do not come back in lockstep.
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }

  /** Lists the ConfigMap by name; offers what it finds. False when the API server could not answer. */
  async #list(): Promise<boolean> {
    const { namespace, name, logger, state } = this.#options;
    this.stats.lists++;
    try {
      const list = await this.#core.listNamespacedConfigMap({
        namespace,
        fieldSelector: `metadata.name=${name}`,
      });
      this.#resourceVersion = list.metadata?.resourceVersion;
      const found = list.items[0];
      if (found) this.#offerConfigMap(found);
      else this.#offerMissing(`ConfigMap ${namespace}/${name} does not exist`);
      return true;
    } catch (error) {
      const failure = kubeFailure(error);
      logger.warn(
        { code: failure.code, reason: failure.reason },
        `cannot list ConfigMap ${namespace}/${name}: ${failure.message}`,
      );
      // Before any catalog is served, say why on /api/v1/catalog; afterwards a blip must not look like a bad catalog.
      if (!state.served)
        this.#offerMissing(`cannot read ConfigMap ${namespace}/${name}: ${describe(failure)}`);
      return false;
    }
  }

  /** One watch from the current resourceVersion, until it ends, fails, or asks for a fresh list. */
  #watchOnce(): Promise<{ outcome: WatchOutcome; healthy: boolean }> {
    const { namespace, name, logger } = this.#options;
    const timeoutSeconds = this.#options.watchTimeoutSeconds ?? 300;
    const idleMs = this.#options.idleTimeoutMs ?? (timeoutSeconds + 30) * 1000;
    this.stats.watches++;
    const opened = performance.now();
    let received = 0;
    return new Promise((resolve) => {
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      let controller: AbortController | undefined;
      const finish = (outcome: WatchOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        controller?.abort();
        this.#cancelWatch = undefined;
        resolve({ outcome, healthy: received > 0 || performance.now() - opened > HEALTHY_WATCH_MS });
      };
      this.#cancelWatch = () => finish("ended");
      const alive = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          logger.warn({ idleMs }, `watch of ConfigMap ${namespace}/${name} went silent; listing again`);
          finish("failed");
        }, idleMs);
        idle.unref();
      };
      alive();
      const onEvent = (type: string, object: unknown) => {
        alive();
        received++;
        const result = this.#onWatchEvent(type, object);
        if (result) finish(result);
      };
      const onDone = (error: unknown) => {
        if (!error) return finish("ended");
        const failure = kubeFailure(error);
        if (!this.#stopped && !settled)
          logger.warn(
            { code: failure.code },
            `watch of ConfigMap ${namespace}/${name} failed: ${failure.message}`,
          );
        finish(failure.code === 410 || isTooLarge(failure) ? "relist" : "failed");
      };
      this.#watcher
        .watch(
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
          {
            fieldSelector: `metadata.name=${name}`,
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds,
          },
          onEvent,
          onDone,
        )
        .then((opened) => {
          controller = opened;
          // Finished while the request was on its way: the stream that just opened is not needed.
          if (settled) opened.abort();
        }, onDone);
    });
  }

  /** Handles one watch event; returns how the watch must end, or undefined to go on. */
  #onWatchEvent(type: string, object: unknown): WatchOutcome | undefined {
    if (type === "ERROR") {
      const failure = kubeFailure({ body: object });
      this.#options.logger.info({ code: failure.code }, `watch error: ${failure.message}`);
      return failure.code === 410 || isTooLarge(failure) ? "relist" : "failed";
    }
    const configMap = object as V1ConfigMap;
    const rv = configMap.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    if (type === "ADDED" || type === "MODIFIED") this.#offerConfigMap(configMap);
    else if (type === "DELETED")
      this.#offerMissing(`ConfigMap ${this.#options.namespace}/${this.#options.name} was deleted`);
    return undefined;
  }

  #offerConfigMap(configMap: V1ConfigMap): void {
    const text = configMap.data?.[CONFIGMAP_KEY];
    // Without the key, the parser reads the ConfigMap itself and names the key it found instead.
    const candidate =
      text === undefined
        ? buildCatalog(
            stringify({ apiVersion: "v1", kind: "ConfigMap", data: configMap.data ?? {} }),
            this.source,
          )
        : buildCatalog(text, this.source);
    if (candidate.version === this.#offered) return;
    this.#offered = candidate.version;
    if (!this.#options.state.offer(candidate)) void this.#report(configMap, candidate);
  }

  #offerMissing(why: string): void {
    if (this.#offered === why) return;
    this.#offered = why;
    this.#options.state.offer(unreadableCatalog(this.source, why));
  }

  /** A Warning Event on the ConfigMap; its name derives from the catalog version, so replicas create it once. */
  async #report(configMap: V1ConfigMap, candidate: Catalog): Promise<void> {
    const { namespace, name, logger, state } = this.#options;
    if (this.#options.events === false || this.#reported.has(candidate.version)) return;
    this.#reported.add(candidate.version);
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
      message: eventMessage(candidate, state.served?.catalog.version),
      source: { component: "osimg" },
      reportingComponent: "osimg",
      reportingInstance: this.#options.instance ?? hostname(),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.#core.createNamespacedEvent({ namespace, body: event });
      this.stats.events++;
    } catch (error) {
      const failure = kubeFailure(error);
      if (failure.code === 409) return; // another replica reported this version first
      logger.warn(
        { code: failure.code },
        `cannot create an Event on ConfigMap ${namespace}/${name}: ${failure.message}`,
      );
    }
  }
}

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

function isTooLarge(failure: KubeFailure): boolean {
  return failure.code === 504 && /too large resource version/i.test(failure.message);
}

function describe(failure: KubeFailure): string {
  return failure.code === undefined
    ? failure.message
    : `${failure.code} ${failure.reason ?? ""} ${failure.message}`.replace(/\s+/g, " ");
}
