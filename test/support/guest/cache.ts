// The cache of built guest images: one file per (name, key), where the key hashes every input of the build.
// Builds are serialised across processes by a lock directory (test files run in parallel workers), and an
// image appears under its final name only when complete (built beside it, then renamed).
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { acquireLock, BuildInterrupted } from "../../../src/build/run.ts";
import { defaultDataDir } from "../../../src/config/paths.ts";

/** $OSIMG_GUEST_IMAGE_CACHE, else <data dir>/cache/guest-images. */
export function guestImageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OSIMG_GUEST_IMAGE_CACHE ?? join(defaultDataDir(env), "cache", "guest-images");
}

export function cacheKey(inputs: unknown): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
}

/** The build lock (the builder's: a directory whose owner pid is checked), waited for at most `timeoutMs`. */
async function lock(path: string, timeoutMs: number): Promise<() => Promise<void>> {
  try {
    return await acquireLock(path, AbortSignal.timeout(timeoutMs));
  } catch (error) {
    if (!(error instanceof BuildInterrupted)) throw error;
    const holder = await readFile(join(path, "pid"), "utf8").catch(() => "?");
    throw new Error(`${path} is still held by process ${holder.trim()} after ${timeoutMs} ms`);
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
  if (existsSync(final)) return final;
  await mkdir(spec.cacheDir, { recursive: true });
  const release = await lock(join(spec.cacheDir, `${spec.name}.lock`), spec.timeoutMs);
  try {
    if (existsSync(final)) return final;
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
