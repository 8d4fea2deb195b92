// A unix-socket connection that carries one JSON object per line, as QMP and the QEMU guest agent speak.
// Shared by the QMP client and the guest-agent client; knows nothing of either protocol.
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";

/** Nothing answered in time. */
export class QemuTimeoutError extends Error {
  override name = "QemuTimeoutError";
}

/** The connection is closed (or never opened); pending calls fail with this. */
export class QemuClosedError extends Error {
  override name = "QemuClosedError";
}

export interface JsonSocketEvents {
  message: [Record<string, unknown>];
  close: [Error | undefined];
}

/**
 * Connects to `path`, retrying while the socket does not exist yet or refuses (QEMU creates it a moment
 * after it starts), until `timeoutMs` has passed.
 */
export async function connectUnix(path: string, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once("connect", () => {
          socket.off("error", reject);
          resolve(socket);
        });
        socket.once("error", reject);
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const retryable = code === "ENOENT" || code === "ECONNREFUSED" || code === "EAGAIN";
      if (!retryable) throw error;
      if (Date.now() + delay > deadline)
        throw new QemuTimeoutError(`no one listens on ${path} after ${timeoutMs} ms (${code})`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Splits the byte stream into lines and parses each as JSON; bytes 0xFF (agent sync markers) are dropped. */
export class JsonSocket extends EventEmitter<JsonSocketEvents> {
  readonly #socket: Socket;
  #buffer = "";
  #closed = false;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", (error) => this.#finish(error));
    socket.on("close", () => this.#finish(undefined));
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(chunk: string): void {
    // latin1 keeps each byte one char: 0xFF can be removed before decoding the rest as UTF-8.
    this.#buffer += chunk.replaceAll("\u00ff", "");
    for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
      const line = Buffer.from(this.#buffer.slice(0, nl), "latin1").toString("utf8").trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line === "") continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // Not JSON: stray output on the channel (e.g. a guest writing to the port); ignored.
      }
      if (message !== null && typeof message === "object" && !Array.isArray(message))
        this.emit("message", message as Record<string, unknown>);
    }
  }

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.emit("close", error);
  }

  send(message: unknown): void {
    if (this.#closed) throw new QemuClosedError("the connection is closed");
    this.#socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Sends bytes as they are (the agent's 0xFF resynchronisation marker). */
  sendRaw(bytes: Uint8Array): void {
    if (this.#closed) throw new QemuClosedError("the connection is closed");
    this.#socket.write(bytes);
  }

  close(): void {
    this.#finish(undefined);
  }
}
