// A VM's events on the local QEMU provider: the SQLite log (repeats in a row counted, the newest kept,
// deleted with the VM, still there when the file is opened again), and the provider recording creation,
// each phase and condition change, requested actions and failures (as warnings), not the pull's progress,
// without inventing changes when a restarted server finds its VMs again. The provider is the real one
// with a stand-in image store (the pulled image is a real qcow2 made by qemu-img) and a QEMU binary that
// does not exist: everything up to launching QEMU runs for real, no guest is needed.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ImageStore, PullProgress, StoredImage } from "../src/images/store.ts";
import { type Vm, VmEvent } from "../src/vms/model.ts";
import { VmError } from "../src/vms/provider.ts";
import { EVENT_SOURCE, QemuProvider } from "../src/vms/providers/qemu/provider.ts";
import { MAX_EVENTS_PER_VM, VmRecords } from "../src/vms/records.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { entriesOf, specFor } from "./support/fake-kube/vm-specs.ts";
import { tempDir } from "./support/server.ts";

const logger = pino({ level: process.env.OSIMG_TEST_LOG ?? "silent" });
const NS = "demo";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 20_000, interval: 10 });

const normal = (reason: string, message = `${reason} happened`) => ({
  type: "Normal" as const,
  reason,
  message,
  source: "test",
});

describe("the event log in SQLite", () => {
  it("counts the same event in a row instead of repeating it, and keeps the order", () => {
    const records = new VmRecords(":memory:");
    records.recordEvent(NS, "a", { ...normal("Started"), time: "2026-01-01T00:00:00.000Z" });
    records.recordEvent(NS, "a", { ...normal("Pulling"), time: "2026-01-01T00:00:01.000Z" });
    records.recordEvent(NS, "a", { ...normal("Pulling"), time: "2026-01-01T00:00:02.000Z" });
    const third = records.recordEvent(NS, "a", { ...normal("Pulling"), time: "2026-01-01T00:00:03.000Z" });
    expect(third).toMatchObject({ count: 3, firstTime: "2026-01-01T00:00:01.000Z" });
    // Not in a row: a new event. Another message, type or source: another event.
    records.recordEvent(NS, "a", { ...normal("Started"), time: "2026-01-01T00:00:04.000Z" });
    records.recordEvent(NS, "a", { ...normal("Started"), type: "Warning", time: "2026-01-01T00:00:05.000Z" });
    records.recordEvent(NS, "a", { ...normal("Started", "other"), type: "Warning" });
    records.recordEvent(NS, "b", normal("Started"));
    const events = records.events(NS, "a");
    expect(events.map((e) => [e.reason, e.type, e.count])).toEqual([
      ["Started", "Normal", 1],
      ["Pulling", "Normal", 3],
      ["Started", "Normal", 1],
      ["Started", "Warning", 1],
      ["Started", "Warning", 1],
    ]);
    expect(events[1]).toEqual({
      time: "2026-01-01T00:00:03.000Z",
      firstTime: "2026-01-01T00:00:01.000Z",
      type: "Normal",
      reason: "Pulling",
      message: "Pulling happened",
      count: 3,
      source: "test",
    });
    expect(events[0]).not.toHaveProperty("firstTime");
    for (const event of events) expect(VmEvent.parse(event)).toEqual(event);
    expect(records.events(NS, "b")).toHaveLength(1);
    records.close();
  });

  it("keeps the newest MAX_EVENTS_PER_VM events of each VM", () => {
    const records = new VmRecords(":memory:");
    for (let i = 0; i < MAX_EVENTS_PER_VM + 50; i++) records.recordEvent(NS, "a", normal(`Step${i}`));
    records.recordEvent(NS, "b", normal("Other"));
    const events = records.events(NS, "a");
    expect(MAX_EVENTS_PER_VM).toBe(200);
    expect(events).toHaveLength(MAX_EVENTS_PER_VM);
    expect(events[0]?.reason).toBe("Step50");
    expect(events.at(-1)?.reason).toBe(`Step${MAX_EVENTS_PER_VM + 49}`);
    expect(records.events(NS, "b")).toHaveLength(1);
    // A smaller cap, for what a repeat does at the cap: counted, nothing dropped.
    const small = new VmRecords(":memory:", { maxEventsPerVm: 3 });
    for (const reason of ["A", "B", "C", "D", "D"]) small.recordEvent(NS, "a", normal(reason));
    expect(small.events(NS, "a").map((e) => `${e.reason}×${e.count}`)).toEqual(["B×1", "C×1", "D×2"]);
    records.close();
    small.close();
  });

  it("cuts a long message (a log tail) like Kubernetes does", () => {
    const records = new VmRecords(":memory:");
    const event = records.recordEvent(NS, "a", normal("Exited", "x".repeat(5000)));
    expect(event.message).toHaveLength(1024);
    expect(records.events(NS, "a")[0]?.message).toBe(event.message);
    records.close();
  });

  it("deletes a VM's events with it, survives reopening the file, and starts a new VM of that name afresh", () => {
    const path = join(tempDir("osimg-events-db-"), "osimg.db");
    const record = (name: string) => ({
      namespace: NS,
      name,
      provider: "qemu",
      spec: {} as never,
      createdAt: new Date().toISOString(),
      instanceId: name,
      runtime: {},
    });
    let records = new VmRecords(path);
    records.insert(record("a"));
    records.insert(record("b"));
    records.recordEvent(NS, "a", normal("Created"));
    records.recordEvent(NS, "b", normal("Created"));
    records.recordEvent(NS, "b", normal("Created"));
    // A second insert of the same name is refused and leaves the first one's events alone.
    expect(() => records.insert(record("b"))).toThrow(/exists/);
    records.close();

    records = new VmRecords(path);
    expect(records.events(NS, "b").map((e) => [e.reason, e.count])).toEqual([["Created", 2]]);
    records.delete(NS, "b");
    expect(records.events(NS, "b")).toEqual([]);
    expect(records.events(NS, "a")).toHaveLength(1);
    // Events left without their VM (a crash between the two) are not a new VM's.
    records.recordEvent(NS, "c", normal("Leftover"));
    records.insert(record("c"));
    expect(records.events(NS, "c")).toEqual([]);
    records.close();
  });
});

