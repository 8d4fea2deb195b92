// Running the steps of a plan: programs are spawned with their argv (no shell), in their own process group
// so that an interrupted build takes the running program down with it; native steps call osimg's own
// code. Cached steps take a lock, run into a partial file and rename it into place.
import { spawn } from "node:child_process";
import {
  chmod,
  copyFile,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { dirname } from "node:path";
import { buildOciImage } from "../oci/layout.ts";
import { pushLayout } from "../oci/push.ts";
import { isAlive } from "../vms/providers/qemu/process.ts";
import { containedPath, customizeRootfs, extractBootFiles } from "./rootfs.ts";
import type { ExecStep, NativeOp, Step } from "./steps.ts";

export class StepError extends Error {
  override name = "StepError";
  readonly step: string;
  /** The program's last output lines. */
  readonly output: string;

  constructor(step: string, message: string, output = "") {
    super(output ? `${message}\n${output}` : message);
    this.step = step;
    this.output = output;
  }
}

export class BuildInterrupted extends Error {
  override name = "BuildInterrupted";
}

export interface RunContext {
  /** One line of progress or program output. */
  log: (line: string) => void;
  signal?: AbortSignal;
  /** The plan file native steps are named in (debug scripts); unused when running. */
  planFile: string;
  /** Called after each step with its duration. */
  onStep?: (step: Step, ms: number, skipped: boolean) => void;
  /** Extra environment for every program. */
  env?: NodeJS.ProcessEnv;
}

const TAIL_LINES = 30;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A directory lock shared between processes; a dead holder's lock is taken over. */
export async function acquireLock(path: string, signal?: AbortSignal): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(`${path}/pid`, String(process.pid));
      return () => rm(path, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(`${path}/pid`, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && !isAlive(holder)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (signal?.aborted) throw new BuildInterrupted("interrupted while waiting for a lock");
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Runs one program; its output goes to the log line by line; fails with the output's last lines. */
export async function execStep(step: ExecStep, context: RunContext): Promise<void> {
  if (context.signal?.aborted) throw new BuildInterrupted(`interrupted before ${step.id}`);
  const [command, ...args] = step.argv as [string, ...string[]];
  const stdin = step.stdin ? await open(step.stdin, "r") : undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command, args, {
        cwd: step.cwd,
        env: { ...process.env, ...context.env, ...step.env },
        stdio: [stdin ? stdin.fd : "ignore", "pipe", "pipe"],
        detached: true,
      });
      const tail: string[] = [];
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString("utf8").split("\n")) {
          if (line.trim() === "") continue;
          context.log(`[${step.id}] ${line}`);
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      let killTimer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        // The whole process group: mmdebstrap's own children too.
        try {
          process.kill(-(child.pid as number), "SIGTERM");
        } catch {}
        killTimer = setTimeout(() => {
          try {
            process.kill(-(child.pid as number), "SIGKILL");
          } catch {}
        }, 10_000);
      };
      context.signal?.addEventListener("abort", onAbort, { once: true });
      child.once("error", (error) => {
        context.signal?.removeEventListener("abort", onAbort);
        reject(new StepError(step.id, `${step.id}: cannot run ${command}: ${error.message}`));
      });
      child.once("close", (code, signal) => {
        context.signal?.removeEventListener("abort", onAbort);
        clearTimeout(killTimer);
        if (context.signal?.aborted) reject(new BuildInterrupted(`interrupted during ${step.id}`));
        else if (code === 0) resolve();
        else
          reject(
            new StepError(
              step.id,
              `${step.id} (${step.title}): ${command} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}`,
              tail.join("\n"),
            ),
          );
      });
    });
  } finally {
    await stdin?.close();
  }
}

export interface NativeContext {
  log: (line: string) => void;
  signal?: AbortSignal | undefined;
}

/** What native steps return, by step id (customize-rootfs: packages and boot files; oci-image: digests). */
export type NativeResults = Map<string, unknown>;

export async function nativeStep(op: NativeOp, context: NativeContext): Promise<unknown> {
  switch (op.op) {
    case "write-file": {
      await mkdir(dirname(op.path), { recursive: true });
      await writeFile(op.path, op.content, { mode: op.mode });
      await utimes(op.path, op.mtime, op.mtime);
      return undefined;
    }
    case "copy-in": {
      const from = await containedPath(op.root, op.path, op.field);
      await copyFile(from, op.to);
      await chmod(op.to, op.mode);
      return undefined;
    }
    case "customize-rootfs": {
      const result = await customizeRootfs(op.input, op.output, op.edits);
      await writeFile(op.result, `${JSON.stringify(result, null, 2)}\n`);
      return result;
    }
    case "extract-boot-files": {
      const boot = await extractBootFiles(op.tar, { kernel: op.kernel, initrd: op.initrd });
      if (!boot)
        throw new StepError(
          "extract-boot-files",
          `the root filesystem has no kernel and initrd in /boot`,
          "install a kernel package, e.g. linux-image-cloud-amd64",
        );
      await utimes(op.kernel, op.mtime, op.mtime);
      await utimes(op.initrd, op.mtime, op.mtime);
      return boot;
    }
    case "oci-image":
      return buildOciImage(op, { log: context.log });
    case "push":
      return pushLayout({
        layout: op.layout,
        tag: op.tag,
        reference: op.reference,
        tlsVerify: op.tlsVerify,
        log: context.log,
      });
  }
}

/** Runs steps in order. Native steps' results are returned by step id. */
export async function runSteps(steps: readonly Step[], context: RunContext): Promise<NativeResults> {
  const results: NativeResults = new Map();
  for (const step of steps) {
    if (context.signal?.aborted) throw new BuildInterrupted(`interrupted before ${step.id}`);
    const started = Date.now();
    context.log(`==> ${step.id}: ${step.title}`);
    if (step.kind === "native") {
      try {
        results.set(step.id, await nativeStep(step.op, context));
      } catch (error) {
        if (error instanceof StepError || (error as { field?: string }).field !== undefined) throw error;
        throw new StepError(step.id, `${step.id} (${step.title}): ${(error as Error).message}`);
      }
      context.onStep?.(step, Date.now() - started, false);
      continue;
    }
    if (!step.cache) {
      await execStep(step, context);
      context.onStep?.(step, Date.now() - started, false);
      continue;
    }
    if (await exists(step.cache.path)) {
      context.log(`    cached: ${step.cache.path}`);
      context.onStep?.(step, Date.now() - started, true);
      continue;
    }
    const release = await acquireLock(step.cache.lock, context.signal);
    try {
      if (await exists(step.cache.path)) {
        context.onStep?.(step, Date.now() - started, true);
        continue;
      }
      await rm(step.cache.partial, { force: true });
      try {
        await execStep(step, context);
        await rename(step.cache.partial, step.cache.path);
      } finally {
        await rm(step.cache.partial, { force: true });
      }
    } finally {
      await release();
    }
    context.onStep?.(step, Date.now() - started, false);
  }
  return results;
}
