// A client of the QEMU guest agent (qemu-ga) on the VM's virtio-serial socket (org.qemu.guest_agent.0).
//
// The channel has no session: bytes written while no agent runs in the guest wait in buffers and reach the
// agent later; answers carry no id. So every exchange starts synchronised: 0xFF (the agent drops what it was
// parsing) and guest-sync-delimited with a fresh random id; answers are skipped until the one with that id.
// After that, commands go one at a time and the next answer is the command's. A command that times out
// leaves the channel unsynchronised, and the next call synchronises again.
// QEMU accepts one client per chardev socket: one GuestAgentClient per VM at a time.
import { randomInt } from "node:crypto";
import { connectUnix, JsonSocket, QemuClosedError, QemuTimeoutError } from "./json-socket.ts";

export class GuestAgentError extends Error {
  override name = "GuestAgentError";
  readonly command: string;
  readonly errorClass: string;

  constructor(command: string, errorClass: string, description: string) {
    super(`guest agent ${command} failed (${errorClass}): ${description}`);
    this.command = command;
    this.errorClass = errorClass;
  }
}

export interface GuestNetworkInterface {
  name: string;
  "hardware-address"?: string;
  "ip-addresses"?: { "ip-address-type": "ipv4" | "ipv6"; "ip-address": string; prefix: number }[];
}

export interface GuestExecResult {
  exitcode: number | undefined;
  signal: number | undefined;
  stdout: string;
  stderr: string;
}

export interface AgentOptions {
  /** Time limit of one command, synchronisation included. Default 10 s. */
  timeoutMs?: number;
}

export class GuestAgentClient {
  readonly #channel: JsonSocket;
  readonly #timeoutMs: number;
  #queue: Promise<unknown> = Promise.resolve();
  #synced = false;
  #waiter: ((message: Record<string, unknown>) => void) | undefined;

