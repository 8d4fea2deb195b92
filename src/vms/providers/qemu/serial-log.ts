// Reading a VM's serial console from the log file QEMU appends it to: line by line as it grows (readiness,
// boot tests), and its last lines for people (a failed boot test, a VM that never became Ready).
import { type FSWatcher, watch } from "node:fs";
import { open, stat } from "node:fs/promises";

/** The line cloud-init prints on the console when it has finished (the micro test guest prints one too). */
export const CLOUD_INIT_FINISHED = /Cloud-init v\. \S+ finished at/;

/** The longest line kept whole: a guest that never prints a newline cannot make us buffer without end. */
const MAX_LINE = 64 * 1024;

/** Terminal control sequences (colours, cursor moves, screen clears) and other control characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is being removed
const CONTROL = /\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>78]|[\x00-\x08\x0b-\x1f\x7f]/g;

/** A console line as a person reads it: no escape sequences, no carriage returns, no trailing blanks. */
export function cleanConsoleLine(line: string): string {
  return line.replace(CONTROL, "").trimEnd();
}

/**
 * Follows a log file from a byte offset: each `next()` returns the complete lines written since the last
 * call (cleaned). A line still being written is kept until its newline arrives. A missing file reads as
 * empty (QEMU creates it when it starts).
 */
export class LogFollower {
  readonly path: string;
  #offset: number;
  #partial = "";

  constructor(path: string, fromOffset = 0) {
    this.path = path;
    this.#offset = fromOffset;
  }

  /** The byte offset read up to. */
  get offset(): number {
    return this.#offset;
  }

  async next(): Promise<string[]> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size <= this.#offset) return [];
      const buffer = Buffer.alloc(size - this.#offset);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.#offset);
      this.#offset += bytesRead;
      // latin1: every byte is one character, so a UTF-8 sequence cut by a read cannot throw or vanish.
      const text = this.#partial + buffer.toString("latin1", 0, bytesRead);
      const lines = text.split("\n");
      this.#partial = (lines.pop() ?? "").slice(-MAX_LINE);
      return lines.map(cleanConsoleLine);
    } finally {
      await handle.close();
    }
  }
}

/** The size of a file in bytes (0 when it does not exist): where a follower starts to see only what comes next. */
export async function logSize(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

/** The last `count` non-empty lines of a console log, cleaned; reads only the file's end. */
export async function lastConsoleLines(path: string, count = 20, fromOffset = 0): Promise<string[]> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch {
    return [];
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(fromOffset, size - Math.max(4096, count * 512));
    if (size <= start) return [];
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    const lines = buffer.toString("latin1").split("\n");
    if (start > fromOffset) lines.shift(); // the first one is cut
    // A line redrawn in place (a progress counter) shows as its last state.
    return lines
      .map((l) =>
        cleanConsoleLine(
          l
            .split("\r")
            .filter((part) => part.trim() !== "")
            .pop() ?? "",
        ),
      )
      .filter((l) => l.trim() !== "")
      .slice(-count);
  } finally {
    await handle.close();
  }
}

/**
 * Wakes a loop that polls a log as soon as the file changes (inotify), or after its interval when nothing
 * is written: readiness is seen the moment its line is written, without polling fast. Where the file cannot
 * be watched, waiting is plain sleeping.
 */
export class LogChanges {
  #watcher: FSWatcher | undefined;
  #wake: (() => void) | undefined;

  constructor(path: string) {
    try {
      this.#watcher = watch(path, { persistent: false }, () => this.#wake?.());
      this.#watcher.on("error", () => this.close());
    } catch {
      this.#watcher = undefined;
    }
  }

  /** Resolves at the next change of the file, after `ms`, or when `signal` aborts. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      if (signal?.aborted) done();
      else signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Ends the current wait now (something else the loop waits for happened). */
  poke(): void {
    this.#wake?.();
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#wake?.();
  }
}
