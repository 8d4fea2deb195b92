// Driving VMs through a test server's HTTP API, and looking for their QEMU processes.
import { readdir, readFile } from "node:fs/promises";
import type { Vm } from "../../src/vms/model.ts";
import { eventually, type TestServer } from "./server.ts";

export const BOOT_MS = 180_000;

export class VmApi {
  readonly server: () => TestServer;
  readonly namespace: string;

  /** `server` is a getter: tests replace the server when they restart it. */
  constructor(server: () => TestServer, namespace = "demo") {
    this.server = server;
    this.namespace = namespace;
  }

  url(name = ""): string {
    return `/api/v1/namespaces/${this.namespace}/vms${name ? `/${name}` : ""}`;
  }

  async get(name: string): Promise<Vm> {
    return (await (await this.server().get(this.url(name))).json()) as Vm;
  }

  post(path: string, body?: unknown): Promise<Response> {
    return fetch(`${this.server().url}${path}`, {
      method: "POST",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  }

  delete(name: string): Promise<Response> {
    return fetch(`${this.server().url}${this.url(name)}`, { method: "DELETE" });
  }

  async waitForPhase(name: string, phase: Vm["status"]["phase"], timeoutMs = BOOT_MS): Promise<Vm> {
    let last: Vm | undefined;
    await eventually(
      async () => {
        last = await this.get(name);
        if (last.status.phase === "Failed")
          throw new Error(`VM ${name} failed: ${JSON.stringify(last.status.conditions)}`);
        return last.status.phase === phase;
      },
      timeoutMs,
      `VM ${name} to be ${phase}`,
    );
    return last as Vm;
  }

  /** Opens the serial console, sends `input`, and collects what the guest prints until `until` appears. */
  async consoleExchange(name: string, input: string, until: RegExp): Promise<string> {
    const socket = new WebSocket(`${this.server().url.replace("http", "ws")}${this.url(name)}/console`);
    socket.binaryType = "arraybuffer";
    let output = "";
    try {
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error("console did not open"));
      });
      socket.onmessage = (event) => {
        output += Buffer.from(event.data as ArrayBuffer).toString("latin1");
      };
      socket.send(input);
      await eventually(() => until.test(output), 30_000, `${until} on the console`);
      return output;
    } finally {
      socket.close();
    }
  }
}

/** QEMU processes whose command line mentions `dataDir` (the VMs of one test's server). */
export async function qemuProcesses(dataDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith("qemu-system") && cmdline.includes(dataDir)) pids.push(Number(entry));
  }
  return pids;
}
