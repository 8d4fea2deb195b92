// Starts a real `osimg serve` in-process on a free loopback port, with a temporary data directory.
// Authentication is off unless a test asks for it (`auth`), without the warning `osimg serve` prints
// for --auth none; `osimg serve` itself defaults to tokens.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import type { AuthSettings } from "../../src/auth/setup.ts";
import { type RunningServer, type ServeOptions, startServer } from "../../src/server/serve.ts";

export interface TestServer extends RunningServer {
  dataDir: string;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export function tempDir(prefix = "osimg-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestServer(
  options: {
    catalogPath?: string;
    dataDir?: string;
    auth?: AuthSettings;
    tenancy?: ServeOptions["tenancy"];
    logger?: Logger;
    builds?: ServeOptions["builds"];
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir();
  const server = await startServer({
    catalogPath: options.catalogPath,
    port: 0,
    host: "127.0.0.1",
    dataDir,
    logger: options.logger ?? pino({ level: process.env.OSIMG_TEST_LOG ?? "silent" }),
    auth: options.auth ?? { mode: "none", quiet: true },
    tenancy: options.tenancy,
    builds: options.builds,
  });
  return {
    ...server,
    dataDir,
    get: (path, headers = {}) => fetch(`${server.url}${path}`, { headers }),
    async stop() {
      await server.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until the check passes (returns true) or the deadline passes; for conditions reached by I/O. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
