// @vitest-environment happy-dom
// The VMs page and a VM's details against a fake server: the list with status (import progress), phase,
// IPs, OS and age; actions enabled exactly when the server's rule allows them; an action's answer shown at
// once and a refusal in the server's words; delete behind a confirmation; live updates from the event
// stream; the details with SSH command, conditions, events (newest first, live) and notes; tabs in the
// URL; empty and error states.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Route } from "wouter";
import { allowedActions, VM_ACTIONS, type Vm, type VmEvent } from "../../src/vms/model.ts";
import VmDetailsPage from "../../web/src/pages/VmDetailsPage.tsx";
import VmsPage from "../../web/src/pages/VmsPage.tsx";
import { EventFeed, fakeServer, type Reply, renderAt, type SentRequest, vmFixture } from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const LIST = "GET /api/v1/namespaces/demo/vms";

function serve(vms: Vm[], extra: Record<string, (request: SentRequest) => Reply> = {}) {
  const feed = new EventFeed();
  const state = { vms };
  const server = fakeServer({
    [LIST]: () => ({ body: { items: state.vms } }),
    "GET /api/v1/namespaces/demo/vm-events": () => ({ events: feed }),
    ...extra,
  });
  return { ...server, feed, state };
}

const table = () => screen.findByRole("grid", { name: "VMs" });
const rowOf = async (name: string) => {
  const link = await within(await table()).findByRole("link", { name });
  return link.closest("tr") as HTMLElement;
};
const cell = (row: HTMLElement, label: string) =>
  row.querySelector(`[data-label="${label}"]`)?.textContent?.trim();

async function menuOf(name: string) {
  fireEvent.click(await screen.findByRole("button", { name: `Actions for ${name}` }));
  const menu = await screen.findByRole("menu");
  return (label: string) => within(menu).getByRole("menuitem", { name: label }) as HTMLButtonElement;
}

