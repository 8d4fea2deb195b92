// The audit log: append-only JSON lines — who, what, which project and object, the result, the request
// id, the time — for every mutating call, every refusal and every console session. One 0600 file in the
// data directory, rotated by size (audit.log → audit.log.1 … audit.log.N, the oldest dropped). Writes
// are queued in order; a failing disk never fails the request that is being audited (it is logged).
import { chmod, type FileHandle, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";

export const AuditEvent = z.object({
  time: z.string(),
  requestId: z.string(),
  who: z.object({ subject: z.string(), name: z.string(), via: z.string() }),
  ip: z.string().optional(),
  action: z.string(),
  method: z.string(),
  path: z.string(),
  namespace: z.string().optional(),
  object: z.string().optional(),
  /** success: done; denied: refused by authentication, authorization, a rate limit or a quota; error: failed. */
  result: z.enum(["success", "denied", "error"]),
  status: z.number(),
  /** Console sessions: opened, closed (with durationMs and bytes), failed. */
  event: z.string().optional(),
  durationMs: z.number().optional(),
  bytes: z.object({ in: z.number(), out: z.number() }).optional(),
  reason: z.string().optional(),
});
export type AuditEvent = z.infer<typeof AuditEvent>;

export interface AuditLogOptions {
  path: string;
  /** Rotate when the file would grow past this; default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept; default 5. */
  keep?: number;
  logger?: Logger;
}

export function auditLogPath(dataDir: string): string {
  return join(dataDir, "audit", "audit.log");
}

export function resultOf(status: number): AuditEvent["result"] {
  if (status === 401 || status === 403 || status === 429) return "denied";
  return status < 400 ? "success" : "error";
}

export class AuditLog {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #logger: Logger | undefined;
  #handle: FileHandle | undefined;
  #size = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: AuditLogOptions) {
    this.path = options.path;
    this.#maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
    this.#keep = Math.max(1, options.keep ?? 5);
    this.#logger = options.logger;
  }

  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    this.#handle = await open(this.path, "a", 0o600);
    await chmod(this.path, 0o600); // a file made by an older version, or by hand
    this.#size = (await this.#handle.stat()).size;
  }

  /** Queues one event; returns when it is written (callers need not wait). */
  record(event: AuditEvent): Promise<void> {
    const line = `${JSON.stringify(event)}\n`;
    this.#queue = this.#queue
      .then(() => this.#write(line))
      .catch((error: unknown) =>
        this.#logger?.error({ err: error, path: this.path }, "the audit log cannot be written"),
      );
    return this.#queue;
  }

  async flush(): Promise<void> {
    await this.#queue;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#handle?.close();
    this.#handle = undefined;
  }

  async #write(line: string): Promise<void> {
    if (!this.#handle) await this.open();
    const bytes = Buffer.byteLength(line);
    if (this.#size > 0 && this.#size + bytes > this.#maxBytes) await this.#rotate();
    await (this.#handle as FileHandle).appendFile(line);
    this.#size += bytes;
  }

  async #rotate(): Promise<void> {
    await this.#handle?.close();
    this.#handle = undefined;
    await rm(`${this.path}.${this.#keep}`, { force: true });
    for (let n = this.#keep - 1; n >= 1; n--)
      await rename(`${this.path}.${n}`, `${this.path}.${n + 1}`).catch(() => undefined);
    await rename(this.path, `${this.path}.1`);
    await this.open();
  }
}

/** The files of a log, oldest first: audit.log.N … audit.log.1, audit.log. */
export async function auditFiles(path: string, keep = 20): Promise<string[]> {
  const files: string[] = [];
  for (let n = keep; n >= 1; n--)
    if (await stat(`${path}.${n}`).catch(() => undefined)) files.push(`${path}.${n}`);
  if (await stat(path).catch(() => undefined)) files.push(path);
  return files;
}

/** Pure: the events of a file's text (lines that are not events are skipped, e.g. a torn last line). */
export function parseAuditLines(text: string): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const parsed = AuditEvent.safeParse(JSON.parse(line));
      if (parsed.success) events.push(parsed.data);
    } catch {
      // not JSON: skipped
    }
  }
  return events;
}

export async function readAudit(path: string): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  for (const file of await auditFiles(path)) events.push(...parseAuditLines(await readFile(file, "utf8")));
  return events;
}
