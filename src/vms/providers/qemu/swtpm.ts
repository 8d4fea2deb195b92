// A software TPM 2.0 (swtpm) for VMs whose catalog entry lists FEATURES tpm. One swtpm per VM: its state
// directory lives in the VM's directory (kept across restarts, deleted with the VM); QEMU connects to its
// control socket. swtpm ends by itself when QEMU disconnects (--terminate), so it never outlives its VM.
import { access, mkdir, rm } from "node:fs/promises";
import { isAlive, killProcess, spawnDetached, tailOf, waitForExit } from "./process.ts";

export interface SwtpmOptions {
  /** Where the TPM keeps its state (NVRAM, keys); created when missing. */
  stateDir: string;
  /** The control socket QEMU connects to (MachineSpec.sockets.tpm). */
  socketPath: string;
  logPath: string;
  binary?: string;
  /** How long swtpm may take to listen. Default 10 s. */
  timeoutMs?: number;
}

export interface RunningSwtpm {
  pid: number;
  socketPath: string;
  /** Ends swtpm. It ends by itself when QEMU disconnects; call this when QEMU never started. */
  stop(timeoutMs?: number): Promise<void>;
}

export class SwtpmError extends Error {
  override name = "SwtpmError";
}

export const SWTPM_BINARY = "/usr/bin/swtpm";

/** Whether swtpm is installed (else FEATURES tpm is reported as unavailable). */
export async function swtpmAvailable(binary = SWTPM_BINARY): Promise<boolean> {
  try {
    await access(binary);
    return true;
  } catch {
    return false;
  }
}

export async function startSwtpm(options: SwtpmOptions): Promise<RunningSwtpm> {
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await rm(options.socketPath, { force: true });
  const argv = [
    "socket",
    "--tpm2",
    "--tpmstate",
    `dir=${options.stateDir.replaceAll(",", ",,")},mode=0600`,
    "--ctrl",
    `type=unixio,path=${options.socketPath.replaceAll(",", ",,")},mode=0600`,
    "--terminate",
    "--log",
    "level=1",
  ];
  const { pid, exited } = await spawnDetached(options.binary ?? SWTPM_BINARY, argv, options.logPath);
  const timeoutMs = options.timeoutMs ?? 10_000;
  // Ready when the socket file exists: connecting to check would end it (--terminate acts on any client).
  const ready = waitForSocketFile(options.socketPath, timeoutMs).then(() => "ready" as const);
  const result = await Promise.race([ready, exited.then((code) => ({ code }))]);
  if (result !== "ready")
    throw new SwtpmError(`swtpm exited (status ${result.code}): ${await tailOf(options.logPath)}`);
  return {
    pid,
    socketPath: options.socketPath,
    async stop(stopTimeoutMs = 5000) {
      if (!isAlive(pid)) return;
      killProcess(pid, "SIGTERM");
      if (!(await waitForExit(pid, stopTimeoutMs))) killProcess(pid, "SIGKILL");
    },
  };
}

/** Waits for a unix socket file to appear, without connecting (a connection would end a --terminate swtpm). */
async function waitForSocketFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    try {
      await access(path);
      return;
    } catch {
      if (Date.now() + delay > deadline)
        throw new SwtpmError(`swtpm did not create ${path} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
