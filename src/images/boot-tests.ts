// Boot tests of catalog entries: run one (the entry's image pulled into the store, verified, then booted
// by bootTest under the entry's firmware), keep the latest result of each entry in the data directory
// (<data dir>/boot-tests/<entry id>.json, written atomically: results survive a restart, and a result
// written by `osimg image test` is seen by a server on the same data directory), and the server's jobs:
// one at a time per entry, a few at a time in all, each cancelled when the server stops.
import { EventEmitter } from "node:events";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { FIRMWARES } from "../catalog/fields.ts";
import type { CatalogEntry } from "../catalog/model.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { type BootTestOptions, type BootTestResult, bootTest } from "./boot-test.ts";
import { pinnedDigest } from "./checksums.ts";
import type { ImageStore, PullProgress, StoredImage } from "./store.ts";

export const BootTestReport = z.object({
  ok: z.boolean(),
  firmware: z.enum(FIRMWARES),
  secureBoot: z.boolean().optional(),
  reason: z.string().optional().describe("why it failed"),
  timeToReadyMs: z.number().optional().describe("from QEMU's start to the test marker on the console"),
  readyLine: z.string().optional(),
  lastConsoleLines: z
    .array(z.string())
    .describe("the serial console's last lines (terminal escapes removed)"),
  accelerator: z.string().optional(),
  seen: z
    .object({ marker: z.boolean(), cloudInitFinished: z.boolean(), agent: z.boolean() })
    .optional()
    .describe("the test marker from user-data, cloud-init's finished line, a guest-agent answer"),
  image: z
    .object({
      url: z.string().optional(),
      sha256: z.string().optional().describe("of the image as stored (decompressed)"),
      downloadSha256: z.string().optional(),
      format: z.string().optional(),
      path: z.string().optional().describe("a file tested directly (osimg image test PATH)"),
    })
    .describe("what was booted"),
  startedAt: z.string(),
  finishedAt: z.string(),
});
export type BootTestReport = z.infer<typeof BootTestReport>;

export const EntryBootTest = z.object({
  entry: z.string(),
  state: z.enum(["pending", "running", "done"]).describe("pending: waiting for another boot test to end"),
  phase: z.enum(["pull", "boot"]).optional().describe("of a running test"),
  firmware: z.enum(FIRMWARES).optional().describe("of a pending or running test"),
  startedAt: z.string().optional().describe("of a pending or running test"),
  result: BootTestReport.optional().describe("the latest finished test (kept while another runs)"),
});
export type EntryBootTest = z.infer<typeof EntryBootTest>;

export interface BootTestRunOptions {
  store: ImageStore;
  timeoutMs: number;
  signal?: AbortSignal;
  onPhase?: (phase: "pull" | "boot") => void;
  onPullProgress?: (progress: PullProgress) => void;
  /** The boot test itself (tests may count calls); default bootTest. */
  run?: (options: BootTestOptions) => Promise<BootTestResult>;
}

/** What to boot, and how. */
export interface BootTestSubject {
  /** A URL (or file) to pull into the store first, or a disk image file to boot as it is. */
  source: { pull: string; pinnedSha256?: string; entryId?: string } | { path: string };
  firmware: "bios" | "efi";
  secureBoot?: boolean;
  cloudUser?: string;
  memoryMiB?: number;
  cpus?: number;
}

const MiB = 2 ** 20;

/** An image in the store: the one already pulled from this source (with the pinned digest), else pulled now. */
async function stored(
  source: { pull: string; pinnedSha256?: string; entryId?: string },
  options: BootTestRunOptions,
): Promise<StoredImage> {
  const pinned = pinnedDigest(source.pinnedSha256)?.digest;
  const known = await options.store.findBySource(source.pull);
  if (known && (!pinned || known.sha256 === pinned || known.download.sha256 === pinned)) return known;
  return options.store.pull(source.pull, {
    ...(source.entryId ? { catalogEntry: source.entryId } : {}),
    ...(source.pinnedSha256 ? { pinnedSha256: source.pinnedSha256 } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPullProgress ? { onProgress: options.onPullProgress } : {}),
  });
}

