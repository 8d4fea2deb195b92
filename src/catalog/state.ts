// The catalog being served and the outcome of the last reload. A candidate with errors never replaces
// the served catalog (the last good one); its findings are kept for the API, the logs and the metrics.
import { EventEmitter } from "node:events";
import { type Catalog, isServable, type ServedCatalog, serve } from "./catalog.ts";
import type { Finding } from "./findings.ts";

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
}

export class CatalogState extends EventEmitter<CatalogStateEvents> {
  #served: ServedCatalog | undefined;
  #lastReload: ReloadResult | undefined;

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
      this.emit("served", this.#served);
    }
    return true;
  }

  /** Serves a previously good catalog (saved on disk) without changing the last reload's outcome. */
  restore(lastGood: Catalog): void {
    if (this.#served || !isServable(lastGood)) return;
    this.#served = serve(lastGood);
    this.emit("served", this.#served);
  }
}
