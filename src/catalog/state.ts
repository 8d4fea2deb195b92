// The catalog being served and the outcome of the last reload. A candidate with errors never replaces
// the served catalog (the last good one); its findings are kept for the API, the logs and the metrics.
//
// Project overlays: catalogs that add entries to one namespace only (a ConfigMap labelled
// osimg.io/catalog=true there). Each overlay keeps its last good version the same way. An overlay entry
// whose OS_NAME is already in the global catalog (or in another overlay of the namespace) is an error
// and is left out: overlays add, they never override. Each namespace with overlays has its Kube-DC body
// precomputed, rebuilt when the global catalog or one of its overlays changes; every other namespace is
// answered with the global body, so serving costs one map lookup more.
import { EventEmitter } from "node:events";
import { type Catalog, isServable, type ServedCatalog, serve } from "./catalog.ts";
import type { Finding } from "./findings.ts";
import type { CatalogEntry } from "./model.ts";

export interface ReloadResult {
  at: Date;
  ok: boolean;
  version: string;
  source: Catalog["source"];
  /** The candidate's findings: when !ok, why it is not served. */
  findings: Finding[];
}

export interface CatalogStateEvents {
  served: [ServedCatalog];
  rejected: [ReloadResult];
  /** An overlay was offered (ok: served) or removed (ok: true, catalog undefined). */
  overlay: [{ namespace: string; name: string; ok: boolean; reload?: ReloadResult }];
}

export interface OverlayState {
  namespace: string;
  name: string;
  /** The overlay's last good catalog, served in its namespace. */
  served: Catalog | undefined;
  lastReload: ReloadResult | undefined;
  /** Entries left out because their OS_NAME is taken: errors at the entry's position. */
  conflicts: Finding[];
}

/** What one namespace sees: the global entries, then its overlays' entries. */
export interface NamespaceView {
  entries: readonly CatalogEntry[];
  kubeDcBody: Buffer;
  kubeDcEtag: string;
}

export class CatalogState extends EventEmitter<CatalogStateEvents> {
  #served: ServedCatalog | undefined;
  #lastReload: ReloadResult | undefined;
  /** namespace → overlay name → state. */
  readonly #overlays = new Map<string, Map<string, OverlayState>>();
  /** Precomputed views of the namespaces that have overlays. */
  readonly #views = new Map<string, NamespaceView>();

  /** The catalog being served, or undefined before any good one was loaded. */
  get served(): ServedCatalog | undefined {
    return this.#served;
  }

  get lastReload(): ReloadResult | undefined {
    return this.#lastReload;
  }

  /** True while the served catalog is an older one because the latest candidate has errors. */
  get servingLastGood(): boolean {
    return this.#lastReload !== undefined && !this.#lastReload.ok && this.#served !== undefined;
  }

