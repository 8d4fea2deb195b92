// A catalog file, watched: a change is served as soon as it is written, including by editors that
// replace the file by rename and by Kubernetes' ConfigMap volumes (a `..data` symlink swapped in the
// directory). The directory is watched, with a slow stat poll as a safety net for filesystems without
// inotify. The last good catalog is saved in the data directory and served after a restart that finds
// the file broken.
import { type FSWatcher, watch } from "node:fs";
import { access, constants, readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../../util/atomic-write.ts";
import {
  buildCatalog,
  type Catalog,
  type CatalogSource,
  catalogVersion,
  isServable,
  unreadableCatalog,
} from "../catalog.ts";
import type { CatalogState } from "../state.ts";
import type { EditableSource, SourceText, WriteResult } from "./editable.ts";

export interface FileSourceOptions {
  path: string;
  state: CatalogState;
  logger: Logger;
  kind?: "file" | "builtin";
  /** Where the last good catalog is kept across restarts; none when undefined. */
  lastGoodPath?: string;
  debounceMs?: number;
  pollMs?: number;
}

interface SavedCatalog {
  location: string;
  version: string;
  savedAt: string;
  text: string;
}

export class FileCatalogSource implements EditableSource {
  readonly #options: Required<Omit<FileSourceOptions, "lastGoodPath">> & { lastGoodPath?: string };
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #lastText: string | undefined;
  #lastStat = "";
  #writing: Promise<unknown> = Promise.resolve();

  constructor(options: FileSourceOptions) {
    this.#options = { kind: "file", debounceMs: 20, pollMs: 2000, ...options };
  }

  get source(): CatalogSource {
    return { kind: this.#options.kind, location: this.#options.path };
  }

  async start(): Promise<void> {
    await this.reload();
    if (!this.#options.state.served) await this.#restoreLastGood();
    const file = basename(this.#options.path);
    this.#watcher = watch(dirname(this.#options.path), { persistent: false }, (_event, name) => {
      if (name === null || name === file || name.startsWith("..")) this.#schedule();
    });
    this.#watcher.on("error", (error) =>
      this.#options.logger.warn({ err: error }, "catalog watch failed; polling only"),
    );
    this.#poll = setInterval(() => void this.#pollOnce(), this.#options.pollMs);
    this.#poll.unref();
  }

  stop(): void {
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  /** Reads the file and offers it to the state; overlapping calls are coalesced into one more read. */
  reload(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async readText(): Promise<SourceText> {
    const text = await readFile(this.#options.path, "utf8");
    return { text, version: catalogVersion(text) };
  }

  /** Replaces the file when it is still at `expectedVersion` and `text` has no errors; then serves it. */
  writeText(text: string, expectedVersion: string): Promise<WriteResult> {
    // Writes through the API are serialized, so that two saves from the same version cannot both pass.
    const result = this.#writing.then(() => this.#writeOnce(text, expectedVersion));
    this.#writing = result.catch(() => undefined);
    return result;
  }

  async #writeOnce(text: string, expectedVersion: string): Promise<WriteResult> {
    const { path } = this.#options;
    const candidate = buildCatalog(text, this.source);
    if (!isServable(candidate)) return { ok: false, reason: "invalid", findings: candidate.findings };
    const current = await this.readText().catch(() => undefined);
    if (current && current.version !== expectedVersion)
      return { ok: false, reason: "conflict", version: current.version };
    if (!(await isWritable(path))) {
      return {
        ok: false,
        reason: "read-only",
        message: `${path} cannot be written by osimg (a mounted ConfigMap, or permissions)`,
      };
    }
    const mode = (await stat(path).catch(() => undefined))?.mode ?? 0o644;
    await writeFileAtomic(path, text, mode & 0o777);
    await this.reload();
    return { ok: true, version: candidate.version };
  }

  #schedule(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.reload(), this.#options.debounceMs);
  }

  async #pollOnce(): Promise<void> {
    const s = await stat(this.#options.path).catch(() => undefined);
    const key = s ? `${s.ino}:${s.size}:${s.mtimeMs}` : "missing";
    if (key !== this.#lastStat) {
      this.#lastStat = key;
      this.#schedule();
    }
  }

  async #readOnce(): Promise<void> {
    const { path, state, logger } = this.#options;
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if (this.#lastText === "") return;
      this.#lastText = "";
      state.offer(
        unreadableCatalog(
          this.source,
          `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        ),
      );
      logger.error({ path }, "catalog file cannot be read; serving the last good catalog");
      return;
    }
    if (text === this.#lastText) return;
    this.#lastText = text;
    const candidate = buildCatalog(text, this.source);
    if (state.offer(candidate)) await this.#saveLastGood(candidate);
  }

  async #saveLastGood(catalog: Catalog): Promise<void> {
    if (!this.#options.lastGoodPath) return;
    const saved: SavedCatalog = {
      location: this.#options.path,
      version: catalog.version,
      savedAt: new Date().toISOString(),
      text: catalog.text,
    };
    try {
      await writeFileAtomic(this.#options.lastGoodPath, JSON.stringify(saved));
    } catch (error) {
      this.#options.logger.warn({ err: error }, "cannot save the last good catalog");
    }
  }

  async #restoreLastGood(): Promise<void> {
    if (!this.#options.lastGoodPath) return;
    let saved: SavedCatalog;
    try {
      saved = JSON.parse(await readFile(this.#options.lastGoodPath, "utf8")) as SavedCatalog;
    } catch {
      return;
    }
    if (saved.location !== this.#options.path) return;
    this.#options.state.restore(
      buildCatalog(saved.text, { kind: "last-good", location: this.#options.lastGoodPath }),
    );
    this.#options.logger.warn(
      { savedAt: saved.savedAt },
      "catalog file has errors; serving the last good catalog saved before the restart",
    );
  }
}

async function isWritable(path: string): Promise<boolean> {
  try {
    await access(dirname(path), constants.W_OK);
    const s = await stat(path).catch(() => undefined);
    // A ConfigMap volume mounts the file as a symlink into a read-only ..data directory.
    return (
      s === undefined ||
      (await access(path, constants.W_OK).then(
        () => true,
        () => false,
      ))
    );
  } catch {
    return false;
  }
}
