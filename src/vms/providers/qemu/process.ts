// Starting and ending the host processes of a VM (QEMU, swtpm) without a shell, and finding them again.
//
// QEMU is started detached (its own session, so a server restart or Ctrl-C does not take VMs down) and not
// daemonized: its stderr goes to the VM's log file for its whole life (with -daemonize QEMU sends it to
// /dev/null after start-up), and a start-up failure is seen as the process exiting before QMP answers,
// with the log's last lines as the reason.
import { spawn } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import type { QemuCommand } from "./cmdline.ts";
import { QemuTimeoutError } from "./json-socket.ts";
import { QmpClient } from "./qmp.ts";

export class QemuStartError extends Error {
  override name = "QemuStartError";
  /** The last lines QEMU wrote (what went wrong, in QEMU's words). */
  readonly log: string;

  constructor(message: string, log: string) {
    super(log ? `${message}: ${log}` : message);
    this.log = log;
  }
}

export interface LaunchOptions {
  /** QEMU's stdout and stderr are appended here. */
  logPath: string;
  /** The QMP socket the command line listens on (MachineSpec.sockets.qmp). */
  qmpSocket: string;
  /** How long QEMU may take to answer on QMP. Default 30 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface LaunchedQemu {
  pid: number;
  qmp: QmpClient;
}

/** The last `lines` non-empty lines of a log file ("" when it does not exist). */
export async function tailOf(path: string, lines = 5): Promise<string> {
  try {
    const text = await readFile(path, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Spawns a detached process with stdout/stderr appended to `logPath`; resolves with its pid once spawned. */
export async function spawnDetached(
  binary: string,
  argv: readonly string[],
  logPath: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ pid: number; exited: Promise<number | null> }> {
  const log = await open(logPath, "a", 0o640);
  try {
    const child = spawn(binary, argv, {
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
      env: env ?? process.env,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid as number));
      child.once("error", reject);
    });
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code, signal) => resolve(signal ? null : code)),
    );
    child.unref();
    return { pid, exited };
  } finally {
    await log.close();
  }
}

/** Starts QEMU and connects to its QMP socket. On failure nothing is left running. */
export async function launchQemu(command: QemuCommand, options: LaunchOptions): Promise<LaunchedQemu> {
  if (command.argv.includes("-daemonize"))
    throw new Error("launchQemu runs QEMU detached itself; build the command without daemonize");
  const { pid, exited } = await spawnDetached(command.binary, command.argv, options.logPath, options.env);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const early = exited.then((code) => ({ exited: code }));
  const connecting = QmpClient.connect(options.qmpSocket, { connectTimeoutMs: timeoutMs }).then(
    (qmp) => ({ qmp }),
    (error: Error) => ({ error }),
  );
  const first = await Promise.race([early, connecting]);
  if ("qmp" in first) return { pid, qmp: first.qmp };
  if ("exited" in first) {
    void connecting.then((r) => ("qmp" in r ? r.qmp.close() : undefined));
    throw new QemuStartError(
      `QEMU exited (status ${first.exited}) before QMP answered`,
      await tailOf(options.logPath),
    );
  }
  killProcess(pid, "SIGKILL");
  const reason = first.error instanceof QemuTimeoutError ? "QMP did not answer in time" : first.error.message;
  throw new QemuStartError(`QEMU did not start: ${reason}`, await tailOf(options.logPath));
}

/** True while a process with this pid exists (a zombie counts until it is reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function killProcess(pid: number, signal: NodeJS.Signals = "SIGTERM"): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** Resolves true when the process is gone within `timeoutMs`, false otherwise. Polls: it may not be our child. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 10; isAlive(pid); delay = Math.min(delay * 2, 200)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
  return true;
}

/** The pid in a pidfile QEMU or swtpm wrote, if the file exists and holds one. */
export async function readPidfile(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, "utf8")).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is still the process that was started with `marker` among its arguments (e.g. the VM's QMP
 * socket path): after a reboot of the host a pid may belong to someone else.
 */
export async function processHasArgument(pid: number, marker: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.split("\0").some((arg) => arg.includes(marker));
  } catch {
    return false;
  }
}
