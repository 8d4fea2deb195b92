// Builds on the HTTP API of a real `osimg serve`: a spec with errors answers 400 with its findings at
// line:column; a valid one is built in the background (on a synthetic root filesystem put into the
// server's build cache, so it takes seconds), its log streamed as server-sent events, its record on
// GET /api/v1/builds/{id}; a build that fails says why, at the spec's line.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declaredRoutes } from "../src/server/policy.ts";
import { seedSyntheticBase } from "./support/build.ts";
import { startTestServer, type TestServer } from "./support/server.ts";

const SPEC = `[from_repo]
suite = "bookworm"
version = "7"

[[users]]
name = "ops"

[[copy_files]]
src = "files/hello.txt"
dst = "/etc/hello.txt"
mode = "0640"
owner = "ops"

[systemd_service]
name = ["demo"]

[disk_partition]
root = 256
`;

let server: TestServer;

interface View {
  id: string;
  state: string;
  kind: string;
  runner: string;
  findings?: unknown[];
  record: { buildId: string; baseCached: boolean; outputs: { name: string; path: string }[] };
}
const json = async <T = View>(response: Response) => (await response.json()) as T;

async function post(body: unknown): Promise<Response> {
  return fetch(`${server.url}/api/v1/builds`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Reads a build's server-sent events until the stream ends. */
async function events(id: string): Promise<{ event: string; data: unknown }[]> {
  const response = await server.get(`/api/v1/builds/${id}/logs`);
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const text = await response.text();
  return text
    .split("\n\n")
    .filter(Boolean)
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "";
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
      return { event, data };
    });
}

beforeAll(async () => {
  server = await startTestServer();
  await seedSyntheticBase(server.dataDir, SPEC);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("/api/v1/builds", () => {
  it("every build route declares its policy", () => {
    const routes = declaredRoutes(server.app).filter((r) => r.url.startsWith("/api/v1/builds"));
    expect(routes.map((r) => `${r.method} ${r.url} ${r.policy?.action}`).sort()).toEqual([
      "GET /api/v1/builds build.read",
      "GET /api/v1/builds/:id build.read",
      "GET /api/v1/builds/:id/logs build.read",
      "HEAD /api/v1/builds build.read",
      "HEAD /api/v1/builds/:id build.read",
      "HEAD /api/v1/builds/:id/logs build.read",
      "POST /api/v1/builds build.create",
    ]);
  });

  it("a spec with errors answers 400 with each finding at line:column", async () => {
    const response = await post({
      kind: "vm-img",
      spec: '[from_repo]\nsuite = "bookworm"\nroot_passwd = "hunter2"\n',
    });
    expect(response.status).toBe(400);
    const body = await json<{ error: string; details: unknown[] }>(response);
    expect(body.error).toBe("invalid_spec");
    expect(body.details).toEqual([
      {
        field: "spec:3:15 from_repo.root_passwd",
        message: expect.stringMatching(/plaintext passwords are refused .*fix: .*mkpasswd/),
      },
    ]);
    expect((await post({ kind: "vm-img", spec: SPEC, files: { "../x": "" } })).status).toBe(400);
    expect((await post({ kind: "laptop", spec: SPEC })).status).toBe(400);
  });

  it("builds in the background: 202, the log as server-sent events, the record when done", async () => {
    const response = await post({
      kind: "vm-img",
      spec: SPEC,
      files: { "files/hello.txt": Buffer.from("hello from the API\n").toString("base64") },
    });
    expect(response.status).toBe(202);
    const queued = await json(response);
    expect(queued).toMatchObject({ kind: "vm-img", runner: "local" });
    expect(["queued", "running"]).toContain(queued.state);
    const stream = await events(queued.id);
    const last = stream.at(-1);
    expect(last?.event, JSON.stringify(stream.slice(-5))).toBe("done");
    const lines = stream.filter((e) => e.event === "log").map((e) => e.data as string);
    expect(lines).toContain(
      "==> customize.rootfs: users, passwords, os-release, files and units in the root filesystem",
    );
    expect(lines.some((l) => l.startsWith("==> disk.qcow2"))).toBe(true);
    const view = await json(await server.get(`/api/v1/builds/${queued.id}`));
    expect(view.state).toBe("succeeded");
    expect(view.record.baseCached).toBe(true);
    // One id for the build: the API's is the builder's (its log, work and scratch directories, build.json).
    expect(view.record.buildId).toBe(queued.id);
    expect(lines[0]).toMatch(
      new RegExp(`^build ${queued.id}: vm-img .*, scratch in \\S+osimg-build-${queued.id}\\)$`),
    );
    const qcow2 = view.record.outputs.find((o) => o.name === "system.qcow2");
    expect(qcow2?.path).toBe(join(server.dataDir, "build", "outputs", queued.id, "system.qcow2"));
    expect(
      (await readFile(join(server.dataDir, "build", "outputs", queued.id, "build.json"), "utf8")).length,
    ).toBeGreaterThan(100);
    const list = await json<View[]>(await server.get("/api/v1/builds"));
    expect(list.map((b) => b.id)).toContain(queued.id);
    // The stream of a finished build: its whole log, then done.
    expect((await events(queued.id)).at(-1)?.event).toBe("done");
  }, 120_000);

  it("a build that fails says why, at the spec's line", async () => {
    const response = await post({
      kind: "vm-img",
      spec: SPEC.replace('name = ["demo"]', 'name = ["missing"]'),
      files: { "files/hello.txt": "aGk=" },
    });
    const { id } = await json(response);
    const stream = await events(id);
    expect(stream.at(-1)?.event).toBe("failed");
    const view = await json(await server.get(`/api/v1/builds/${id}`));
    expect(view.state).toBe("failed");
    expect(view.findings).toEqual([
      expect.objectContaining({
        path: "systemd_service.name[0]",
        line: 15,
        column: 9,
        message: "systemd unit missing.service is not in the image",
      }),
    ]);
    expect((await server.get("/api/v1/builds/nope")).status).toBe(404);
  }, 120_000);
});
