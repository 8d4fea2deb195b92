// @vitest-environment happy-dom
// The UI's pure VM and image logic and its HTTP helpers: the Create VM form's rules, how a VM's state
// reads, command lines for reading, pull progress, the coalescing of refetches, ETag revalidation and
// the server-sent event reader (reconnecting, in order).
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseCatalog } from "../../src/catalog/parse.ts";
import type { PullJob } from "../../src/images/schemas.ts";
import { followEvents, getRevalidated, HttpError } from "../../web/src/api/http.ts";
import { Coalescer, withVm } from "../../web/src/api/vms.ts";
import { pullProgress } from "../../web/src/images/pulls.ts";
import {
  checkForm,
  chooseImage,
  EMPTY_FORM,
  fieldOf,
  keyLines,
  problemsOf,
  requestOf,
} from "../../web/src/vms/form.ts";
import { age, argvLines, phaseView, renderedText, sshCommand } from "../../web/src/vms/status.ts";
import { EventFeed, fakeServer, vmFixture } from "./support.tsx";

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

const ENTRIES = parseCatalog(`images:
  - OS_NAME: "Ubuntu 24.04"
    CLOUD_USER: ubuntu
    OS_IMAGE_URL: "https://images.example.test/noble.img"
    MIN_MEMORY: "2Gi"
    MIN_VCPU: "2"
    MIN_STORAGE: "20G"
`).entries;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3p8n8Qm0pQm4r6c8a1b2c3d4e5f6g7h8i9j0k1l2m3 me@laptop";

describe("the Create VM form's rules", () => {
  const ubuntu = { OS_NAME: "Ubuntu 24.04", MIN_VCPU: "2", MIN_MEMORY: "2Gi", MIN_STORAGE: "20G" };

  it("fills the minimums as written, keeping the name and keys", () => {
    const form = chooseImage({ ...EMPTY_FORM, name: "a", sshKeys: KEY }, ubuntu);
    expect(form).toMatchObject({ name: "a", sshKeys: KEY, cpu: "2", memory: "2Gi", storage: "20G" });
  });

  it("reads the keys of the field: one per line, blank lines and comments skipped", () => {
    expect(keyLines(`\n# laptop\n  ${KEY}  \n\nssh-rsa AAAA x`)).toEqual([
      { line: 3, key: KEY },
      { line: 5, key: "ssh-rsa AAAA x" },
    ]);
  });

  it("makes the request: empty sizes left to the server, the editor's text as cloudInit", () => {
    const { request, problems } = requestOf({
      ...EMPTY_FORM,
      name: "web",
      image: "Ubuntu 24.04",
      cpu: " 4 ",
      memory: "",
      storage: " 30G ",
      cloudInit: "",
    });
    expect(problems).toEqual({});
    expect(request).toEqual({
      name: "web",
      image: "Ubuntu 24.04",
      cpu: 4,
      storage: "30G",
      sshKeys: [],
      cloudInit: "",
    });
    expect(requestOf({ ...EMPTY_FORM, cpu: "1.5" }).problems.cpu?.[0]?.message).toBe(
      '"1.5" is not a whole number',
    );
  });

  it("puts the server's fields on the form's: keys by line, userData on the cloud-init", () => {
    expect(fieldOf("sshKeys[3]")).toBe("sshKeys");
    expect(fieldOf("userData")).toBe("cloudInit");
    expect(fieldOf("runStrategy")).toBe("form");
    const form = { ...EMPTY_FORM, sshKeys: `# mine\n${KEY}\nbad` };
    const problems = problemsOf(
      [
        { field: "sshKeys[1]", message: "not an OpenSSH public key" },
        { field: "cloudInit", message: "not valid YAML", line: 2, column: 5 },
      ],
      form,
    );
    expect(problems.sshKeys).toEqual([{ message: "line 3: not an OpenSSH public key" }]);
    expect(problems.cloudInit).toEqual([{ message: "not valid YAML", line: 2, column: 5 }]);
  });

  it("checks every field at once by the server's rules", () => {
    const form = {
      ...chooseImage(EMPTY_FORM, ubuntu),
      name: "Web",
      cpu: "1",
      memory: "1Gi",
      sshKeys: KEY,
      cloudInit: "#cloud-config\nruncmd: [",
    };
    const problems = checkForm(form, ENTRIES, "demo");
    expect(Object.keys(problems).sort()).toEqual(["cloudInit", "cpu", "memory", "name"]);
    expect(problems.memory?.[0]).toMatchObject({ minimum: "2Gi" });
    expect(checkForm({ ...chooseImage(EMPTY_FORM, ubuntu), name: "web" }, ENTRIES, "demo")).toEqual({});
  });

  it("asks for an operating system without reporting it as unknown", () => {
    const problems = checkForm({ ...EMPTY_FORM, name: "web", cpu: "1" }, ENTRIES, "demo");
    expect(problems).toEqual({ image: [{ message: "choose an operating system" }] });
  });

  it("still checks the sizes when the vCPU count is no number", () => {
    const form = { ...chooseImage(EMPTY_FORM, ubuntu), name: "web", cpu: "x", memory: "1Gi" };
    const problems = checkForm(form, ENTRIES, "demo");
    expect(problems.cpu).toEqual([{ message: '"x" is not a whole number' }]);
    expect(problems.memory?.[0]?.message).toContain("below the minimum");
  });
});

