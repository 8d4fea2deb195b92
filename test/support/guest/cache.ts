// The cache of built guest images: one file per (name, key), where the key hashes every input of the build.
// Builds are serialised across processes by a lock directory (test files run in parallel workers), and an
// image appears under its final name only when complete (built beside it, then renamed).
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultDataDir } from "../../../src/config/paths.ts";
import { isAlive } from "../../../src/vms/providers/qemu/process.ts";

/** $OSIMG_GUEST_IMAGE_CACHE, else <data dir>/cache/guest-images. */
export function guestImageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OSIMG_GUEST_IMAGE_CACHE ?? join(defaultDataDir(env), "cache", "guest-images");
}

export function cacheKey(inputs: unknown): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Takes the lock directory, waiting while a live process holds it; a dead holder's lock is taken over. */
async function lock(path: string, timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, "pid"), String(process.pid));
      return () => rm(path, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(join(path, "pid"), "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && !isAlive(holder)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`${path} is still held by process ${holder} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface CachedBuild {
  name: string;
  key: string;
  /** The file name's extension, e.g. "qcow2". */
  ext: string;
  cacheDir: string;
  /** Builds the artifact at `output`, using `work` (an empty directory, removed afterwards) for scratch. */
  build(output: string, work: string): Promise<void>;
  /** How long to wait for another process's build. */
  timeoutMs: number;
}

/** The cached artifact's path, building it first when it is not there. Older keys of the same name go. */
export async function cachedArtifact(spec: CachedBuild): Promise<string> {
  const final = join(spec.cacheDir, `${spec.name}-${spec.key}.${spec.ext}`);
  if (await exists(final)) return final;
  await mkdir(spec.cacheDir, { recursive: true });
  const release = await lock(join(spec.cacheDir, `${spec.name}.lock`), spec.timeoutMs);
  try {
    if (await exists(final)) return final;
    // Holding the lock, any work directory of this name is left over from a build that died.
    for (const entry of await readdir(spec.cacheDir))
      if (entry.startsWith(`.work-${spec.name}-`))
        await rm(join(spec.cacheDir, entry), { recursive: true, force: true });
    const work = join(spec.cacheDir, `.work-${spec.name}-${process.pid}`);
    await mkdir(work, { recursive: true });
    try {
      const partial = join(work, `out.${spec.ext}`);
      await spec.build(partial, work);
      await rename(partial, final);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    for (const entry of await readdir(spec.cacheDir))
      if (entry.startsWith(`${spec.name}-`) && entry !== `${spec.name}-${spec.key}.${spec.ext}`)
        await rm(join(spec.cacheDir, entry), { recursive: true, force: true });
    return final;
  } finally {
    await release();
  }
}