describe("the local QEMU provider's events", () => {
  let dataDir: string;
  let base: string;
  let provider: QemuProvider;
  const progressCalls = { count: 0 };
  const forcedAccel = process.env.OSIMG_ACCEL;

  /** A store whose pull reports progress many times and then has the image (a real, empty qcow2). */
  function images(): ImageStore {
    const stored: StoredImage = {
      sha256: "a".repeat(64),
      sha512: "b".repeat(128),
      sourceUrl: "https://images.example.test/ubuntu.img",
      format: "qcow2",
      virtualSize: 64 * 2 ** 20,
      size: 200_000,
      fetchedAt: new Date().toISOString(),
      download: { size: 200_000, sha256: "a".repeat(64), sha512: "b".repeat(128) },
      checksum: { status: "unverified" },
    };
    const store = {
      get: async () => undefined,
      findBySource: async () => undefined,
      pathOf: () => base,
      pull: async (_url: string, options: { onProgress?: (p: PullProgress) => void }) => {
        for (let received = 0; received <= 100; received += 2) {
          progressCalls.count++;
          options.onProgress?.({ phase: "download", received, total: 100 });
          await new Promise((r) => setImmediate(r));
        }
        return stored;
      },
    };
    return store as unknown as ImageStore;
  }

  const open = () =>
    new QemuProvider({
      dataDir,
      images: images(),
      logger,
      // Everything up to launching QEMU is real; the launch itself fails as on a host without QEMU.
      qemuBinary: "/nonexistent/qemu-system-x86_64",
    });
  const spec = () => specFor(entriesOf(catalogYaml([UBUNTU]))[0] as never, "ev", NS);
  const phase = async () => ((await provider.get(NS, "ev")) as Vm).status.phase;
  const summary = async () =>
    (await provider.events(NS, "ev")).map((e) => `${e.type === "Warning" ? "!" : ""}${e.reason}×${e.count}`);

  beforeAll(() => {
    // No accelerator probe (it would look for QEMU): the choice is made here.
    process.env.OSIMG_ACCEL = "tcg";
    dataDir = tempDir("osimg-vm-events-");
    base = join(dataDir, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    provider = open();
  });

  afterAll(async () => {
    await provider?.close();
    if (forcedAccel === undefined) delete process.env.OSIMG_ACCEL;
    else process.env.OSIMG_ACCEL = forcedAccel;
  });

  it("records the creation, each phase and condition change and the failure (a warning), not the pull's progress", async () => {
    await provider.create(spec());
    await waitFor(async () => expect(await phase()).toBe("Failed"));
    expect(progressCalls.count).toBeGreaterThan(40);
    const events = await provider.events(NS, "ev");
    expect(events.map((e) => [e.type, e.reason])).toEqual([
      ["Normal", "Created"],
      ["Normal", "Provisioning"],
      ["Normal", "Pulling"],
      ["Normal", "Pulled"],
      ["Normal", "Starting"],
      ["Warning", "QemuMissing"],
      ["Warning", "Failed"],
    ]);
    const by = (reason: string) => events.find((e) => e.reason === reason) as VmEvent;
    expect(by("Created").message).toBe(
      "created: Ubuntu 24.04 (catalog entry ubuntu-24.04), 1 vCPU, 1G memory, 20G disk",
    );
    expect(by("Pulling").message).toBe(`ImageReady=False: pulling ${UBUNTU.OS_IMAGE_URL}`);
    expect(by("Pulled").message).toMatch(
      /^ImageReady=True: sha256:aaaaaaaaaaaa \(qcow2, verified: unverified\)$/,
    );
    expect(by("QemuMissing").message).toMatch(/^Failure=True: QEMU is not installed/);
    expect(by("Failed").message).toBe("the VM failed (QemuMissing)");
    expect(events.every((e) => e.source === EVENT_SOURCE && e.count === 1)).toBe(true);
    expect(events.map((e) => e.time)).toEqual(events.map((e) => e.time).sort());
    for (const event of events) expect(VmEvent.parse(event)).toEqual(event);
  });

  it("records a requested action and what follows; the same request at once is counted, not repeated", async () => {
    const before = (await summary()).length;
    // Both requests are recorded when made, before either runs.
    await Promise.all([provider.act(NS, "ev", "start"), provider.act(NS, "ev", "start")]);
    await waitFor(async () => expect((await summary()).length).toBe(before + 7));
    expect((await summary()).slice(before)).toEqual([
      "StartRequested×2",
      "Starting×1",
      "!QemuMissing×1",
      "!Failed×1",
      "Starting×1",
      "!QemuMissing×1",
      "!Failed×1",
    ]);
    expect((await provider.events(NS, "ev"))[before]?.message).toBe("start requested");
  });

  it("keeps the events when the server restarts, and records no change for the state it finds", async () => {
    const before = await provider.events(NS, "ev");
    await provider.close();
    provider = open();
    await provider.init();
    expect(await phase()).toBe("Failed");
    expect(await provider.events(NS, "ev")).toEqual(before);
  });

  it("deletes the events with the VM; an unknown VM has none to show", async () => {
    await provider.delete(NS, "ev");
    const error = await provider.events(NS, "ev").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmError);
    expect(error).toMatchObject({ kind: "not_found", message: 'no VM "ev" in namespace "demo"' });
    const records = new VmRecords(join(dataDir, "osimg.db"));
    expect(records.events(NS, "ev")).toEqual([]);
    records.close();
  });
});
