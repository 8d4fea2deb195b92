// Builds the web UI into web/dist when it is missing or older than its sources, so that `npm start` on a
// fresh clone serves a working UI and an up-to-date tree starts at once. Several processes (npm start,
// test runs of several engineers) may ask at the same time: one builds under a lock, into a temporary
// directory that replaces web/dist whole, and the others wait for it and find it fresh.
//   node web/build.ts            build when stale
//   node web/build.ts --force    build always
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB_ROOT = dirname(fileURLToPath(import.meta.url));
const PROJECT_ROOT = dirname(WEB_ROOT);
export const WEB_DIST = join(WEB_ROOT, "dist");
const STAMP = ".osimg-build.json";
const LOCK = join(WEB_ROOT, ".build-lock");
const STALE_LOCK_MS = 10 * 60_000;

/** What the bundle is made of: the UI and the server code it shares (the catalog parser, VM rules). */
const INPUTS = [
  join(WEB_ROOT, "src"),
  join(WEB_ROOT, "public"),
  join(WEB_ROOT, "index.html"),
  join(WEB_ROOT, "vite.config.ts"),
  ...["catalog", "units", "vms", "cloudinit", "util", "images"].map((dir) => join(PROJECT_ROOT, "src", dir)),
  join(PROJECT_ROOT, "package-lock.json"),
];

interface Stamp {
  /** When the build started: sources changed after it make the build stale. */
  startedAt: number;
}

async function newestMtime(path: string): Promise<number> {
  const s = await stat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.mtimeMs;
  const entries = await readdir(path, { withFileTypes: true });
  const times = await Promise.all(entries.map((e) => newestMtime(join(path, e.name))));
  // A deleted file changes the directory's mtime only.
  return Math.max(s.mtimeMs, ...times);
}

/** Why web/dist needs a build, or undefined when it is up to date. */
export async function staleReason(dist = WEB_DIST): Promise<string | undefined> {
  let stamp: Stamp;
  try {
    stamp = JSON.parse(await readFile(join(dist, STAMP), "utf8")) as Stamp;
  } catch {
    return "web/dist has not been built";
  }
  if (!existsSync(join(dist, "index.html"))) return "web/dist/index.html is missing";
  const newest = Math.max(...(await Promise.all(INPUTS.map(newestMtime))));
  return newest > stamp.startedAt ? "the UI sources changed since the last build" : undefined;
}

function runVite(outDir: string): Promise<void> {
  const vite = join(PROJECT_ROOT, "node_modules", "vite", "bin", "vite.js");
  if (!existsSync(vite))
    return Promise.reject(
      new Error("vite is not installed: run `npm ci` (the UI is built with the dev dependencies)"),
    );
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [vite, "build", "--config", join(WEB_ROOT, "vite.config.ts"), "--outDir", outDir, "--logLevel", "warn"],
      // A production build whoever asks (vitest sets NODE_ENV=test, which would bundle React's dev build).
      {
        cwd: PROJECT_ROOT,
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, NODE_ENV: "production" },
      },
    );
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`vite build failed with exit code ${code}`)),
    );
  });
}

async function acquireLock(): Promise<void> {
  for (;;) {
    try {
      await mkdir(LOCK);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const s = await stat(LOCK).catch(() => undefined);
    // A build killed halfway leaves its lock behind; no build takes this long.
    if (s && Date.now() - s.mtimeMs > STALE_LOCK_MS) await rm(LOCK, { recursive: true, force: true });
    else await new Promise((r) => setTimeout(r, 250));
  }
}

/** Builds web/dist (replacing it whole when done). */
async function buildWeb(): Promise<void> {
  const startedAt = Date.now();
  const temp = join(WEB_ROOT, `.dist-${process.pid}-${startedAt}`);
  const old = `${temp}-old`;
  try {
    await runVite(temp);
    await writeFile(join(temp, STAMP), JSON.stringify({ startedAt } satisfies Stamp));
    await rename(WEB_DIST, old).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
    await rename(temp, WEB_DIST);
  } finally {
    await rm(temp, { recursive: true, force: true });
    await rm(old, { recursive: true, force: true });
  }
}

export interface EnsureOptions {
  /** Build even when web/dist is up to date. */
  force?: boolean;
  log?: (line: string) => void;
}

/** Builds web/dist when it is stale (or always, with force); returns what was done. */
export async function ensureWebBuilt(options: EnsureOptions = {}): Promise<"fresh" | "built"> {
  const log = options.log ?? (() => {});
  if (!options.force && (await staleReason()) === undefined) return "fresh";
  await acquireLock();
  try {
    // Another process may have built it while this one waited for the lock.
    const reason = options.force ? "asked to" : await staleReason();
    if (reason === undefined) return "fresh";
    log(`osimg: building the web UI (${reason})…`);
    const started = performance.now();
    await buildWeb();
    log(`osimg: web UI built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return "built";
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const force = process.argv.includes("--force");
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    await ensureWebBuilt({ force, log });
  } catch (error) {
    log(`osimg: ${(error as Error).message}`);
    // Without a UI the API still works: `npm start` goes on, and / answers how to build the UI.
    process.exitCode = force ? 1 : 0;
  }
}
