// Reading a VM's console log: line by line as it grows, cleaned of terminal escapes, and its last lines.
import { appendFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  CLOUD_INIT_FINISHED,
  cleanConsoleLine,
  LogChanges,
  LogFollower,
  lastConsoleLines,
  logSize,
} from "../src/vms/providers/qemu/serial-log.ts";
import { tempDir } from "./support/server.ts";

const dir = tempDir("osimg-serial-log-");
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("console logs", () => {
  it("matches cloud-init's finished line", () => {
    expect(
      CLOUD_INIT_FINISHED.test(
        "[   61.5] cloud-init[612]: Cloud-init v. 22.4.2 finished at Sat, 22 Nov 2025 00:10:00 +0000.",
      ),
    ).toBe(true);
    expect(CLOUD_INIT_FINISHED.test("Cloud-init v. 22.4.2 running 'modules:final'")).toBe(false);
  });

  it("cleans colours, cursor moves and carriage returns", () => {
    expect(cleanConsoleLine("\x1b[2J\x1b[01;01H\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m\r")).toBe("Shell>");
    expect(cleanConsoleLine("[\x1b[0;32m  OK  \x1b[0m] Started ssh.service.")).toBe(
      "[  OK  ] Started ssh.service.",
    );
  });

  it("follows a growing file: complete lines once each, a line being written when it is complete", async () => {
    const path = join(dir, "serial.log");
    const follower = new LogFollower(path);
    expect(await follower.next()).toEqual([]); // not created yet
    await writeFile(path, "first\r\nsec");
    expect(await follower.next()).toEqual(["first"]);
    expect(await follower.next()).toEqual([]);
    await appendFile(path, "ond\nthird\n");
    expect(await follower.next()).toEqual(["second", "third"]);
    expect(follower.offset).toBe(await logSize(path));
    // From an offset: what came before is not seen.
    const later = new LogFollower(path, await logSize(path));
    await appendFile(path, "fourth\n");
    expect(await later.next()).toEqual(["fourth"]);
  });

  it("wakes a waiting loop when the log is written, and after the interval when it is not", async () => {
    const path = join(dir, "watched.log");
    await writeFile(path, "");
    const changes = new LogChanges(path);
    try {
      let woke = false;
      const waiting = changes.wait(60_000).then(() => {
        woke = true;
      });
      await appendFile(path, "a line\n");
      await waiting; // long before the minute: the write woke it
      expect(woke).toBe(true);
      const started = Date.now();
      await changes.wait(50);
      expect(Date.now() - started).toBeGreaterThanOrEqual(45);
      const poked = changes.wait(60_000);
      changes.poke();
      await poked;
      const aborted = new AbortController();
      const cut = changes.wait(60_000, aborted.signal);
      aborted.abort();
      await cut;
    } finally {
      changes.close();
    }
    // A file that does not exist cannot be watched: waiting is sleeping.
    const missing = new LogChanges(join(dir, "missing.log"));
    await missing.wait(10);
    missing.close();
  });

  it("gives the last non-empty lines, reading only the end of a large log", async () => {
    const path = join(dir, "big.log");
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i}`);
    await writeFile(path, `${lines.join("\n")}\n\n\x1b[0mprogress 10%\rprogress 100%\n`);
    expect(await lastConsoleLines(path, 3)).toEqual(["line 19998", "line 19999", "progress 100%"]);
    expect(await lastConsoleLines(join(dir, "none.log"))).toEqual([]);
    expect(await logSize(join(dir, "none.log"))).toBe(0);
  });
});
