// The server's catalog verifier: every entry's image checked in the background when the catalog changes
// and again on a schedule, a few at a time. Serving the catalog never waits for it: the results are read
// from memory, and an entry being (re)checked keeps showing its previous result.
import type { Logger } from "pino";
import type { CatalogEntry } from "../catalog/model.ts";
import type { CatalogState } from "../catalog/state.ts";
import type { FetchPolicy } from "./fetch-policy.ts";
import { type EntryCheck, type VerifyOptions, verifyEntry } from "./verify.ts";

export interface EntryVerification {
  entry: string;
  state: "pending" | "running" | "done";
  url?: string;
  check?: EntryCheck;
}

export interface VerifierOptions {
  state: CatalogState;
  policy: FetchPolicy;
  logger?: Logger;
  /** Re-check every entry this often (ms); 0 disables the schedule. Default 6 hours. */
  intervalMs?: number;
  concurrency?: number;
  timeoutMs?: number;
  /** The check itself (tests replace it). */
  verify?: (entry: CatalogEntry, options: VerifyOptions) => Promise<EntryCheck>;
}

/** What makes an entry's check stale: its URL, pinned checksum or minimum storage changed. */
function fingerprint(entry: CatalogEntry): string {
  return JSON.stringify([entry.spec.imageUrl, entry.spec.sha256, entry.spec.minStorageBytes]);
}

interface Slot extends EntryVerification {
  fingerprint: string;
  entryRef: CatalogEntry;
}

export class CatalogVerifier {
  readonly #options: VerifierOptions;
  readonly #slots = new Map<string, Slot>();
  readonly #queue: string[] = [];
  #running = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #onServed = () => this.#sync(false);

  constructor(options: VerifierOptions) {
    this.#options = options;
  }

  start(): void {
    this.#options.state.on("served", this.#onServed);
    if (this.#options.state.served) this.#sync(false);
    const interval = this.#options.intervalMs ?? 6 * 3600_000;
    if (interval > 0) {
      this.#timer = setInterval(() => this.#sync(true), interval);
      this.#timer.unref();
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#options.state.off("served", this.#onServed);
    if (this.#timer) clearInterval(this.#timer);
    this.#queue.length = 0;
  }

  /** The latest state of every entry of the served catalog, by entry id. */
  results(): Record<string, EntryVerification> {
    const out: Record<string, EntryVerification> = {};
    for (const [id, s] of this.#slots)
      out[id] = {
        entry: s.entry,
        state: s.state,
        ...(s.url ? { url: s.url } : {}),
        ...(s.check ? { check: s.check } : {}),
      };
    return out;
  }

  /** Checks one entry now (the API's POST .../verify) and records the result. */
  async verifyNow(id: string): Promise<EntryCheck | undefined> {
    const entry = this.#options.state.served?.catalog.entries.find((e) => e.id === id);
    if (!entry) return undefined;
    const check = await this.#check(entry);
    const slot = this.#slots.get(id);
    if (slot && slot.fingerprint === fingerprint(entry)) {
      slot.check = check;
      if (slot.state !== "running") slot.state = "done";
    }
    return check;
  }

  /** Catalog changed (or the schedule fired): new and changed entries are queued, removed ones dropped. */
  #sync(all: boolean): void {
    if (this.#stopped) return;
    const entries = this.#options.state.served?.catalog.entries ?? [];
    const ids = new Set(entries.map((e) => e.id));
    for (const id of [...this.#slots.keys()]) if (!ids.has(id)) this.#slots.delete(id);
    for (const entry of entries) {
      const fp = fingerprint(entry);
      const slot = this.#slots.get(entry.id);
      if (slot && slot.fingerprint === fp && !all) {
        slot.entryRef = entry;
        continue;
      }
      const keep = slot && slot.fingerprint === fp ? slot.check : undefined;
      this.#slots.set(entry.id, {
        entry: entry.id,
        state: "pending",
        ...(entry.spec.imageUrl ? { url: entry.spec.imageUrl } : {}),
        ...(keep ? { check: keep } : {}),
        fingerprint: fp,
        entryRef: entry,
      });
      if (!this.#queue.includes(entry.id)) this.#queue.push(entry.id);
    }
    this.#pump();
  }

  #pump(): void {
    const limit = this.#options.concurrency ?? 2;
    while (!this.#stopped && this.#running < limit && this.#queue.length > 0) {
      const id = this.#queue.shift() as string;
      const slot = this.#slots.get(id);
      if (!slot) continue;
      slot.state = "running";
      const fp = slot.fingerprint;
      this.#running++;
      this.#check(slot.entryRef)
        .then((check) => {
          const now = this.#slots.get(id);
          if (now && now.fingerprint === fp) {
            now.check = check;
            now.state = "done";
            if (!check.ok)
              this.#options.logger?.warn(
                {
                  entry: id,
                  problems: check.problems.filter((p) => p.severity === "error").map((p) => p.message),
                },
                "catalog entry image check failed",
              );
          }
        })
        .catch((error) =>
          this.#options.logger?.error({ entry: id, err: error }, "catalog entry image check crashed"),
        )
        .finally(() => {
          this.#running--;
          this.#pump();
        });
    }
  }

  #check(entry: CatalogEntry): Promise<EntryCheck> {
    const verify = this.#options.verify ?? verifyEntry;
    return verify(entry, {
      policy: this.#options.policy,
      timeoutMs: this.#options.timeoutMs ?? 10_000,
    });
  }
}
