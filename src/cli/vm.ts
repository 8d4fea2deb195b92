// `osimg vm …`: VMs on a running `osimg serve`, through its HTTP API.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import type { Vm, VmAction, VmEvent } from "../vms/model.ts";
import { ApiClient, ApiRequestError, handled } from "./client.ts";
import { registerRenderCommand } from "./render.ts";
import { renderTable } from "./table.ts";

interface GlobalOptions {
  server: string;
  namespace: string;
}

const DETACH = 0x1d; // Ctrl-]

function client(command: Command): { api: ApiClient; namespace: string } {
  const options = command.optsWithGlobals<GlobalOptions>();
  return {
    api: new ApiClient({ server: options.server, token: process.env.OSIMG_TOKEN }),
    namespace: options.namespace,
  };
}

const vmPath = (namespace: string, name?: string) =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/vms${name ? `/${encodeURIComponent(name)}` : ""}`;

function age(since: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function describeVm(vm: Vm): string {
  const s = vm.status;
  const lines = [
    `name:      ${vm.namespace}/${vm.name}`,
    `image:     ${vm.spec.image.osName}`,
    `size:      ${vm.spec.cpu} vCPU, ${vm.spec.memory} memory, ${vm.spec.storage} disk`,
    `phase:     ${s.phase}${s.importProgress !== undefined ? ` (image ${s.importProgress}%)` : ""}`,
  ];
  if (s.runtime) lines.push(`runtime:   ${s.runtime}`);
  if (s.ipAddresses.length > 0) lines.push(`addresses: ${s.ipAddresses.join(", ")}`);
  if (s.ssh) lines.push(`ssh:       ssh -p ${s.ssh.port} ${s.ssh.user}@${s.ssh.host}`);
  if (s.timeToReadyMs !== undefined) lines.push(`ready in:  ${(s.timeToReadyMs / 1000).toFixed(1)} s`);
  for (const c of s.conditions)
    lines.push(`condition: ${c.type}=${c.status} ${c.reason}${c.message ? `: ${c.message}` : ""}`);
  for (const n of s.notes) lines.push(`note:      ${n}`);
  return lines.join("\n");
}

/**
 * A VM's events under its description, like the end of `kubectl describe`: oldest first, a repeat as
 * "4m (x3 over 10m)". `events` is a string when they could not be read.
 */
export function describeEvents(events: readonly VmEvent[] | string, now = Date.now()): string {
  if (typeof events === "string") return `events:    (cannot list them: ${events})`;
  if (events.length === 0) return "events:    <none>";
  const rows = events.map((e) => [
    e.type,
    e.reason,
    e.count > 1
      ? `${age(e.time, now)} (x${e.count} over ${age(e.firstTime ?? e.time, now)})`
      : age(e.time, now),
    e.source,
    `${e.object ? `${e.object.kind}/${e.object.name}: ` : ""}${e.message}`,
  ]);
  const table = renderTable(["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], rows);
  return `events:\n${table
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n")}`;
}

async function readKey(pathOrKey: string): Promise<string> {
  if (/^(ssh-|ecdsa-|sk-)/.test(pathOrKey)) return pathOrKey;
  return (await readFile(pathOrKey.replace(/^~(?=\/)/, process.env.HOME ?? "~"), "utf8")).trim();
}

async function waitForPhase(
  api: ApiClient,
  namespace: string,
  name: string,
  phases: string[],
  timeoutMs: number,
): Promise<Vm> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const vm = await api.request<Vm>("GET", vmPath(namespace, name));
    const line = `${vm.status.phase}${vm.status.importProgress !== undefined ? ` ${vm.status.importProgress}%` : ""}`;
    if (line !== last && process.stderr.isTTY) process.stderr.write(`${name}: ${line}\n`);
    last = line;
    if (phases.includes(vm.status.phase)) return vm;
    if (vm.status.phase === "Failed") return vm;
    if (Date.now() > deadline) return vm;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The flags of a VM request, shared by `vm create` and `vm render`. */
