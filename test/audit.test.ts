// The audit log: one JSON line per mutating call, refusal and console session — who, what, project and
// object, result, request id (the one the answer carried), time — in a 0600 file rotated by size; and
// `osimg audit tail [-f] [--project]` reading it.
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuditEvent, AuditLog, auditFiles, auditLogPath, readAudit } from "../src/audit/log.ts";
import { setupTenancy, type Tenancy } from "../src/auth/setup.ts";
import { FileCatalogSource } from "../src/catalog/sources/file.ts";
import { CatalogState } from "../src/catalog/state.ts";
import { buildApp } from "../src/server/app.ts";
import type { Vm, VmSpec } from "../src/vms/model.ts";
import { publicSpec } from "../src/vms/model.ts";
import { notFound, type VmProvider, type VmProviderEvents } from "../src/vms/provider.ts";
import { bearer, OTHER, OWN, type RoleTokens, roleTokens, upgrade } from "./support/auth.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { eventually, tempDir } from "./support/server.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;

/** VMs kept in memory, each with an echoing console: the API and audit code under test are the real ones. */
class MemoryProvider extends EventEmitter<VmProviderEvents> implements VmProvider {
  readonly name = "memory";
  readonly vms = new Map<string, Vm>();
  async create(spec: VmSpec): Promise<Vm> {
    const vm: Vm = {
      namespace: spec.namespace,
      name: spec.name,
      provider: this.name,
      createdAt: new Date().toISOString(),
      spec: publicSpec(spec),
      status: {
        phase: "Running",
        conditions: [],
        ipAddresses: [],
        notes: [],
        consoles: { serial: "", vnc: "" },
      },
    };
    this.vms.set(`${spec.namespace}/${spec.name}`, vm);
    return vm;
  }
  async get(namespace: string, name: string) {
    return this.vms.get(`${namespace}/${name}`);
  }
  async list(namespace?: string) {
    return [...this.vms.values()].filter((v) => !namespace || v.namespace === namespace);
  }
  async act(namespace: string, name: string): Promise<Vm> {
    const vm = await this.get(namespace, name);
    if (!vm) throw notFound(namespace, name);
    return vm;
  }
  async events(namespace: string, name: string) {
    if (!this.vms.has(`${namespace}/${name}`)) throw notFound(namespace, name);
    return [];
  }
  async delete(namespace: string, name: string) {
    if (!this.vms.delete(`${namespace}/${name}`)) throw notFound(namespace, name);
  }
  async render() {
    return { format: "argv" as const, text: "" };
  }
  async openConsole(namespace: string, name: string) {
    if (!this.vms.has(`${namespace}/${name}`)) throw notFound(namespace, name);
    const echo: Duplex = new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        echo.push(chunk);
        done();
      },
    });
    return echo;
  }
  async close() {}
}

let app: FastifyInstance;
let url: string;
let tenancy: Tenancy;
let tokens: RoleTokens;
let dataDir: string;
let source: FileCatalogSource;

beforeAll(async () => {
  dataDir = tempDir("osimg-audit-");
  tokens = await roleTokens(dataDir);
  const logger = pino({ level: "silent" });
  const catalogPath = join(dataDir, "catalog.yaml");
  writeFileSync(catalogPath, catalogYaml([UBUNTU]));
  const catalog = new CatalogState();
  source = new FileCatalogSource({ path: catalogPath, state: catalog, logger });
  await source.start();
  tenancy = await setupTenancy({ auth: { mode: "token" }, dataDir, host: "127.0.0.1", logger });
  app = await buildApp({
    catalog,
    catalogSource: source,
    logger,
    vms: { provider: new MemoryProvider() },
    tenancy,
  });
  url = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await source?.stop();
  await tenancy?.close();
});