/** Boot-tests an image. Never throws for the image's faults (unreachable, unsafe, does not boot): they are the report's reason. */
export async function bootTestImage(
  subject: BootTestSubject,
  options: BootTestRunOptions,
): Promise<BootTestReport> {
  const startedAt = new Date().toISOString();
  const { firmware, source } = subject;
  const report = (result: Omit<BootTestResult, "firmware">, image: BootTestReport["image"]) =>
    BootTestReport.parse({
      ...result,
      firmware,
      ...(subject.secureBoot ? { secureBoot: true } : {}),
      image,
      startedAt,
      finishedAt: new Date().toISOString(),
    });
  let path: string;
  let format: string | undefined;
  let described: BootTestReport["image"];
  if ("path" in source) {
    path = source.path;
    described = { path };
  } else {
    options.onPhase?.("pull");
    let image: StoredImage;
    try {
      image = await stored(source, options);
    } catch (error) {
      const reason = `the image could not be pulled: ${(error as Error).message}`;
      return report({ ok: false, reason, lastConsoleLines: [] }, { url: source.pull });
    }
    path = options.store.pathOf(image.sha256);
    format = image.format;
    described = { url: source.pull, sha256: image.sha256, downloadSha256: image.download.sha256, format };
  }
  if (format === "iso")
    return report(
      {
        ok: false,
        reason: "the image is an installer ISO: boot tests start disk images that run cloud-init",
        lastConsoleLines: [],
      },
      described,
    );
  options.onPhase?.("boot");
  const result = await (options.run ?? bootTest)({
    image: path,
    ...(format ? { imageFormat: format } : {}),
    firmware,
    ...(subject.secureBoot ? { secureBoot: true } : {}),
    timeoutMs: options.timeoutMs,
    ...(subject.cloudUser ? { cloudUser: subject.cloudUser } : {}),
    ...(subject.memoryMiB ? { memoryMiB: subject.memoryMiB } : {}),
    ...(subject.cpus ? { cpus: subject.cpus } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return report(result, described);
}

/**
 * A catalog entry as a boot test runs it: its image (pulled with its OS_IMAGE_SHA256), its firmware (secure
 * boot for FEATURES smm under UEFI, as the provider runs it), its CLOUD_USER, and its minimums with at least
 * 1 GiB of memory (cloud images want it) and 1-2 vCPUs. Undefined when the entry has no OS_IMAGE_URL.
 */
export function entrySubject(entry: CatalogEntry, firmware?: "bios" | "efi"): BootTestSubject | undefined {
  if (!entry.spec.imageUrl) return undefined;
  const chosen = firmware ?? entry.spec.firmware;
  return {
    source: {
      pull: entry.spec.imageUrl,
      entryId: entry.id,
      ...(entry.spec.sha256 ? { pinnedSha256: entry.spec.sha256 } : {}),
    },
    firmware: chosen,
    secureBoot: chosen === "efi" && entry.spec.features.includes("smm"),
    ...(entry.spec.cloudUser ? { cloudUser: entry.spec.cloudUser } : {}),
    memoryMiB: Math.max(1024, Math.ceil((entry.spec.minMemoryBytes ?? 0) / MiB)),
    cpus: Math.min(2, Math.max(1, entry.spec.minVcpu ?? 1)),
  };
}

/** Whether a stored result is about the entry's image as the catalog names it now. */
function current(entry: CatalogEntry, report: BootTestReport): boolean {
  if (report.image.url !== entry.spec.imageUrl) return false;
  const pinned = pinnedDigest(entry.spec.sha256)?.digest;
  return !pinned || report.image.sha256 === pinned || report.image.downloadSha256 === pinned;
}

export class BootTestBusy extends Error {
  override name = "BootTestBusy";
}

export interface BootTestsOptions {
  /** Where results are kept: <data dir>/boot-tests. */
  dir: string;
  store: ImageStore;
  logger?: Logger;
  /** Boot tests running at once (each is a VM). Default 1. */
  concurrency?: number;
  run?: BootTestRunOptions["run"];
}

interface Job {
  state: EntryBootTest;
  entry: CatalogEntry;
  options: { firmware?: "bios" | "efi"; timeoutMs: number };
  abort: AbortController;
}

export class BootTests extends EventEmitter<{ update: [EntryBootTest] }> {
  readonly #options: BootTestsOptions;
  readonly #results = new Map<string, BootTestReport>();
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  readonly #running = new Set<Promise<void>>();
  #loadedStamp = "";
  #lastRefresh = 0;
  #refreshing: Promise<void> | undefined;
  #closed = false;

  constructor(options: BootTestsOptions) {
    super();
    this.#options = options;
    this.setMaxListeners(0);
  }

  static forDataDir(dataDir: string, options: Omit<BootTestsOptions, "dir">): BootTests {
    return new BootTests({ ...options, dir: join(dataDir, "boot-tests") });
  }

  /** The file of an entry's result. Entry ids are URL-safe slugs ([a-z0-9.-], no leading dot). */
  #file(entryId: string): string {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(entryId)) throw new Error(`"${entryId}" is not a catalog entry id`);
    return join(this.#options.dir, `${entryId}.json`);
  }

  /** Reads the results (again, when the directory changed: a result written here or by the CLI). */
  async load(): Promise<void> {
    const info = await stat(this.#options.dir).catch(() => undefined);
    const stamp = info ? `${info.mtimeMs}:${info.ctimeMs}` : "";
    if (stamp === this.#loadedStamp) return;
    this.#loadedStamp = stamp;
    const names = info ? await readdir(this.#options.dir) : [];
    this.#results.clear();
    for (const name of names.filter((n) => n.endsWith(".json") && !n.startsWith("."))) {
      try {
        const stored = BootTestReport.parse(
          JSON.parse(await readFile(join(this.#options.dir, name), "utf8")),
        );
        this.#results.set(name.slice(0, -".json".length), stored);
      } catch (error) {
        this.#options.logger?.warn({ file: name, err: error }, "unreadable boot-test result ignored");
      }
    }
  }

  /** Keeps an entry's latest result (atomically: a reader sees the old one or the new one). */
  async record(entryId: string, report: BootTestReport): Promise<void> {
    await mkdir(this.#options.dir, { recursive: true });
    await writeFileAtomic(this.#file(entryId), `${JSON.stringify(report, null, 2)}\n`);
    this.#results.set(entryId, report);
  }

  /** An entry's boot test: under way, or its latest result (whatever image it was about). */
  async get(entryId: string): Promise<EntryBootTest | undefined> {
    await this.load();
    return this.#view(entryId);
  }

  #view(entryId: string, entry?: CatalogEntry): EntryBootTest | undefined {
    const stored = this.#results.get(entryId);
    const result = stored && (!entry || current(entry, stored)) ? stored : undefined;
    const job = this.#jobs.get(entryId);
    if (job) return { ...job.state, ...(result ? { result } : {}) };
    return result && { entry: entryId, state: "done", result };
  }

  /**
   * Per entry of the catalog: its test under way and its latest result about the image it names now.
   * Answers from memory (the catalog is served often); the directory is looked at again in the background
   * at most twice a second, so a result written by `osimg image test` shows within a second.
   */
  forCatalog(entries: readonly CatalogEntry[]): Record<string, EntryBootTest> {
    if (!this.#refreshing && Date.now() - this.#lastRefresh >= 500) {
      this.#lastRefresh = Date.now();
      this.#refreshing = this.load()
        .catch((error: unknown) => this.#options.logger?.warn({ err: error }, "boot-test results unreadable"))
        .finally(() => {
          this.#refreshing = undefined;
        });
    }
    const out: Record<string, EntryBootTest> = {};
    for (const entry of entries) {
      const view = this.#view(entry.id, entry);
      if (view) out[entry.id] = view;
    }
    return out;
  }

  /** Queues a boot test of the entry; throws BootTestBusy while one of it is pending or running. */
  start(entry: CatalogEntry, options: { firmware?: "bios" | "efi"; timeoutMs: number }): EntryBootTest {
    if (this.#closed) throw new Error("boot tests are stopped");
    if (this.#jobs.has(entry.id))
      throw new BootTestBusy(
        `a boot test of "${entry.id}" is already ${this.#jobs.get(entry.id)?.state.state}`,
      );
    const job: Job = {
      entry,
      options,
      abort: new AbortController(),
      state: {
        entry: entry.id,
        state: "pending",
        firmware: options.firmware ?? entry.spec.firmware,
        startedAt: new Date().toISOString(),
      },
    };
    this.#jobs.set(entry.id, job);
    this.#queue.push(job);
    this.#pump();
    return this.#view(entry.id) as EntryBootTest;
  }

  #pump(): void {
    const limit = this.#options.concurrency ?? 1;
    while (!this.#closed && this.#running.size < limit && this.#queue.length > 0) {
      const job = this.#queue.shift() as Job;
      const running = this.#run(job).finally(() => {
        this.#running.delete(running);
        this.#pump();
      });
      this.#running.add(running);
    }
  }

  async #run(job: Job): Promise<void> {
    const { entry } = job;
    const update = (patch: Partial<EntryBootTest>) => {
      job.state = { ...job.state, ...patch };
      this.emit("update", this.#view(entry.id) as EntryBootTest);
    };
    update({ state: "running", phase: "pull" });
    this.#options.logger?.info({ entry: entry.id, firmware: job.state.firmware }, "boot test started");
    try {
      const subject = entrySubject(entry, job.options.firmware);
      if (!subject) throw new Error(`entry "${entry.id}" has no OS_IMAGE_URL`);
      const report = await bootTestImage(subject, {
        store: this.#options.store,
        timeoutMs: job.options.timeoutMs,
        signal: job.abort.signal,
        onPhase: (phase) => update({ phase }),
        ...(this.#options.run ? { run: this.#options.run } : {}),
      });
      // A test cut short by a stopping server says nothing about the image: not recorded.
      if (!job.abort.signal.aborted) {
        await this.record(entry.id, report);
        this.#options.logger?.info(
          { entry: entry.id, ok: report.ok, ms: report.timeToReadyMs, reason: report.reason },
          "boot test finished",
        );
      }
    } catch (error) {
      this.#options.logger?.error({ entry: entry.id, err: error }, "boot test crashed");
    } finally {
      this.#jobs.delete(entry.id);
      const done = this.#view(entry.id);
      this.emit("update", done ?? { entry: entry.id, state: "done" });
    }
  }

  /** Cancels queued and running tests (their VMs are removed) and waits for them to end. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) this.#jobs.delete(job.entry.id);
    for (const job of this.#jobs.values()) job.abort.abort();
    await Promise.allSettled([...this.#running]);
  }
}
