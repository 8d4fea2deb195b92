// A QMP (QEMU Machine Protocol) client over a unix socket: the only way osimg controls a running QEMU.
// Greeting, capabilities negotiation, commands matched to replies by id, asynchronous events, typed errors,
// timeouts. Never parses human-readable monitor output.
import { EventEmitter } from "node:events";
import { connectUnix, JsonSocket, QemuClosedError, QemuTimeoutError } from "./json-socket.ts";

export { QemuClosedError, QemuTimeoutError } from "./json-socket.ts";

/** QEMU's RunState values (qapi/run-state.json). */
export type RunState =
  | "debug"
  | "inmigrate"
  | "internal-error"
  | "io-error"
  | "paused"
  | "postmigrate"
  | "prelaunch"
  | "finish-migrate"
  | "restore-vm"
  | "running"
  | "save-vm"
  | "shutdown"
  | "suspended"
  | "watchdog"
  | "guest-panicked"
  | "colo";

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** Commands osimg uses, with their arguments and return values (qapi schema). */
export interface QmpCommands {
  "query-status": { args: undefined; ret: { running: boolean; status: RunState; singlestep?: boolean } };
  "query-version": { args: undefined; ret: QmpVersion };
  "query-name": { args: undefined; ret: { name?: string } };
  "query-kvm": { args: undefined; ret: { enabled: boolean; present: boolean } };
  "query-vnc": {
    args: undefined;
    ret: { enabled: boolean; host?: string; service?: string; family?: string; auth?: string };
  };
  "query-chardev": { args: undefined; ret: { label: string; filename: string; "frontend-open": boolean }[] };
  "query-block": {
    args: undefined;
    ret: {
      device: string;
      qdev?: string;
      removable: boolean;
      locked: boolean;
      inserted?: { file: string };
    }[];
  };
  "query-tpm": { args: undefined; ret: { id: string; model: string; options: { type: string } }[] };
  "query-cpus-fast": { args: undefined; ret: { "cpu-index": number; "thread-id": number; target: string }[] };
  stop: { args: undefined; ret: Record<string, never> };
  cont: { args: undefined; ret: Record<string, never> };
  system_powerdown: { args: undefined; ret: Record<string, never> };
  system_reset: { args: undefined; ret: Record<string, never> };
  quit: { args: undefined; ret: Record<string, never> };
  "set-action": {
    args: {
      reboot?: "reset" | "shutdown";
      shutdown?: "poweroff" | "pause";
      panic?: "pause" | "shutdown" | "none";
    };
    ret: Record<string, never>;
  };
  screendump: { args: { filename: string; format?: "ppm" | "png" }; ret: Record<string, never> };
}

export type QmpCommandName = keyof QmpCommands;

/** Events osimg reacts to (qapi/run-state.json and friends); others arrive as QmpEvent with unknown data. */
export interface QmpEventData {
  SHUTDOWN: { guest: boolean; reason: string };
  POWERDOWN: Record<string, never>;
  RESET: { guest: boolean; reason: string };
  STOP: Record<string, never>;
  RESUME: Record<string, never>;
  GUEST_PANICKED: { action: string; info?: unknown };
  VSERPORT_CHANGE: { id: string; open: boolean };
}

export interface QmpEvent<Name extends string = string> {
  event: Name;
  data: Name extends keyof QmpEventData ? QmpEventData[Name] : Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** QEMU refused a command: `errorClass` is QMP's class (GenericError, CommandNotFound, DeviceNotActive...). */
export class QmpCommandError extends Error {
  override name = "QmpCommandError";
  readonly command: string;
  readonly errorClass: string;
  readonly description: string;

  constructor(command: string, errorClass: string, description: string) {
    super(`QMP ${command} failed (${errorClass}): ${description}`);
    this.command = command;
    this.errorClass = errorClass;
    this.description = description;
  }
}

/** The peer is not a QMP server, or broke the protocol. */
export class QmpProtocolError extends Error {
  override name = "QmpProtocolError";
}

export interface QmpOptions {
  /** How long to wait for the socket and the greeting. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default time limit of one command. Default 30 s. */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface QmpClientEvents {
  event: [QmpEvent];
  close: [Error | undefined];
}

type ArgsParam<C extends QmpCommandName> = QmpCommands[C]["args"] extends undefined
  ? [args?: undefined, options?: { timeoutMs?: number }]
  : [args: QmpCommands[C]["args"], options?: { timeoutMs?: number }];

export class QmpClient extends EventEmitter<QmpClientEvents> {
  readonly version: QmpVersion;
  readonly capabilities: readonly string[];
  readonly #channel: JsonSocket;
  readonly #pending = new Map<string, Pending>();
  readonly #commandTimeoutMs: number;
  #nextId = 1;

