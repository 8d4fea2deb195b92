// A VM's serial console shared by any number of viewers. QEMU's socket chardev serves one client at a
// time, so osimg holds that one connection and fans it out: every viewer sees the output (starting with
// the recent scrollback from the serial log), and what any viewer types goes to the guest.
import { open } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";

const SCROLLBACK_BYTES = 16 * 1024;

export class SerialHub {
  readonly #socketPath: string;
  readonly #logPath: string | undefined;
  readonly #viewers = new Set<Duplex>();
  #socket: Socket | undefined;
  #connecting: Promise<Socket> | undefined;

  constructor(socketPath: string, logPath?: string) {
    this.#socketPath = socketPath;
    this.#logPath = logPath;
  }

  get viewers(): number {
    return this.#viewers.size;
  }

  /** A new viewer: read the console's output, write keystrokes. */
  async open(): Promise<Duplex> {
    const socket = await this.#connect();
    const scrollback = await this.#scrollback();
    const viewer = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        socket.write(chunk, callback);
      },
      destroy: (error, callback) => {
        this.#viewers.delete(viewer);
        callback(error);
      },
    });
    if (scrollback.length > 0) viewer.push(scrollback);
    this.#viewers.add(viewer);
    return viewer;
  }

  /** Ends every viewer and the connection (the VM stopped or is deleted). */
  close(): void {
    for (const viewer of this.#viewers) viewer.push(null);
    this.#viewers.clear();
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #connect(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed) return Promise.resolve(this.#socket);
    this.#connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect(this.#socketPath);
      socket.once("connect", () => {
        this.#socket = socket;
        resolve(socket);
      });
      socket.once("error", reject);
      socket.on("data", (chunk: Buffer) => {
        for (const viewer of this.#viewers) viewer.push(chunk);
      });
      socket.on("close", () => {
        if (this.#socket === socket) this.close();
      });
    }).finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #scrollback(): Promise<Buffer> {
    if (!this.#logPath) return Buffer.alloc(0);
    try {
      const handle = await open(this.#logPath, "r");
      try {
        const { size } = await handle.stat();
        const length = Math.min(size, SCROLLBACK_BYTES);
        const buffer = Buffer.alloc(length);
        await handle.read(buffer, 0, length, size - length);
        return buffer;
      } finally {
        await handle.close();
      }
    } catch {
      return Buffer.alloc(0);
    }
  }
}

/** A connection to the VM's VNC server: QEMU's VNC serves several clients, so each viewer gets its own. */
export function openVnc(socketPath: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}