  private constructor(channel: JsonSocket, timeoutMs: number) {
    this.#channel = channel;
    this.#timeoutMs = timeoutMs;
    channel.on("message", (m) => this.#waiter?.(m));
  }

  /** Connects to the agent socket (waiting up to `connectTimeoutMs` for it to exist). */
  static async connect(
    path: string,
    options: AgentOptions & { connectTimeoutMs?: number } = {},
  ): Promise<GuestAgentClient> {
    const socket = await connectUnix(path, options.connectTimeoutMs ?? 10_000);
    return new GuestAgentClient(new JsonSocket(socket), options.timeoutMs ?? 10_000);
  }

  get closed(): boolean {
    return this.#channel.closed;
  }

  close(): void {
    this.#channel.close();
  }

  /** The next message for which `accept` holds, within `deadline`. */
  #next(
    accept: (m: Record<string, unknown>) => boolean,
    deadline: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiter = undefined;
        this.#channel.off("close", onClose);
      };
      const onClose = () => {
        done();
        reject(new QemuClosedError(`guest agent connection closed during ${what}`));
      };
      const timer = setTimeout(
        () => {
          done();
          this.#synced = false;
          reject(new QemuTimeoutError(`guest agent: no answer to ${what} in time`));
        },
        Math.max(1, deadline - Date.now()),
      );
      this.#waiter = (m) => {
        if (!accept(m)) return;
        done();
        resolve(m);
      };
      this.#channel.once("close", onClose);
    });
  }

  async #sync(deadline: number): Promise<void> {
    const id = randomInt(1, 2 ** 31);
    const answer = this.#next((m) => m.return === id, deadline, "guest-sync-delimited");
    this.#channel.sendRaw(Uint8Array.from([0xff]));
    this.#channel.send({ execute: "guest-sync-delimited", arguments: { id } });
    await answer;
    this.#synced = true;
  }

  async #run(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    if (this.#channel.closed) throw new QemuClosedError("guest agent connection is closed");
    const deadline = Date.now() + timeoutMs;
    if (!this.#synced) await this.#sync(deadline);
    const answer = this.#next((m) => "return" in m || "error" in m, deadline, command);
    this.#channel.send(args === undefined ? { execute: command } : { execute: command, arguments: args });
    const message = await answer;
    if ("error" in message) {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      throw new GuestAgentError(command, error.class ?? "Unknown", error.desc ?? "no description");
    }
    return message.return;
  }

  /** Runs any agent command; calls are queued so that answers stay in order. */
  execute(command: string, args?: Record<string, unknown>, options: AgentOptions = {}): Promise<unknown> {
    const run = this.#queue.then(() => this.#run(command, args, options.timeoutMs ?? this.#timeoutMs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves when an agent answers in the guest (readiness). */
  async ping(options: AgentOptions = {}): Promise<void> {
    await this.execute("guest-ping", undefined, options);
  }

  async networkInterfaces(options: AgentOptions = {}): Promise<GuestNetworkInterface[]> {
    return (await this.execute(
      "guest-network-get-interfaces",
      undefined,
      options,
    )) as GuestNetworkInterface[];
  }

  async hostName(options: AgentOptions = {}): Promise<string> {
    return ((await this.execute("guest-get-host-name", undefined, options)) as { "host-name": string })[
      "host-name"
    ];
  }

  /** Runs a program in the guest (no shell unless you run one) and waits for it to end. */
  async exec(
    path: string,
    args: readonly string[] = [],
    options: AgentOptions = {},
  ): Promise<GuestExecResult> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const { pid } = (await this.execute(
      "guest-exec",
      { path, arg: [...args], "capture-output": true },
      { timeoutMs },
    )) as { pid: number };
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      const status = (await this.execute(
        "guest-exec-status",
        { pid },
        { timeoutMs: Math.max(1000, deadline - Date.now()) },
      )) as {
        exited: boolean;
        exitcode?: number;
        signal?: number;
        "out-data"?: string;
        "err-data"?: string;
      };
      if (status.exited)
        return {
          exitcode: status.exitcode,
          signal: status.signal,
          stdout: Buffer.from(status["out-data"] ?? "", "base64").toString("utf8"),
          stderr: Buffer.from(status["err-data"] ?? "", "base64").toString("utf8"),
        };
      if (Date.now() + delay > deadline)
        throw new QemuTimeoutError(`guest-exec ${path} still running after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * Waits until the agent answers guest-ping, retrying (each try with a short limit) until `timeoutMs`; the
 * readiness check of VMs whose image has an agent. Returns the client, connected and synchronised.
 */
export async function waitForAgent(
  path: string,
  timeoutMs: number,
  options: { tryTimeoutMs?: number; signal?: AbortSignal } = {},
): Promise<GuestAgentClient> {
  const deadline = Date.now() + timeoutMs;
  const client = await GuestAgentClient.connect(path, { connectTimeoutMs: timeoutMs });
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      await client.ping({
        timeoutMs: Math.min(options.tryTimeoutMs ?? 3000, Math.max(1, deadline - Date.now())),
      });
      return client;
    } catch (error) {
      if (!(error instanceof QemuTimeoutError) || Date.now() >= deadline) {
        client.close();
        throw error instanceof QemuTimeoutError
          ? new QemuTimeoutError(`the guest agent did not answer within ${timeoutMs} ms`)
          : error;
      }
    }
  }
}

/**
 * One try: connects to the agent socket and pings the agent. Resolves with the client (connected and
 * synchronised: close it when done) when an agent answered, rejects otherwise. Polling readiness checks
 * (the provider's, boot tests') call this now and then.
 */
export async function pingAgent(
  path: string,
  options: { connectTimeoutMs?: number; timeoutMs?: number } = {},
): Promise<GuestAgentClient> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const client = await GuestAgentClient.connect(path, {
    connectTimeoutMs: options.connectTimeoutMs ?? 1000,
    timeoutMs,
  });
  try {
    await client.ping({ timeoutMs });
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}