describe("VMs page", () => {
  it("lists the VMs with status, phase, IPs, OS, size and age", async () => {
    serve([vmFixture("db", "Provisioning", { importProgress: 42 }), vmFixture("web", "Ready")]);
    renderAt("/vms?ns=demo", <VmsPage />);
    const web = await rowOf("web");
    expect(cell(web, "Status")).toBe("Ready");
    expect(cell(web, "Phase")).toBe("Ready");
    expect(cell(web, "IP addresses")).toBe("10.0.2.15");
    expect(cell(web, "Operating system")).toBe("Ubuntu 24.04");
    expect(cell(web, "Size")).toBe("2 vCPU, 2Gi, 20G");
    expect(cell(web, "Age")).toMatch(/^9\ds$/);
    expect((web.querySelector('[data-label="Name"] a') as HTMLAnchorElement).getAttribute("href")).toBe(
      "/vms/web?ns=demo",
    );
    const db = await rowOf("db");
    expect(cell(db, "Status")).toContain("Importing image 42%");
    expect(within(db).getByRole("progressbar", { name: "Image import of db" })).toBeTruthy();
    expect(screen.getByText(/2 VMs in project demo/)).toBeTruthy();
  });

  it("enables exactly the actions the server allows in each phase", async () => {
    const phases = ["Ready", "Stopped", "Paused", "Stopping", "Provisioning"] as const;
    serve(phases.map((phase) => vmFixture(phase.toLowerCase(), phase)));
    renderAt("/vms?ns=demo", <VmsPage />);
    for (const phase of phases) {
      const item = await menuOf(phase.toLowerCase());
      const enabled = VM_ACTIONS.filter((a) => !item(a[0]?.toUpperCase() + a.slice(1)).disabled);
      expect(enabled, phase).toEqual(VM_ACTIONS.filter((a) => allowedActions(phase).includes(a)));
      expect(item("Delete").disabled).toBe(false);
      fireEvent.click(screen.getByRole("button", { name: `Actions for ${phase.toLowerCase()}` }));
      await waitFor(() => expect(screen.queryByRole("menu")).toBeNull());
    }
  });

  it("shows an action's answer at once, and a refusal in the server's words", async () => {
    const { sent, state } = serve([vmFixture("db", "Ready"), vmFixture("web", "Ready")], {
      "POST /api/v1/namespaces/demo/vms/web/stop": () => {
        const stopping = vmFixture("web", "Stopping");
        state.vms = [state.vms[0] as Vm, stopping];
        return { body: stopping };
      },
      "POST /api/v1/namespaces/demo/vms/db/stop": () => ({
        status: 409,
        body: {
          error: "invalid_action",
          message: "cannot stop a VM that is Stopping",
          hint: "possible now: nothing, wait",
        },
      }),
    });
    renderAt("/vms?ns=demo", <VmsPage />);
    fireEvent.click((await menuOf("web"))("Stop"));
    await waitFor(async () => expect(cell(await rowOf("web"), "Phase")).toBe("Stopping"));
    expect(sent.some((r) => r.method === "POST" && r.path.endsWith("/web/stop"))).toBe(true);

    fireEvent.click((await menuOf("db"))("Stop"));
    expect(
      await screen.findByText(
        "Cannot stop db: Cannot stop a VM that is Stopping. Possible now: nothing, wait.",
      ),
    ).toBeTruthy();
  });

  it("deletes only after a confirmation", async () => {
    const { sent, state } = serve([vmFixture("web", "Ready")], {
      "DELETE /api/v1/namespaces/demo/vms/web": () => {
        state.vms = [];
        return { status: 204, body: null };
      },
    });
    renderAt("/vms?ns=demo", <VmsPage />);
    fireEvent.click((await menuOf("web"))("Delete"));
    let dialog = await screen.findByRole("dialog", { name: /Delete web\?/ });
    fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    expect(sent.some((r) => r.method === "DELETE")).toBe(false);

    fireEvent.click((await menuOf("web"))("Delete"));
    dialog = await screen.findByRole("dialog", { name: /Delete web\?/ });
    fireEvent.click(within(dialog).getByRole("button", { name: "Delete" }));
    expect(await screen.findByRole("heading", { name: "No VMs in project demo" })).toBeTruthy();
    expect(sent.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual([
      "/api/v1/namespaces/demo/vms/web",
    ]);
  });

  it("follows the server's VM events: a change refetches the list", async () => {
    const { feed, state, sent } = serve([vmFixture("web", "Provisioning", { importProgress: 10 })]);
    renderAt("/vms?ns=demo", <VmsPage />);
    await waitFor(async () => expect(cell(await rowOf("web"), "Status")).toContain("10%"));
    await waitFor(() => expect(screen.getByText(/updated live/)).toBeTruthy());
    const lists = () =>
      sent.filter((r) => r.method === "GET" && r.path === "/api/v1/namespaces/demo/vms").length;
    // The first fetch, and the one on connecting (changes may have been missed before).
    await waitFor(() => expect(lists()).toBe(2));
    const before = lists();
    state.vms = [vmFixture("web", "Running")];
    feed.send("vm", { namespace: "demo", name: "web", deleted: false });
    await waitFor(async () => expect(cell(await rowOf("web"), "Status")).toBe("Booting"));
    expect(lists()).toBe(before + 1);
    // A burst of changes (import progress) is one refetch, not one each.
    state.vms = [vmFixture("web", "Ready")];
    for (let i = 0; i < 10; i++) feed.send("vm", { namespace: "demo", name: "web", deleted: false });
    await waitFor(async () => expect(cell(await rowOf("web"), "Status")).toBe("Ready"));
    expect(lists()).toBeLessThanOrEqual(before + 3);
  });

  it("offers Create VM when there are none, and shows why the list cannot be loaded", async () => {
    serve([]);
    renderAt("/vms?ns=demo", <VmsPage />);
    expect(await screen.findByRole("heading", { name: "No VMs in project demo" })).toBeTruthy();
    expect(screen.getAllByRole("button", { name: "Create VM" })).toHaveLength(2);
    cleanup();
    serve([], {
      [LIST]: () => ({ status: 503, body: { error: "unavailable", message: "qemu is missing" } }),
    });
    renderAt("/vms?ns=demo", <VmsPage />);
    expect(await screen.findByText("qemu is missing")).toBeTruthy();
    expect(screen.getByRole("heading", { name: "Cannot list the VMs" })).toBeTruthy();
  });
});

describe("VM details page", () => {
  const details = (path: string) =>
    renderAt(
      path,
      <Route path="/vms/:name">
        <VmDetailsPage />
      </Route>,
    );

  const READY = vmFixture("web", "Ready", {
    runtime: "qemu tcg, machine q35",
    conditions: [
      {
        type: "ImageReady",
        status: "True",
        reason: "Pulled",
        message: "sha256:1461d9bd96be (qcow2)",
        lastTransitionTime: "2026-01-01T00:00:01Z",
      },
      {
        type: "Ready",
        status: "True",
        reason: "GuestAgent",
        message: "the guest agent answers",
        lastTransitionTime: "2026-01-01T00:00:05Z",
      },
    ],
    notes: ["machine type pc-q35-rhel9 mapped to q35"],
  });

  it("shows the spec, the SSH command, conditions with reason, message and time, and notes", async () => {
    serve([READY], {
      "GET /api/v1/namespaces/demo/vms/web": () => ({ body: READY }),
      "GET /api/v1/namespaces/demo/vms/web/events": () => ({ body: { items: [] } }),
    });
    details("/vms/web?ns=demo");
    expect(await screen.findByRole("heading", { name: "web", level: 1 })).toBeTruthy();
    expect((screen.getByLabelText("SSH command") as HTMLInputElement).value).toBe(
      "ssh -p 2222 ubuntu@127.0.0.1",
    );
    const conditions = screen.getByRole("grid", { name: "Conditions" });
    const ready = within(conditions).getByText("GuestAgent").closest("tr") as HTMLElement;
    expect(ready.textContent).toContain("the guest agent answers");
    expect(ready.querySelector('[data-label="Since"]')?.textContent).toBe(
      new Date("2026-01-01T00:00:05Z").toLocaleString(),
    );
    expect(within(screen.getByRole("list", { name: "Notes" })).getByText(/mapped to q35/)).toBeTruthy();
    expect(await screen.findByText("No events recorded yet.")).toBeTruthy();
    expect(screen.getByText("qemu — qemu tcg, machine q35")).toBeTruthy();
    const actions = screen.getByRole("group", { name: "Actions on web" });
    expect(
      within(actions)
        .getAllByRole("button")
        .filter((b) => !(b as HTMLButtonElement).disabled)
        .map((b) => b.textContent),
    ).toEqual(["Stop", "Restart", "Pause", "Delete"]);
  });

  it("shows the events newest first: age with the time, warnings marked, repeats counted; live", async () => {
    const ago = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString();
    const event = (reason: string, seconds: number, extra: Partial<VmEvent> = {}): VmEvent => ({
      time: ago(seconds),
      type: "Normal",
      reason,
      message: `${reason} message`,
      count: 1,
      source: "osimg-qemu",
      ...extra,
    });
    const state = {
      events: [
        event("Created", 300),
        event("Pulling", 290),
        event("ImagePullFailed", 200, {
          type: "Warning",
          message: "Failure=True: connection refused",
          count: 3,
          firstTime: ago(280),
        }),
        event("ImportSucceeded", 100, {
          source: "datavolume-import-controller",
          object: { kind: "DataVolume", name: "web-rootdisk" },
        }),
      ],
    };
    const { feed, sent } = serve([READY], {
      "GET /api/v1/namespaces/demo/vms/web": () => ({ body: READY }),
      "GET /api/v1/namespaces/demo/vms/web/events": () => ({ body: { items: state.events } }),
    });
    details("/vms/web?ns=demo");
    const table = await screen.findByRole("grid", { name: "Events" });
    const rows = () => within(table).getAllByRole("row").slice(1);
    const column = (label: string) => rows().map((r) => cell(r, label));
    expect(column("Reason")).toEqual(["ImportSucceeded", "ImagePullFailed", "Pulling", "Created"]);
    expect(column("Type")).toEqual(["Normal", "Warning", "Normal", "Normal"]);
    expect(column("Count")).toEqual(["", "×3", "", ""]);
    expect(column("Time")).toEqual(["100s ago", "3m ago", "4m ago", "5m ago"]);
    expect(column("Source")).toEqual([
      "datavolume-import-controller",
      "osimg-qemu",
      "osimg-qemu",
      "osimg-qemu",
    ]);
    expect(column("Message")[0]).toBe("DataVolume web-rootdisk" + "ImportSucceeded message");
    const warning = rows()[1] as HTMLElement;
    expect(warning.getAttribute("data-type")).toBe("Warning");
    expect(warning.querySelector('[data-label="Type"] svg')).toBeTruthy();
    // The time itself, for the tooltip and for machines; focusable, so that the keyboard reaches it.
    const time = warning.querySelector("time") as HTMLElement;
    expect(time.getAttribute("datetime")).toBe(state.events[2]?.time);
    expect(time.tabIndex).toBe(0);

    // The VM changed: its events are fetched again, and the new one is on top.
    await waitFor(() => expect(feed.open).toBe(1));
    const fetches = () => sent.filter((r) => r.path === "/api/v1/namespaces/demo/vms/web/events").length;
    const before = fetches();
    state.events = [...state.events, event("Ready", 1, { message: "the guest is ready" })];
    feed.send("vm", { namespace: "demo", name: "web", deleted: false });
    await waitFor(() =>
      expect(
        cell(
          within(screen.getByRole("grid", { name: "Events" })).getAllByRole("row")[1] as HTMLElement,
          "Reason",
        ),
      ).toBe("Ready"),
    );
    expect(fetches()).toBeGreaterThan(before);
  });

  it("shows the newest events first and the others on request; says when they cannot be loaded", async () => {
    const many = Array.from({ length: 25 }, (_, i) => ({
      time: new Date(Date.now() - (25 - i) * 1000).toISOString(),
      type: "Normal" as const,
      reason: `Step${i}`,
      message: "",
      count: 1,
      source: "osimg-qemu",
    }));
    serve([READY], {
      "GET /api/v1/namespaces/demo/vms/web": () => ({ body: READY }),
      "GET /api/v1/namespaces/demo/vms/web/events": () => ({ body: { items: many } }),
    });
    details("/vms/web?ns=demo");
    const table = await screen.findByRole("grid", { name: "Events" });
    expect(within(table).getAllByRole("row")).toHaveLength(21);
    expect(cell(within(table).getAllByRole("row")[1] as HTMLElement, "Reason")).toBe("Step24");
    const more = screen.getByRole("button", { name: "Show all 25 events" });
    expect(more.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(more);
    expect(within(table).getAllByRole("row")).toHaveLength(26);
    expect(
      screen.getByRole("button", { name: "Show the newest 20 only" }).getAttribute("aria-expanded"),
    ).toBe("true");
    cleanup();

    serve([READY], {
      "GET /api/v1/namespaces/demo/vms/web": () => ({ body: READY }),
      "GET /api/v1/namespaces/demo/vms/web/events": () => ({
        status: 403,
        body: { error: "forbidden", message: "alice cannot list events", hint: "ask for the right" },
      }),
    });
    details("/vms/web?ns=demo");
    expect(await screen.findByText("Cannot load the events")).toBeTruthy();
    expect(screen.getByText("Alice cannot list events. Ask for the right.")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Try again" })).toBeTruthy();
  });

  it("opens a tab from the URL: what the provider runs, grouped by option", async () => {
    serve([READY], {
      "GET /api/v1/namespaces/demo/vms/web": () => ({ body: READY }),
      "GET /api/v1/namespaces/demo/vms/web/manifest": () => ({
        body: { format: "argv", text: "qemu-system-x86_64\n-name\nguest=web\n-nodefaults" },
      }),
    });
    details("/vms/web?ns=demo&tab=manifest");
    const code = await screen.findByLabelText("What the provider runs");
    await waitFor(() =>
      expect(code.textContent).toBe("qemu-system-x86_64\n  -name guest=web\n  -nodefaults"),
    );
    expect(screen.getByRole("tab", { name: "What runs" }).getAttribute("aria-selected")).toBe("true");
  });

  it("has no console for a stopped VM", async () => {
    const stopped = vmFixture("web", "Stopped");
    serve([stopped], { "GET /api/v1/namespaces/demo/vms/web": () => ({ body: stopped }) });
    details("/vms/web?ns=demo&tab=console");
    expect(await screen.findByRole("heading", { name: "The VM is not running" })).toBeTruthy();
  });

  it("says plainly when the VM does not exist", async () => {
    serve([]);
    details("/vms/gone?ns=demo");
    expect(await screen.findByRole("heading", { name: "No VM gone in project demo" })).toBeTruthy();
  });
});