  private constructor(
    channel: JsonSocket,
    greeting: { version: QmpVersion; capabilities: string[] },
    timeout: number,
  ) {
    super();
    this.#channel = channel;
    this.version = greeting.version;
    this.capabilities = greeting.capabilities;
    this.#commandTimeoutMs = timeout;
    channel.on("message", (m) => this.#onMessage(m));
    channel.on("close", (error) => {
      const reason = new QemuClosedError(`QMP connection closed${error ? `: ${error.message}` : ""}`);
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(reason);
      }
      this.emit("close", error);
    });
  }

  /** Connects to QEMU's QMP socket, reads the greeting and leaves capabilities-negotiation mode. */
  static async connect(path: string, options: QmpOptions = {}): Promise<QmpClient> {
    const connectTimeout = options.connectTimeoutMs ?? 10_000;
    const deadline = Date.now() + connectTimeout;
    const socket = await connectUnix(path, connectTimeout);
    const channel = new JsonSocket(socket);
    const greeting = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          channel.close();
          reject(new QemuTimeoutError(`no QMP greeting on ${path} within ${connectTimeout} ms`));
        },
        Math.max(1, deadline - Date.now()),
      );
      channel.once("message", (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      channel.once("close", (error) => {
        clearTimeout(timer);
        reject(
          new QemuClosedError(
            `QMP socket ${path} closed before the greeting${error ? `: ${error.message}` : ""}`,
          ),
        );
      });
    });
    const qmp = greeting.QMP as { version?: QmpVersion; capabilities?: string[] } | undefined;
    if (!qmp?.version) {
      channel.close();
      throw new QmpProtocolError(`${path} did not greet with QMP: ${JSON.stringify(greeting).slice(0, 200)}`);
    }
    const client = new QmpClient(
      channel,
      { version: qmp.version, capabilities: qmp.capabilities ?? [] },
      options.commandTimeoutMs ?? 30_000,
    );
    await client.executeUntyped("qmp_capabilities", undefined, Math.max(1000, deadline - Date.now()));
    return client;
  }

  get closed(): boolean {
    return this.#channel.closed;
  }

  #onMessage(message: Record<string, unknown>): void {
    if (typeof message.event === "string") {
      this.emit("event", message as unknown as QmpEvent);
      return;
    }
    const id = typeof message.id === "string" ? message.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (!pending || id === undefined) return; // A reply to a call that already timed out.
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if ("return" in message) pending.resolve(message.return);
    else {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      pending.reject(
        new QmpCommandError(pending.command, error.class ?? "Unknown", error.desc ?? "no description"),
      );
    }
  }

  /** Runs a command known to osimg, with typed arguments and result. */
  execute<C extends QmpCommandName>(command: C, ...rest: ArgsParam<C>): Promise<QmpCommands[C]["ret"]> {
    const [args, options] = rest;
    return this.executeUntyped(command, args, options?.timeoutMs) as Promise<QmpCommands[C]["ret"]>;
  }

  /** Runs any QMP command; prefer `execute` where the command is in QmpCommands. */
  executeUntyped(command: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<unknown> {
    const id = `osimg-${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      const limit = timeoutMs ?? this.#commandTimeoutMs;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new QemuTimeoutError(`QMP ${command} got no reply within ${limit} ms`));
      }, limit);
      this.#pending.set(id, { command, resolve, reject, timer });
      try {
        this.#channel.send(
          args === undefined ? { execute: command, id } : { execute: command, arguments: args, id },
        );
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  /**
   * Resolves with the next event named `name` (for which `match` holds), or rejects after `timeoutMs` or
   * when the connection closes. Register it before causing the event.
   */
  waitForEvent<N extends string>(
    name: N,
    timeoutMs: number,
    match: (event: QmpEvent<N>) => boolean = () => true,
  ): Promise<QmpEvent<N>> {
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      const onEvent = (event: QmpEvent) => {
        if (event.event !== name || !match(event as QmpEvent<N>)) return;
        cleanup();
        resolve(event as QmpEvent<N>);
      };
      const onClose = () => {
        cleanup();
        reject(new QemuClosedError(`QMP connection closed while waiting for ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QemuTimeoutError(`no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  /** Resolves when the connection has closed (QEMU exited), or rejects after `timeoutMs`. */
  waitForClose(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("close", onClose);
        reject(new QemuTimeoutError(`QMP connection still open after ${timeoutMs} ms`));
      }, timeoutMs);
      const onClose = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once("close", onClose);
    });
  }

  close(): void {
    this.#channel.close();
  }
}
