// `osimg audit tail [-f] [--project P]`: the server's audit log (in its data directory), last lines
// first shown, then followed across rotations.
import { open, readFile, stat } from "node:fs/promises";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { type AuditEvent, auditFiles, auditLogPath, parseAuditLines } from "../audit/log.ts";
import { defaultDataDir } from "../config/paths.ts";

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("a whole number");
  return n;
}

/** One line for people: time, result, who, what, where, status, request id. */
export function formatAuditEvent(e: AuditEvent): string {
  const where = [e.namespace, e.object].filter(Boolean).join("/") || "-";
  const extra = [
    e.event,
    e.durationMs !== undefined ? `${(e.durationMs / 1000).toFixed(1)}s` : undefined,
    e.reason,
  ]
    .filter(Boolean)
    .join(" ");
  return [
    e.time,
    e.result.padEnd(7),
    `${e.who.name} (${e.who.via})`,
    `${e.action} ${e.method} ${where}`,
    String(e.status),
    e.requestId,
    extra,
  ]
    .filter(Boolean)
    .join("  ");
}

async function readFrom(path: string, offset: number): Promise<{ text: string; end: number }> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return { text: "", end: offset };
  try {
    const { size } = await handle.stat();
    if (size <= offset) return { text: "", end: size };
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    // Only whole lines: a line being written is read on the next round.
    const last = buffer.lastIndexOf(0x0a);
    if (last < 0) return { text: "", end: offset };
    return { text: buffer.subarray(0, last + 1).toString("utf8"), end: offset + last + 1 };
  } finally {
    await handle.close();
  }
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command("audit").description("the audit log of `osimg serve` (who did what, when)");
  audit
    .command("tail")
    .description("print the last events of the audit log; -f keeps following it")
    .option("-f, --follow", "keep printing new events")
    .option("-n, --lines <n>", "how many past events to print", count, 20)
    .option("--project <namespace>", "only the events of this project")
    .option("--json", "print the events as JSON lines")
    .option("--data-dir <dir>", "the server's data directory", defaultDataDir())
    .option("--file <path>", "the audit log (default <data-dir>/audit/audit.log)")
    .action(
      async (options: {
        follow?: boolean;
        lines: number;
        project?: string;
        json?: boolean;
        dataDir: string;
        file?: string;
      }) => {
        const path = options.file ?? auditLogPath(options.dataDir);
        const wanted = (e: AuditEvent) => !options.project || e.namespace === options.project;
        const print = (events: AuditEvent[]) => {
          for (const e of events.filter(wanted))
            process.stdout.write(`${options.json ? JSON.stringify(e) : formatAuditEvent(e)}\n`);
        };
        const before = await stat(path).catch(() => undefined);
        if (!before && !options.follow) {
          process.stderr.write(`error: no audit log at ${path} (is --data-dir the server's?)\n`);
          process.exitCode = 1;
          return;
        }
        // The rotated files, then the live one up to its last whole line: following goes on from there.
        const rotated = (await auditFiles(path)).filter((f) => f !== path);
        const texts = await Promise.all(rotated.map((f) => readFile(f, "utf8")));
        const live = await readFrom(path, 0);
        const past = [...texts, live.text].flatMap(parseAuditLines).filter(wanted);
        print(options.lines === 0 ? [] : past.slice(-options.lines));
        if (!options.follow) return;
        process.stderr.write(`following ${path} (Ctrl-C stops)\n`);
        let inode = before?.ino;
        let offset = live.end;
        for (;;) {
          await new Promise((r) => setTimeout(r, 300));
          const now = await stat(path).catch(() => undefined);
          if (!now) continue;
          if (inode !== undefined && now.ino !== inode) {
            // Rotated: the rest of the old file is now audit.log.1, then the new file from its start.
            const rest = await readFrom(`${path}.1`, offset);
            print(parseAuditLines(rest.text));
            offset = 0;
          }
          inode = now.ino;
          const next = await readFrom(path, offset);
          print(parseAuditLines(next.text));
          offset = next.end;
        }
      },
    );
}