export function addRequestOptions(command: Command): Command {
  return command
    .requiredOption("--name <name>", "the VM's name (DNS-1123 label)")
    .requiredOption("--image <os-name>", "the catalog entry's OS_NAME")
    .option("--cpu <n>", "vCPUs", (v) => Number(v))
    .option("--memory <quantity>", 'memory, e.g. "2G" or "2Gi"')
    .option("--storage <quantity>", 'root disk, e.g. "20G"')
    .option("--ssh-key <path-or-key...>", "SSH public keys (files or the keys themselves)")
    .option("--password-stdin", "read a password for CLOUD_USER from standard input")
    .option("--user-data <file>", "a #cloud-config merged over the entry's CLOUD_INIT")
    .option("--run-strategy <strategy>", "Always, RerunOnFailure, Manual, Halted or Once");
}

/** The request body of those flags: SSH keys read from their files, the password from standard input. */
export async function requestBody(options: Record<string, unknown>): Promise<Record<string, unknown>> {
  return {
    name: options.name,
    image: options.image,
    cpu: options.cpu,
    memory: options.memory,
    storage: options.storage,
    sshKeys: await Promise.all(((options.sshKey as string[] | undefined) ?? []).map(readKey)),
    password: options.passwordStdin ? (await readStdin()).replace(/\r?\n$/, "") : undefined,
    userData: options.userData ? await readFile(options.userData as string, "utf8") : undefined,
    runStrategy: options.runStrategy,
  };
}

