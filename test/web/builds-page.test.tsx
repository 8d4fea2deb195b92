// @vitest-environment happy-dom
// The builds pages against a fake server: the list (kind, state, where, duration, log length), and one
// build with its log followed live (backlog, new lines, then the build as it ended), its outputs and
// steps, and a failed build's error and spec findings at their lines.
import { cleanup, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Route } from "wouter";
import type { BuildView } from "../../web/src/api/builds.ts";
import { formatDuration } from "../../web/src/format.ts";
import BuildDetailsPage from "../../web/src/pages/BuildDetailsPage.tsx";
import BuildsPage from "../../web/src/pages/BuildsPage.tsx";
import { EventFeed, fakeServer, renderAt } from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const RUNNING: BuildView = {
  id: "b1a2b3",
  kind: "vm-img",
  state: "running",
  runner: "local",
  createdAt: "2026-01-02T03:04:00Z",
  startedAt: new Date(Date.now() - 65_000).toISOString(),
  logLines: 2,
};

const SUCCEEDED: BuildView = {
  ...RUNNING,
  state: "succeeded",
  startedAt: "2026-01-02T03:04:00Z",
  finishedAt: "2026-01-02T03:05:40Z",
  logLines: 3,
  record: {
    durationMs: 100_000,
    steps: [
      { id: "bootstrap", ms: 61_000, cached: true },
      { id: "disk", ms: 9_500, cached: false },
    ],
    outputs: [
      {
        name: "disk.qcow2",
        path: "out/disk.qcow2",
        kind: "file",
        sha256: "ab".repeat(32),
        size: 512 * 2 ** 20,
      },
    ],
  },
};

const FAILED: BuildView = {
  id: "b9",
  kind: "container-disk",
  state: "failed",
  runner: "cluster",
  createdAt: "2026-01-02T02:00:00Z",
  startedAt: "2026-01-02T02:00:01Z",
  finishedAt: "2026-01-02T02:00:03Z",
  error: "the spec has errors",
  findings: [
    {
      severity: "error",
      code: "spec.unknown-key",
      path: "image.sise",
      line: 4,
      column: 1,
      message: 'unknown key "sise"',
      hint: 'did you mean "size"?',
    },
  ],
  logLines: 1,
};

describe("Builds page", () => {
  it("lists the builds: kind, state, where, duration and log length, each linking to its details", async () => {
    fakeServer({ "GET /api/v1/builds": () => ({ body: [RUNNING, FAILED] }) });
    renderAt("/builds", <BuildsPage />);
    const table = await screen.findByRole("grid", { name: "Builds" });
    const rows = within(table).getAllByRole("row").slice(1);
    const cells = (row: HTMLElement | undefined) =>
      ["Build", "Kind", "State", "Runs on", "Duration", "Log"].map((l) =>
        row?.querySelector(`[data-label="${l}"]`)?.textContent?.trim(),
      );
    expect(cells(rows[0])).toEqual([
      "b1a2b3",
      "vm-img",
      "running",
      "this server",
      expect.stringMatching(/^1 min \d+ s$/),
      "2 lines",
    ]);
    expect(cells(rows[1])).toEqual(["b9", "container-disk", "failed", "Kubernetes Job", "2.0 s", "1 line"]);
    expect(within(table).getByRole("link", { name: "b9" }).getAttribute("href")).toBe("/builds/b9");
  });

  it("says so when there are none", async () => {
    fakeServer({ "GET /api/v1/builds": () => ({ body: [] }) });
    renderAt("/builds", <BuildsPage />);
    expect(await screen.findByRole("heading", { name: "No builds yet" })).toBeTruthy();
  });
});

describe("Build details page", () => {
  const details = (path: string) =>
    renderAt(
      path,
      <Route path="/builds/:id">
        <BuildDetailsPage />
      </Route>,
    );

  it("follows the log live, then shows the build as it ended: outputs and steps", async () => {
    const feed = new EventFeed();
    fakeServer({
      "GET /api/v1/builds/b1a2b3": () => ({ body: RUNNING }),
      "GET /api/v1/builds": () => ({ body: [RUNNING] }),
      "GET /api/v1/builds/b1a2b3/logs": () => ({ events: feed }),
    });
    details("/builds/b1a2b3");
    const log = await screen.findByRole("log", { name: "Log of build b1a2b3" });
    expect(screen.getByText("(live)")).toBeTruthy();
    await waitFor(() => expect(feed.open).toBe(1));
    feed.send("log", "bootstrap: cached");
    feed.send("log", "disk: writing GPT");
    await waitFor(() => expect(log.textContent).toBe("bootstrap: cached\ndisk: writing GPT"));
    feed.send("log", "done: out/disk.qcow2");
    feed.send("done", SUCCEEDED);
    await waitFor(() => expect(screen.getByText("succeeded")).toBeTruthy());
    expect(screen.queryByText("(live)")).toBeNull();
    expect(log.textContent).toContain("done: out/disk.qcow2");
    const outputs = screen.getByRole("grid", { name: "Outputs" });
    expect(outputs.textContent).toContain("disk.qcow2");
    expect(outputs.textContent).toContain("512 MiB");
    expect(outputs.textContent).toContain(`sha256:${"ab".repeat(32)}`);
    const steps = screen.getByRole("grid", { name: "Steps" });
    expect(steps.textContent).toContain(formatDuration(61_000));
    expect(within(steps).getAllByText("yes")).toHaveLength(1);
    expect(screen.getByText(/1 min 40 s/)).toBeTruthy();
  });

  it("shows a failed build's error and its spec's findings at their lines", async () => {
    const feed = new EventFeed();
    fakeServer({
      "GET /api/v1/builds/b9": () => ({ body: FAILED }),
      "GET /api/v1/builds/b9/logs": () => ({ events: feed }),
    });
    details("/builds/b9");
    expect(await screen.findByText("The build failed: The spec has errors.")).toBeTruthy();
    const findings = screen.getByRole("grid", { name: "Findings of the spec" });
    expect(findings.textContent).toContain("4:1");
    expect(findings.textContent).toContain('unknown key "sise"');
  });

  it("shows why a build cannot be loaded", async () => {
    fakeServer({});
    details("/builds/nope");
    expect(await screen.findByText("no route GET /api/v1/builds/nope")).toBeTruthy();
  });
});
