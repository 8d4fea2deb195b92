// GET /api/v1/namespaces/{ns}/vms/{name}/events on a real `osimg serve --auth token` with the local QEMU
// provider: a VM whose image is never fetched (the server refuses loopback mirrors) fails at once, and
// its events say so; a start is recorded with what followed; who may read them is who may read the VM;
// an unknown or deleted VM is a 404; the route is described in /openapi.json. And the CLI: `osimg vm get`
// ends with the events (like `kubectl describe`), `osimg vm events` lists them.
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { describeEvents } from "../src/cli/vm.ts";
import { type Vm, VmEvent } from "../src/vms/model.ts";
import { bearer, OTHER, OWN, type RoleTokens, startTokenServer } from "./support/auth.ts";
import { eventually, type TestServer } from "./support/server.ts";

let server: TestServer;
let tokens: RoleTokens;

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;

function osimg(
  args: string[],
  token: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args, "--server", server.url, "-n", OWN], {
      env: { ...process.env, OSIMG_TOKEN: token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const vmUrl = (name: string, namespace = OWN) => `/api/v1/namespaces/${namespace}/vms/${name}`;
const eventsUrl = (name: string, namespace = OWN) => `${vmUrl(name, namespace)}/events`;
const Events = z.object({ items: z.array(VmEvent) });

const post = (path: string, token: string, body?: unknown) =>
  fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { ...bearer(token), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

async function events(name: string, token = tokens.viewer): Promise<VmEvent[]> {
  const response = await server.get(eventsUrl(name), bearer(token));
  expect(response.status, await response.clone().text()).toBe(200);
  // Exactly the documented shape: nothing more, nothing less.
  return Events.strict().parse(await response.json()).items;
}

beforeAll(async () => {
  ({ server, tokens } = await startTokenServer({ prefix: "osimg-vm-events-api-" }));
  const created = await post(`/api/v1/namespaces/${OWN}/vms`, tokens.member, {
    name: "ev",
    image: "Ubuntu 24.04",
  });
  expect(created.status, await created.clone().text()).toBe(201);
  await eventually(
    async () =>
      ((await (await server.get(vmUrl("ev"), bearer(tokens.viewer))).json()) as Vm).status.phase === "Failed",
    20_000,
    "the VM to fail its image pull",
  );
});

afterAll(async () => {
  await server?.stop();
});

describe("a VM's events over the API", () => {
  it("tells what happened, oldest first: created, provisioning, the pull, its failure as a warning", async () => {
    const items = await events("ev");
    expect(items.map((e) => [e.type, e.reason])).toEqual([
      ["Normal", "Created"],
      ["Normal", "Provisioning"],
      ["Normal", "Pulling"],
      ["Warning", "ImagePullFailed"],
      ["Warning", "Failed"],
    ]);
    expect(items[3]?.message).toMatch(/^Failure=True: .*127\.0\.0\.1/);
    expect(items.every((e) => e.source === "osimg-qemu" && e.count === 1)).toBe(true);
    const times = items.map((e) => Date.parse(e.time));
    expect(times.every((t) => !Number.isNaN(t))).toBe(true);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it("records a start and what followed", async () => {
    const before = (await events("ev")).length;
    const started = await post(`${vmUrl("ev")}/start`, tokens.member);
    expect(started.status, await started.clone().text()).toBe(200);
    let items: VmEvent[] = [];
    await eventually(
      async () => {
        items = (await events("ev")).slice(before);
        return items.some((e) => e.reason === "ImagePullFailed");
      },
      20_000,
      "the second pull to fail",
    );
    expect(items.map((e) => e.reason)).toEqual(["StartRequested", "Pulling", "ImagePullFailed"]);
  });

  it("is shown at the end of `osimg vm get`, and by `osimg vm events` (--json)", async () => {
    const get = await osimg(["vm", "get", "ev"], tokens.viewer);
    expect(get.code, get.stderr).toBe(0);
    const [description, table] = get.stdout.split(/^events:\n/m);
    expect(description).toMatch(/^name: +demo\/ev$/m);
    const rows = (table ?? "").trimEnd().split("\n");
    expect(rows[0]).toMatch(/^ {2}TYPE +REASON +AGE +FROM +MESSAGE$/);
    expect(rows[1]).toMatch(/^ {2}Normal +Created +\d+s +osimg-qemu +created: Ubuntu 24\.04/);
    expect(rows.some((r) => /^ {2}Warning +ImagePullFailed +\d+s +osimg-qemu +Failure=True: /.test(r))).toBe(
      true,
    );
    expect(rows.some((r) => /^ {2}Normal +StartRequested +/.test(r))).toBe(true);

    const list = await osimg(["vm", "events", "ev", "--json"], tokens.viewer);
    expect(list.code, list.stderr).toBe(0);
    expect(z.array(VmEvent).parse(JSON.parse(list.stdout))).toEqual(await events("ev"));
    const missing = await osimg(["vm", "events", "nope"], tokens.viewer);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no VM "nope" in namespace "demo"');
  });

  it("reads a repeat like kubectl, and says so when there are none or they cannot be read", () => {
    const now = Date.parse("2026-01-01T01:00:00Z");
    const text = describeEvents(
      [
        {
          time: "2026-01-01T00:56:00Z",
          firstTime: "2026-01-01T00:50:00Z",
          type: "Warning",
          reason: "ProvisioningFailed",
          message: "no storage class",
          count: 3,
          source: "persistentvolume-controller",
          object: { kind: "PersistentVolumeClaim", name: "web-rootdisk" },
        },
      ],
      now,
    );
    expect(text.split("\n")).toEqual([
      "events:",
      "  TYPE     REASON              AGE               FROM                         MESSAGE",
      "  Warning  ProvisioningFailed  4m (x3 over 10m)  persistentvolume-controller  PersistentVolumeClaim/web-rootdisk: no storage class",
    ]);
    expect(describeEvents([])).toBe("events:    <none>");
    expect(describeEvents("forbidden")).toBe("events:    (cannot list them: forbidden)");
  });

  it("is read with the VM's rights: viewers and admins yes, anonymous and other projects no", async () => {
    expect((await server.get(eventsUrl("ev"), bearer(tokens.admin))).status).toBe(200);
    expect((await server.get(eventsUrl("ev"), bearer(tokens.member))).status).toBe(200);
    const anonymous = await server.get(eventsUrl("ev"));
    expect(anonymous.status).toBe(401);
    const elsewhere = await server.get(eventsUrl("ev", OTHER), bearer(tokens.viewer));
    expect(elsewhere.status).toBe(403);
    expect(await elsewhere.json()).toMatchObject({ error: "forbidden" });
  });

  it("answers 404 for a VM that does not exist, and for one deleted with its events", async () => {
    const unknown = await server.get(eventsUrl("nope"), bearer(tokens.viewer));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      error: "not_found",
      message: `no VM "nope" in namespace "${OWN}"`,
    });
    const removed = await fetch(`${server.url}${vmUrl("ev")}`, {
      method: "DELETE",
      headers: bearer(tokens.member),
    });
    expect(removed.status).toBe(204);
    expect((await server.get(eventsUrl("ev"), bearer(tokens.viewer))).status).toBe(404);
    // A new VM of the same name starts with its own events only.
    expect(
      (await post(`/api/v1/namespaces/${OWN}/vms`, tokens.member, { name: "ev", image: "Ubuntu 24.04" }))
        .status,
    ).toBe(201);
    expect((await events("ev"))[0]?.reason).toBe("Created");
    expect((await events("ev")).filter((e) => e.reason === "StartRequested")).toEqual([]);
  });

  it("is described in /openapi.json with its response schema", async () => {
    const api = (await (await server.get("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const route = api.paths["/api/v1/namespaces/{namespace}/vms/{name}/events"]?.get;
    expect(route).toBeDefined();
    expect(Object.keys(route?.responses ?? {})).toEqual(expect.arrayContaining(["200", "404"]));
    const text = JSON.stringify(route?.responses["200"]);
    for (const field of ["time", "type", "reason", "message", "count", "source"])
      expect(text).toContain(field);
    expect(text).toContain("Warning");
  });
});