  /** Offers a candidate: it is served when it has no errors. Returns whether it was. */
  offer(candidate: Catalog): boolean {
    const ok = isServable(candidate);
    this.#lastReload = {
      at: new Date(),
      ok,
      version: candidate.version,
      source: candidate.source,
      findings: candidate.findings,
    };
    if (!ok) {
      this.emit("rejected", this.#lastReload);
      return false;
    }
    if (
      this.#served?.catalog.version !== candidate.version ||
      this.#served.catalog.source.kind !== candidate.source.kind
    ) {
      this.#served = serve(candidate);
      this.#rebuildViews();
      this.emit("served", this.#served);
    }
    return true;
  }

  /** Serves a previously good catalog (saved on disk) without changing the last reload's outcome. */
  restore(lastGood: Catalog): void {
    if (this.#served || !isServable(lastGood)) return;
    this.#served = serve(lastGood);
    this.#rebuildViews();
    this.emit("served", this.#served);
  }

  // --- project overlays --------------------------------------------------------------------------------

  /** What a namespace sees; undefined before any global catalog is served. */
  view(namespace: string): NamespaceView | undefined {
    const served = this.#served;
    if (!served) return undefined;
    return (
      this.#views.get(namespace) ?? {
        entries: served.catalog.entries,
        kubeDcBody: served.kubeDcBody,
        kubeDcEtag: served.kubeDcEtag,
      }
    );
  }

  /** The entries a VM in this namespace may be created from. */
  entriesFor(namespace: string): readonly CatalogEntry[] {
    return this.view(namespace)?.entries ?? [];
  }

  overlay(namespace: string, name: string): OverlayState | undefined {
    return this.#overlays.get(namespace)?.get(name);
  }

  /** Every overlay (of one namespace when given), sorted by namespace and name. */
  overlays(namespace?: string): OverlayState[] {
    const namespaces = namespace === undefined ? [...this.#overlays.keys()].sort() : [namespace];
    return namespaces.flatMap((ns) =>
      [...(this.#overlays.get(ns)?.values() ?? [])].sort((a, b) => a.name.localeCompare(b.name)),
    );
  }

  /** Offers a version of an overlay: served in its namespace when it has no errors. Returns whether it was. */
  offerOverlay(namespace: string, name: string, candidate: Catalog): boolean {
    const ok = isServable(candidate);
    let byName = this.#overlays.get(namespace);
    if (!byName) {
      byName = new Map();
      this.#overlays.set(namespace, byName);
    }
    const state: OverlayState = byName.get(name) ?? {
      namespace,
      name,
      served: undefined,
      lastReload: undefined,
      conflicts: [],
    };
    byName.set(name, state);
    state.lastReload = {
      at: new Date(),
      ok,
      version: candidate.version,
      source: candidate.source,
      findings: candidate.findings,
    };
    if (ok) {
      state.served = candidate;
      this.#rebuildView(namespace);
    }
    this.emit("overlay", { namespace, name, ok, reload: state.lastReload });
    return ok;
  }

  removeOverlay(namespace: string, name: string): void {
    const byName = this.#overlays.get(namespace);
    if (!byName?.delete(name)) return;
    if (byName.size === 0) this.#overlays.delete(namespace);
    this.#rebuildView(namespace);
    this.emit("overlay", { namespace, name, ok: true });
  }

  #rebuildViews(): void {
    for (const namespace of this.#overlays.keys()) this.#rebuildView(namespace);
  }

  #rebuildView(namespace: string): void {
    const overlays = this.overlays(namespace);
    const global = this.#served;
    if (overlays.length === 0 || !global) {
      this.#views.delete(namespace);
      for (const o of overlays) o.conflicts = [];
      return;
    }
    const taken = new Map<string, string>();
    for (const e of global.catalog.entries)
      if (e.spec.name !== undefined)
        taken.set(e.spec.name, `the global catalog (${global.catalog.source.location})`);
    const entries: CatalogEntry[] = [...global.catalog.entries];
    for (const overlay of overlays) {
      overlay.conflicts = [];
      for (const entry of overlay.served?.entries ?? []) {
        const name = entry.spec.name as string;
        const owner = taken.get(name);
        if (owner) {
          overlay.conflicts.push({
            severity: "error",
            code: "overlay.duplicate_name",
            path: `images[${entry.index}].OS_NAME`,
            line: entry.line,
            column: entry.column,
            message: `OS_NAME "${name}" is already in ${owner}; an overlay adds entries, it cannot replace them, so this entry is left out`,
            hint: `give the entry its own OS_NAME, such as "${name} (${namespace})"`,
          });
          continue;
        }
        taken.set(name, `overlay ${namespace}/${overlay.name}`);
        entries.push(entry);
      }
    }
    // The same precomputed body and ETag as the global catalog's, over the namespace's entries.
    const { kubeDcBody, kubeDcEtag } = serve({ ...global.catalog, entries });
    this.#views.set(namespace, { entries, kubeDcBody, kubeDcEtag });
  }
}
