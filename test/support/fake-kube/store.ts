// The fake's etcd: objects by type and namespace/name, one cluster-wide resourceVersion counter, and the
// history of changes that watches replay from. History is bounded (and can be expired on demand), so a
// watch from an old resourceVersion gets 410 Gone like it would from a compacted etcd.
import type { KubeObject } from "./resources.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: EventType;
  /** typeKey() of the object's resource type. */
  resource: string;
  rv: number;
  object: KubeObject;
  /** The object before this change (MODIFIED, DELETED): selectors need it to tell moves in and out. */
  previous?: KubeObject;
}

export type StoreListener = (event: StoreEvent) => void;

export const objectKey = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;

export class Store {
  #rv: number;
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  #history: StoreEvent[] = [];
  /** Watches may start from this resourceVersion or later; older ones get 410 Gone. */
  #oldest: number;
  readonly #listeners = new Set<StoreListener>();
  readonly historyLimit: number;

  constructor(options: { historyLimit?: number; startAt?: number } = {}) {
    this.historyLimit = options.historyLimit ?? 10_000;
    this.#rv = options.startAt ?? 1;
    this.#oldest = this.#rv;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  get oldestResourceVersion(): number {
    return this.#oldest;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.#objects.get(resource)?.get(objectKey(namespace, name));
    return found ? structuredClone(found) : undefined;
  }

  /** Objects of a type, in one namespace or all, sorted by namespace and name like etcd keys. */
  list(resource: string, namespace?: string): KubeObject[] {
    const all = [...(this.#objects.get(resource)?.entries() ?? [])];
    return all
      .filter(([, o]) => namespace === undefined || o.metadata.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o));
  }

  /** Every type's objects: for garbage collection by owner and namespace deletion. */
  *everything(): Generator<[string, KubeObject]> {
    for (const [resource, objects] of this.#objects)
      for (const object of objects.values()) yield [resource, structuredClone(object)];
  }

  /** Stores an object (a new resourceVersion is assigned) and tells watchers. Returns what was stored. */
  put(resource: string, object: KubeObject): KubeObject {
    const key = objectKey(object.metadata.namespace, object.metadata.name as string);
    let objects = this.#objects.get(resource);
    if (!objects) {
      objects = new Map();
      this.#objects.set(resource, objects);
    }
    const previous = objects.get(key);
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.#rv);
    objects.set(key, stored);
    this.#record({ type: previous ? "MODIFIED" : "ADDED", resource, rv: this.#rv, object: stored, previous });
    return structuredClone(stored);
  }

  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const objects = this.#objects.get(resource);
    const key = objectKey(namespace, name);
    const previous = objects?.get(key);
    if (!objects || !previous) return undefined;
    objects.delete(key);
    const gone = structuredClone(previous);
    gone.metadata.resourceVersion = String(++this.#rv);
    this.#record({ type: "DELETED", resource, rv: this.#rv, object: gone, previous });
    return structuredClone(gone);
  }

  /** Changes after `rv`, or "expired" when history no longer reaches back that far. */
  since(rv: number): StoreEvent[] | "expired" {
    if (rv < this.#oldest) return "expired";
    const start = this.#history.findIndex((e) => e.rv > rv);
    return start === -1 ? [] : this.#history.slice(start);
  }

  /** Forgets all history, as etcd compaction does: every watch from an older resourceVersion gets 410. */
  expireHistory(): void {
    this.#history = [];
    this.#oldest = this.#rv;
  }

  subscribe(listener: StoreListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #record(event: StoreEvent): void {
    this.#history.push(event);
    if (this.#history.length > this.historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.historyLimit);
      this.#oldest = (dropped.at(-1) as StoreEvent).rv;
    }
    for (const listener of this.#listeners) listener(event);
  }
}
