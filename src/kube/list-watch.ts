// Keeping up with a collection of Kubernetes objects: list it, then watch from the list's resourceVersion
// with bookmarks. A watch that ends is resumed from the last resourceVersion seen; one that fails is
// retried with backoff after a fresh list; 410 Gone (history compacted) and "resourceVersion too large"
// (a restored etcd) lead to a fresh list at once. A watch that delivers nothing (not even a bookmark)
// for longer than the server's timeout is treated as dead. Used by the catalog's ConfigMap sources and
// by the KubeVirt provider's caches.
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type KubeFailure, kubeFailure } from "./client.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ListResult<T> {
  metadata?: { resourceVersion?: string };
  items: T[];
}

export interface ListWatchOptions<T> {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** What is watched, for the logs: "ConfigMap kube-dc/images-configmap". */
  what: string;
  /** The collection's URL path, e.g. /api/v1/namespaces/kube-dc/configmaps. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Lists the collection with the same selectors (a typed client call). */
  list(): Promise<ListResult<T>>;
  /** The whole collection, after each successful list: replaces what was known. */
  onList(items: T[]): void;
  /** A list failed (the loop retries with backoff). */
  onListFailed?(failure: KubeFailure): void;
  onEvent(type: WatchEventType, object: T): void;
  /** The server ends each watch after this long and it is resumed; default 300 s. */
  watchTimeoutSeconds?: number;
  /** A watch that delivers nothing for this long is treated as dead; default timeout + 30 s. */
  idleTimeoutMs?: number;
  /** First and longest wait between failed attempts (doubling, with jitter); default 200 ms and 10 s. */
  backoff?: { initialMs: number; maxMs: number };
}

/** How one watch ended. */
type WatchOutcome = "ended" | "relist" | "failed";

/** A watch that stayed open this long (or delivered anything) shows the connection works. */
const HEALTHY_WATCH_MS = 1000;

export class ListWatch<T extends { metadata?: { resourceVersion?: string } }> {
  readonly #options: ListWatchOptions<T>;
  readonly #watcher: Watch;
  #resourceVersion: string | undefined;
  #stopped = false;
  /** Ends the current watch (it resolves "ended"); set while one runs. */
  #cancelWatch: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #failures = 0;
  /** Counters for tests and logs: lists done, watches opened, relists after 410 or a too-large resourceVersion. */
  readonly stats = { lists: 0, watches: 0, relists: 0 };

  constructor(options: ListWatchOptions<T>) {
    this.#options = options;
    this.#watcher = new Watch(options.kubeConfig);
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Lists once (reported through onList or onListFailed), then keeps watching in the background. */
  async start(): Promise<boolean> {
    const listed = await this.#list();
    this.#loop = this.#run(listed);
    return listed;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelWatch?.();
    this.#wake?.();
    await this.#loop;
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
      // Stopped while listing: no new watch (nothing would end it before the server's timeout).
      if (this.#stopped) return;
      const { outcome, healthy } = await this.#watchOnce();
      if (this.#stopped) return;
      // Backoff grows across failures and is forgotten once a watch has worked.
      if (healthy) this.#failures = 0;
      if (outcome === "relist") {
        this.stats.relists++;
        needList = true;
      } else if (!healthy) {
        // A watch the server ends at once, again and again, must not become a busy loop.
        needList = true;
        await this.#backoff();
      } else if (outcome === "failed") {
        // A watch that worked and broke (a dropped connection): list again at once; if the server is
        // gone, the failing list backs off.
        needList = true;
      }
    }
  }

  async #backoff(): Promise<void> {
    if (this.#stopped) return;
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

  /** Lists the collection. False when the API server could not answer. */
  async #list(): Promise<boolean> {
    const { logger, what } = this.#options;
    this.stats.lists++;
    try {
      const list = await this.#options.list();
      this.#resourceVersion = list.metadata?.resourceVersion;
      this.#options.onList(list.items);
      return true;
    } catch (error) {
      const failure = kubeFailure(error);
      logger.warn({ code: failure.code, reason: failure.reason }, `cannot list ${what}: ${failure.message}`);
      this.#options.onListFailed?.(failure);
      return false;
    }
  }

  /** One watch from the current resourceVersion, until it ends, fails, or asks for a fresh list. */
  #watchOnce(): Promise<{ outcome: WatchOutcome; healthy: boolean }> {
    const { logger, what } = this.#options;
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
          logger.warn({ idleMs }, `watch of ${what} went silent; listing again`);
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
          logger.warn({ code: failure.code }, `watch of ${what} failed: ${failure.message}`);
        finish(failure.code === 410 || isTooLarge(failure) ? "relist" : "failed");
      };
      const { fieldSelector, labelSelector } = this.#options;
      this.#watcher
        .watch(
          this.#options.path,
          {
            ...(fieldSelector ? { fieldSelector } : {}),
            ...(labelSelector ? { labelSelector } : {}),
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
    const rv = (object as T).metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    if (type === "ADDED" || type === "MODIFIED" || type === "DELETED")
      this.#options.onEvent(type, object as T);
    return undefined;
  }
}

export function isTooLarge(failure: KubeFailure): boolean {
  return failure.code === 504 && /too large resource version/i.test(failure.message);
}