const call = (method: string, path: string, token?: string, body?: unknown) =>
  fetch(`${url}${path}`, {
    method,
    headers: { ...bearer(token), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

async function events(): Promise<AuditEvent[]> {
  await tenancy.audit.flush();
  return readAudit(tenancy.audit.path);
}

describe("the audit log of a server", () => {
  it("records mutating calls and refusals with who, what, where, result and the request id", async () => {
    const created = await call("POST", `/api/v1/namespaces/${OWN}/vms`, tokens.member, {
      name: "web-1",
      image: UBUNTU.OS_NAME,
    });
    expect(created.status).toBe(201);
    const requestId = created.headers.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call("POST", `/api/v1/namespaces/${OWN}/vms/web-1/stop`, tokens.viewer)).status).toBe(403);
    expect((await call("POST", `/api/v1/namespaces/${OTHER}/vms`, tokens.member, { name: "x" })).status).toBe(
      403,
    );
    expect((await call("DELETE", `/api/v1/namespaces/${OWN}/vms/web-1`, "osimg_bad")).status).toBe(401);
    expect((await call("GET", `/api/v1/namespaces/${OWN}/vms`, tokens.viewer)).status).toBe(200);
    expect((await call("DELETE", `/api/v1/namespaces/${OWN}/vms/web-1`, tokens.member)).status).toBe(204);

    const log = await events();
    expect(log.find((e) => e.requestId === requestId)).toMatchObject({
      who: { subject: tokens.principals.member.subject, name: "member-demo", via: "token" },
      action: "vm.create",
      method: "POST",
      path: `/api/v1/namespaces/${OWN}/vms`,
      namespace: OWN,
      result: "success",
      status: 201,
      ip: "127.0.0.1",
    });
    const summary = log.map(
      (e) => `${e.who.name} ${e.action} ${e.namespace ?? ""}/${e.object ?? ""} ${e.result} ${e.status}`,
    );
    expect(summary).toEqual([
      `member-demo vm.create ${OWN}/ success 201`,
      `viewer-demo vm.operate ${OWN}/web-1/stop denied 403`,
      `member-demo vm.create ${OTHER}/ denied 403`,
      `anonymous vm.delete ${OWN}/web-1 denied 401`,
      `member-demo vm.delete ${OWN}/web-1 success 204`,
    ]);
    for (const e of log) expect(Date.parse(e.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(statSync(tenancy.audit.path).mode & 0o777).toBe(0o600);
  });

  it("records console sessions: opened, closed with duration and bytes; refused and failed ones", async () => {
    await call("POST", `/api/v1/namespaces/${OWN}/vms`, tokens.member, {
      name: "con-1",
      image: UBUNTU.OS_NAME,
    });
    const before = (await events()).length;
    const socket = new WebSocket(`${url.replace("http", "ws")}/api/v1/namespaces/${OWN}/vms/con-1/console`, [
      "osimg.console",
      `bearer.${tokens.member}`,
    ]);
    socket.binaryType = "arraybuffer";
    const echoed = new Promise<string>((resolve) => {
      socket.onmessage = (m) => resolve(Buffer.from(m.data as ArrayBuffer).toString());
    });
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    expect(socket.protocol).toBe("osimg.console");
    socket.send("hello");
    expect(await echoed).toBe("hello");
    socket.close();
    await eventually(async () => (await events()).some((e) => e.event === "closed"), 10_000, "the close");
    expect(
      (await upgrade(`${url}/api/v1/namespaces/${OTHER}/vms/con-1/console`, bearer(tokens.member))).status,
    ).toBe(403);
    const failed = new WebSocket(`${url.replace("http", "ws")}/api/v1/namespaces/${OWN}/vms/absent/console`, [
      "osimg.console",
      `bearer.${tokens.member}`,
    ]);
    await new Promise((resolve) => {
      failed.onclose = resolve;
    });
    await eventually(async () => (await events()).some((e) => e.event === "failed"), 10_000, "the failure");
    const sessions = (await events()).slice(before);
    expect(sessions.map((e) => [e.action, e.object, e.event ?? "", e.result])).toEqual([
      ["vm.console", "con-1", "opened", "success"],
      ["vm.console", "con-1", "closed", "success"],
      ["vm.console", "con-1", "", "denied"],
      ["vm.console", "absent", "failed", "error"],
    ]);
    const closed = sessions[1] as AuditEvent;
    expect(closed.bytes).toEqual({ in: 5, out: 5 });
    expect(closed.durationMs).toBeGreaterThanOrEqual(0);
    expect(sessions[3]?.reason).toMatch(/no VM "absent"/);
  });

  it("is shown by osimg audit tail, filtered by project, and followed with -f", async () => {
    const run = (args: string[]) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [BIN, "audit", "tail", "--data-dir", dataDir, ...args]);
        let out = "";
        child.stdout.on("data", (d) => {
          out += d;
        });
        child.on("exit", () => resolve(out));
      });
    const all = await run(["-n", "100", "--json"]);
    const lines = all
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as AuditEvent);
    expect(lines.length).toBe((await events()).length);
    const other = await run(["--project", OTHER]);
    expect(other.trim().split("\n")).toHaveLength(2); // the create and the console refused in "other"
    expect(other).toMatch(/denied\s+member-demo \(token\)\s+vm\.create POST other\s+403/);

    const follow = spawn(process.execPath, [BIN, "audit", "tail", "-f", "-n", "0", "--data-dir", dataDir]);
    let followed = "";
    let started = "";
    follow.stdout.on("data", (d) => {
      followed += d;
    });
    follow.stderr.on("data", (d) => {
      started += d;
    });
    try {
      await eventually(() => started.includes("following"), 30_000, "the follower to start");
      await call("POST", `/api/v1/namespaces/${OWN}/vms`, tokens.member, {
        name: "late",
        image: UBUNTU.OS_NAME,
      });
      await eventually(() => followed.includes("vm.create POST demo"), 15_000, "the followed event");
      expect(followed.trim().split("\n")).toHaveLength(1);
    } finally {
      follow.kill();
    }
  }, 180_000); // three CLI processes: seconds each on a busy machine
});

describe("rotation", () => {
  it("rotates by size, keeps the newest files, all 0600, no event torn", async () => {
    const path = auditLogPath(tempDir("osimg-audit-rot-"));
    const log = new AuditLog({ path, maxBytes: 2000, keep: 3 });
    await log.open();
    const event = (n: number): AuditEvent => ({
      time: new Date().toISOString(),
      requestId: `r-${n}`,
      who: { subject: "token:x", name: "x", via: "token" },
      action: "vm.create",
      method: "POST",
      path: "/api/v1/namespaces/demo/vms",
      namespace: "demo",
      result: "success",
      status: 201,
    });
    for (let n = 0; n < 100; n++) void log.record(event(n));
    await log.close();
    const files = await auditFiles(path);
    expect(files).toEqual([`${path}.3`, `${path}.2`, `${path}.1`, path]);
    for (const f of files) {
      expect(statSync(f).mode & 0o777).toBe(0o600);
      expect(statSync(f).size).toBeLessThanOrEqual(2000);
    }
    const kept = await readAudit(path);
    // The newest events survive, in order, whole.
    expect(kept.at(-1)?.requestId).toBe("r-99");
    const ids = kept.map((e) => Number(e.requestId.slice(2)));
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => 100 - ids.length + i));
  });
});