describe("a VM's state in words", () => {
  it("shows the import's progress, booting, and what a condition says is pending", () => {
    expect(phaseView(vmFixture("a", "Provisioning", { importProgress: 42 }))).toMatchObject({
      label: "Importing image",
      progress: 42,
      busy: true,
    });
    expect(phaseView(vmFixture("a", "Running"))).toMatchObject({ label: "Booting", busy: true });
    expect(phaseView(vmFixture("a", "Ready"))).toMatchObject({
      label: "Ready",
      tone: "success",
      busy: false,
    });
    const failed = vmFixture("a", "Failed", {
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "Crashed",
          message: "qemu exited",
          lastTransitionTime: "2026-01-01T00:00:02Z",
        },
        {
          type: "ImageReady",
          status: "True",
          reason: "Pulled",
          message: "ok",
          lastTransitionTime: "2026-01-01T00:00:03Z",
        },
        {
          type: "Started",
          status: "False",
          reason: "Old",
          message: "older",
          lastTransitionTime: "2026-01-01T00:00:01Z",
        },
      ],
    });
    expect(phaseView(failed)).toMatchObject({ label: "Failed", tone: "danger", detail: "qemu exited" });
  });

  it("tells the age like kubectl", () => {
    const now = Date.parse("2026-01-10T00:00:00Z");
    const ago = (ms: number) => age(new Date(now - ms).toISOString(), now);
    expect([ago(5_000), ago(119_000), ago(30 * 60_000), ago(5 * 3600_000), ago(3 * 86400_000)]).toEqual([
      "5s",
      "119s",
      "30m",
      "5h",
      "3d",
    ]);
    expect(ago(-5000)).toBe("0s");
  });

  it("gives the SSH command when the provider publishes one", () => {
    expect(sshCommand(vmFixture("a", "Ready"))).toBe("ssh -p 2222 ubuntu@127.0.0.1");
    expect(sshCommand(vmFixture("a", "Ready", { ssh: { host: "10.0.0.5", port: 22, user: "debian" } }))).toBe(
      "ssh debian@10.0.0.5",
    );
    expect(sshCommand(vmFixture("a", "Stopped"))).toBeUndefined();
  });

  it("groups a command line by option, notes first", () => {
    const text = "# machine type mapped\nqemu-system-x86_64\n-name\nguest=a\n-nodefaults\n-smp\n2\n-S";
    expect(argvLines(text)).toEqual([
      "# machine type mapped",
      "qemu-system-x86_64",
      "  -name guest=a",
      "  -nodefaults",
      "  -smp 2",
      "  -S",
    ]);
    expect(renderedText({ format: "yaml", text: "a: 1\n-b" })).toBe("a: 1\n-b");
  });

  it("keeps the list sorted by name when a VM is put in", () => {
    const list = [vmFixture("b"), vmFixture("d")];
    expect(withVm(list, vmFixture("c")).map((v) => v.name)).toEqual(["b", "c", "d"]);
    expect(withVm(list, vmFixture("b", "Stopped")).map((v) => v.status.phase)).toEqual(["Stopped", "Ready"]);
    expect(withVm(undefined, vmFixture("a")).map((v) => v.name)).toEqual(["a"]);
  });
});

