// Pulls started through the API: each one a job whose progress can be polled or followed as events.
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { PullJob } from "./schemas.ts";
import { type ImageStore, PullError, type PullOptions, type PullProgress } from "./store.ts";

const KEEP_FINISHED = 100;

export class PullJobs extends EventEmitter<{ update: [PullJob] }> {
  readonly store: ImageStore;
  readonly #jobs = new Map<string, PullJob>();

  constructor(store: ImageStore) {
    super();
    this.store = store;
    this.setMaxListeners(0);
  }

  get(id: string): PullJob | undefined {
    return this.#jobs.get(id);
  }

  list(): PullJob[] {
    return [...this.#jobs.values()];
  }

  /** Starts a pull; a running job of the same source is returned instead of a second one. */
  start(source: string, options: Omit<PullOptions, "onProgress"> & { entry?: string } = {}): PullJob {
    const running = this.list().find((j) => j.source === source && j.state === "running");
    if (running) return running;
    const job: PullJob = {
      id: randomUUID(),
      source,
      ...(options.entry ? { entry: options.entry } : {}),
      state: "running",
      progress: { phase: "probe", received: 0 },
      startedAt: new Date().toISOString(),
    };
    this.#jobs.set(job.id, job);
    this.#prune();
    const update = () => this.emit("update", job);
    this.store
      .pull(source, {
        ...options,
        ...(options.entry ? { catalogEntry: options.entry } : {}),
        onProgress: (p: PullProgress) => {
          job.progress = p;
          update();
        },
      })
      .then((image) => {
        job.state = "done";
        job.image = image;
      })
      .catch((error: Error) => {
        job.state = "failed";
        job.error = {
          code: error instanceof PullError ? error.code : "failed",
          message: error.message,
          ...(error instanceof PullError && error.verdict ? { safety: error.verdict } : {}),
        };
      })
      .finally(() => {
        job.finishedAt = new Date().toISOString();
        update();
      });
    return job;
  }

  #prune(): void {
    const finished = this.list().filter((j) => j.state !== "running");
    for (const j of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#jobs.delete(j.id);
  }
}