export function registerVmCommands(program: Command): void {
  const vm = program
    .command("vm")
    .description("create and operate VMs from catalog entries (on a running `osimg serve`)")
    .option("--server <url>", "the osimg server", process.env.OSIMG_SERVER ?? "http://127.0.0.1:8080")
    .option("-n, --namespace <ns>", "the project namespace", process.env.OSIMG_NAMESPACE ?? "default");

  addRequestOptions(
    vm
      .command("create")
      .description("create a VM from a catalog entry; sizes default to the entry's minimums"),
  )
    .option("--wait", "wait until the VM is Ready (or fails)")
    .option("--dry-run", "print what would be created, create nothing")
    .action(
      handled(async (options: Record<string, unknown>, command: Command) => {
        const { api, namespace } = client(command);
        const body = await requestBody(options);
        if (options.dryRun) {
          const { rendered } = await api.request<{ rendered: { text: string } }>(
            "POST",
            `${vmPath(namespace)}?dryRun=true`,
            body,
          );
          process.stdout.write(`${rendered.text}\n`);
          return;
        }
        let created = await api.request<Vm>("POST", vmPath(namespace), body);
        if (options.wait) created = await waitForPhase(api, namespace, created.name, ["Ready"], 30 * 60_000);
        process.stdout.write(`${describeVm(created)}\n`);
        if (options.wait && created.status.phase !== "Ready") process.exitCode = 1;
      }),
    );

  vm.command("list")
    .description("list the VMs of the namespace")
    .option("--json", "print JSON")
    .action(
      handled(async (options: { json?: boolean }, command: Command) => {
        const { api, namespace } = client(command);
        const { items } = await api.request<{ items: Vm[] }>("GET", vmPath(namespace));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
          return;
        }
        const rows = items.map((v) => [
          v.name,
          v.status.phase,
          v.spec.image.osName,
          `${v.spec.cpu}`,
          v.spec.memory,
          v.spec.storage,
          v.status.ipAddresses.join(","),
          age(v.createdAt),
        ]);
        process.stdout.write(
          `${renderTable(["NAME", "PHASE", "OS", "VCPU", "MEMORY", "STORAGE", "IP", "AGE"], rows)}\n`,
        );
      }),
    );

  vm.command("get")
    .description("show a VM with its status and, at the end, its events (oldest first)")
    .argument("<name>")
    .option("--json", "print JSON (the VM; its events are in `vm events --json`)")
    .action(
      handled(async (name: string, options: { json?: boolean }, command: Command) => {
        const { api, namespace } = client(command);
        const found = await api.request<Vm>("GET", vmPath(namespace, name));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
          return;
        }
        // The VM is shown even when its events cannot be read (an older server, no right to list Events).
        const events = await api
          .request<{ items: VmEvent[] }>("GET", `${vmPath(namespace, name)}/events`)
          .then(
            (answer) => answer.items,
            (error: unknown) => {
              if (error instanceof ApiRequestError) return error.body.message ?? `HTTP ${error.status}`;
              throw error;
            },
          );
        process.stdout.write(`${describeVm(found)}\n${describeEvents(events)}\n`);
      }),
    );

  vm.command("events")
    .description("what happened to a VM (phase and condition changes, actions, failures), oldest first")
    .argument("<name>")
    .option("--json", "print JSON")
    .action(
      handled(async (name: string, options: { json?: boolean }, command: Command) => {
        const { api, namespace } = client(command);
        const { items } = await api.request<{ items: VmEvent[] }>("GET", `${vmPath(namespace, name)}/events`);
        process.stdout.write(
          options.json ? `${JSON.stringify(items, null, 2)}\n` : `${describeEvents(items)}\n`,
        );
      }),
    );

  for (const action of ["start", "stop", "restart", "pause", "unpause"] as VmAction[]) {
    vm.command(action)
      .description(`${action} a VM`)
      .argument("<name>")
      .action(
        handled(async (name: string, _options: unknown, command: Command) => {
          const { api, namespace } = client(command);
          const result = await api.request<Vm>("POST", `${vmPath(namespace, name)}/${action}`);
          process.stdout.write(`${name}: ${result.status.phase}\n`);
        }),
      );
  }

  vm.command("delete")
    .description("delete a VM and everything created for it")
    .argument("<name>")
    .action(
      handled(async (name: string, _options: unknown, command: Command) => {
        const { api, namespace } = client(command);
        await api.request("DELETE", vmPath(namespace, name));
        process.stdout.write(`${name}: deleted\n`);
      }),
    );

  vm.command("console")
    .description("attach the terminal to the VM's serial console (Ctrl-] detaches)")
    .argument("<name>")
    .action(
      handled(async (name: string, _options: unknown, command: Command) => {
        const { api, namespace } = client(command);
        await api.request<Vm>("GET", vmPath(namespace, name));
        await attachConsole(api.websocketUrl(`${vmPath(namespace, name)}/console`), api.headers());
      }),
    );

  vm.command("ssh")
    .description("ssh into the VM as its CLOUD_USER")
    .argument("<name>")
    .argument("[command...]", "a command to run instead of a shell")
    .option("-i, --identity <file>", "the private key")
    .action(
      handled(async (name: string, remote: string[], options: { identity?: string }, command: Command) => {
        const { api, namespace } = client(command);
        const found = await api.request<Vm>("GET", vmPath(namespace, name));
        const ssh = found.status.ssh;
        if (!ssh) {
          process.stderr.write(`error: VM "${name}" has no SSH endpoint (phase ${found.status.phase})\n`);
          process.exitCode = 1;
          return;
        }
        const args = [
          "-p",
          String(ssh.port),
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "LogLevel=ERROR",
        ];
        if (options.identity) args.push("-i", options.identity);
        args.push(`${ssh.user}@${ssh.host}`, ...remote);
        const child = spawn("ssh", args, { stdio: "inherit" });
        process.exitCode = await new Promise<number>((resolve) =>
          child.on("exit", (code) => resolve(code ?? 1)),
        );
      }),
    );

  registerRenderCommand(vm);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Bridges the terminal (raw mode) and the console WebSocket until Ctrl-] or the console closes. */
async function attachConsole(url: string, headers: Record<string, string>): Promise<void> {
  const socket = new WebSocket(url, { headers } as unknown as string[]);
  socket.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true });
    socket.addEventListener("error", () => reject(new Error(`cannot open the console at ${url}`)), {
      once: true,
    });
  });
  process.stderr.write("connected to the serial console; Ctrl-] detaches\r\n");
  const stdin = process.stdin;
  if (stdin.isTTY) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    const finish = () => {
      stdin.off("data", onInput);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      resolve();
    };
    const onInput = (data: Buffer) => {
      if (data.includes(DETACH)) {
        socket.close();
        return;
      }
      socket.send(data);
    };
    stdin.on("data", onInput);
    socket.addEventListener("message", (event) =>
      process.stdout.write(Buffer.from(event.data as ArrayBuffer)),
    );
    socket.addEventListener("close", finish, { once: true });
  });
  process.stderr.write("\r\ndetached\r\n");
}