describe("pull progress", () => {
  const job = (progress: PullJob["progress"]): PullJob => ({
    id: "j1",
    source: "https://x.test/a.img",
    state: "running",
    progress,
    startedAt: "2026-01-01T00:00:00Z",
  });
  it("gives a percentage while the size is known", () => {
    expect(pullProgress(job({ phase: "download", received: 512 * 1024, total: 2 * 1024 * 1024 }))).toEqual({
      label: "Downloading: 512 KiB of 2 MiB",
      percent: 25,
    });
    expect(pullProgress(job({ phase: "download", received: 1024 }))).toEqual({ label: "Downloading: 1 KiB" });
    expect(pullProgress(job({ phase: "verify", received: 10, total: 10 }))).toEqual({ label: "Verifying" });
  });
});

describe("Coalescer", () => {
  it("runs once for a burst, and once more for pokes during a run, never twice at once", async () => {
    let running = 0;
    let most = 0;
    const runs: number[] = [];
    let release: () => void = () => {};
    const task = vi.fn(async () => {
      running++;
      most = Math.max(most, running);
      runs.push(Date.now());
      await new Promise<void>((r) => {
        release = r;
      });
      running--;
    });
    const c = new Coalescer(task, 1);
    c.poke();
    c.poke();
    c.poke();
    await vi.waitFor(() => expect(task).toHaveBeenCalledTimes(1));
    c.poke();
    c.poke();
    release();
    await vi.waitFor(() => expect(task).toHaveBeenCalledTimes(2));
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(task).toHaveBeenCalledTimes(2);
    expect(most).toBe(1);
    c.stop();
  });
});

describe("getRevalidated", () => {
  it("sends the ETag back and answers a 304 with the very same object", async () => {
    const seen: (string | null)[] = [];
    let version = 1;
    vi.stubGlobal("fetch", async (_path: string, init: RequestInit) => {
      const tag = new Headers(init.headers).get("if-none-match");
      seen.push(tag);
      const etag = `"v${version}"`;
      if (tag === etag) return new Response(null, { status: 304, headers: { etag } });
      return new Response(JSON.stringify({ version }), { headers: { etag } });
    });
    const first = await getRevalidated<{ version: number }>("/api/v1/test-revalidated");
    const second = await getRevalidated<{ version: number }>("/api/v1/test-revalidated");
    expect(second).toBe(first);
    version = 2;
    const third = await getRevalidated<{ version: number }>("/api/v1/test-revalidated");
    expect(third).toEqual({ version: 2 });
    expect(seen).toEqual([null, '"v1"', '"v1"']);
  });

  it("throws the server's error", async () => {
    fakeServer({
      "GET /api/v1/test-failing": () => ({
        status: 503,
        body: { error: "x", message: "down", hint: "wait" },
      }),
    });
    await expect(getRevalidated("/api/v1/test-failing")).rejects.toMatchObject({
      status: 503,
      body: { message: "down", hint: "wait" },
    });
    await expect(getRevalidated("/api/v1/test-failing")).rejects.toBeInstanceOf(HttpError);
  });
});

describe("followEvents", () => {
  it("delivers events in order, and reconnects (telling so) when the stream ends", async () => {
    const feed = new EventFeed();
    fakeServer({ "GET /api/v1/stream": () => ({ events: feed }) });
    const events: string[] = [];
    let opens = 0;
    let drops = 0;
    const stop = followEvents("/api/v1/stream", {
      onEvent: (e) => events.push(`${e.event}:${e.data}`),
      onOpen: () => opens++,
      onDisconnect: () => drops++,
    });
    await vi.waitFor(() => expect(feed.open).toBe(1));
    feed.send("vm", { name: "a" });
    feed.send("vm", { name: "b" });
    await vi.waitFor(() => expect(events).toEqual(['vm:{"name":"a"}', 'vm:{"name":"b"}']));
    feed.close();
    await vi.waitFor(() => expect(feed.open).toBe(1), { timeout: 3000 });
    expect([opens, drops]).toEqual([2, 1]);
    feed.send("vm", { name: "c" });
    await vi.waitFor(() => expect(events).toHaveLength(3));
    stop();
    await vi.waitFor(() => expect(feed.open).toBe(0));
    expect(feed.opened).toBe(2);
  });
});
