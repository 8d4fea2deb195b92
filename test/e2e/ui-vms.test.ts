// The VM flow in a real browser (Debian's chromium) against a real `osimg serve` with the local QEMU
// provider and the micro test guest (a Debian kernel + busybox, built from the host's packages and cached;
// served by a local HTTP server the server is allowed to fetch from): from the catalog, Create VM through
// the dialog — by keyboard, with a refused below-minimum attempt first — then the VM in the list as its
// image is imported and it boots, Ready; its details with its events (the Ready transition); the serial
// console answering `hostname`; the VNC display; stop (recorded as an event); delete. Then the image store with the pulled image and a pull from the catalog. Every step
// leaves a screenshot in .test-artifacts/screenshots/; no page may log a console error.
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Browser, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../web/build.ts";
import { microGuestImage } from "../support/guest-images.ts";
import { type FixtureServer, startFixtureServer } from "../support/http-fixture-server.ts";
import { startTestServer, type TestServer, tempDir } from "../support/server.ts";
import { launchBrowser, openPage, type WatchedPage } from "./browser.ts";

const STEP_MS = 20_000;
/** Image pull and a boot under TCG (~12 s for the micro guest; much more on a loaded machine). */
const READY_MS = 240_000;
const VM = "e2e-vm";

let images: FixtureServer;
let server: TestServer;
let browser: Browser;
let ui: WatchedPage;
const vmRequests: Request[] = [];
const catalogPolls: number[] = [];

beforeAll(async () => {
  await ensureWebBuilt({ log: (line) => process.stderr.write(`${line}\n`) });
  const micro = await microGuestImage();
  const www = tempDir("osimg-e2e-www-");
  await symlink(micro.path, join(www, "micro.qcow2"));
  images = await startFixtureServer({ root: www });
  // The server refuses to fetch from loopback unless the mirror is allow-listed.
  process.env.OSIMG_FETCH_ALLOW = new URL(images.url).host;
  const dataDir = tempDir("osimg-e2e-vms-");
  const catalogPath = join(dataDir, "images.yaml");
  const entry = (name: string, firmware: string) =>
    `  - OS_NAME: "${name}"\n    CLOUD_USER: root\n    OS_IMAGE_URL: "${images.url}/micro.qcow2"\n    MIN_MEMORY: "256Mi"\n    MIN_VCPU: "1"\n    MIN_STORAGE: "1Gi"\n    FIRMWARE_TYPE: "${firmware}"\n    CLOUD_INIT: |\n      #cloud-config\n      runcmd:\n        - echo marker-from-catalog\n`;
  await writeFile(catalogPath, `images:\n${entry("Micro", "bios")}${entry("Micro EFI", "efi")}`);
  server = await startTestServer({ catalogPath, dataDir });
  browser = await launchBrowser();
  ui = await openPage(browser);
  ui.page.on("request", (r) => {
    if (r.method() === "POST" && /\/api\/v1\/namespaces\/[^/]+\/vms(\?|$)/.test(r.url())) vmRequests.push(r);
  });
  ui.page.on("response", (r) => {
    if (new URL(r.url()).pathname === "/api/v1/catalog") catalogPolls.push(r.status());
  });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  // Stops the VMs the server started (a failed test may leave one running).
  await server?.stop();
  await images?.stop();
  delete process.env.OSIMG_FETCH_ALLOW;
});

const url = (path: string) => `${server.url}${path}`;
const vmRows = () => ui.page.getByRole("grid", { name: "VMs" }).locator("tbody tr");
const vmRow = () => vmRows().filter({ has: ui.page.getByRole("link", { name: VM, exact: true }) });
const dialog = () => ui.page.getByRole("dialog");
const eventsTable = () => ui.page.getByRole("grid", { name: "Events" });
/** The Reason column of the VM's events, newest first. */
const eventReasons = () => eventsTable().locator('tbody [data-label="Reason"]').allInnerTexts();
const helpOf = async (label: string | RegExp) => {
  const field = dialog().getByLabel(label);
  const id = await field.getAttribute("aria-describedby");
  return ui.page.locator(`[id="${id}"]`).innerText();
};

describe("VMs in a real browser, on local QEMU", () => {
  it("creates a VM from a catalog entry through the dialog, by keyboard, refusing a size below the minimum", async () => {
    const { page } = ui;
    await page.goto(url("/catalog"));
    await page.getByRole("button", { name: "Micro", exact: true }).click();
    // The catalog is polled every second; unchanged, it is a 304 (ETag), not the whole catalog again.
    await expect
      .poll(() => catalogPolls.filter((s) => s === 304).length, { timeout: STEP_MS })
      .toBeGreaterThan(0);
    expect(catalogPolls[0]).toBe(200);
    const drawer = page.getByRole("heading", { name: "Micro", level: 2 });
    await drawer.waitFor({ timeout: STEP_MS });
    await page.getByRole("button", { name: "Create VM" }).click();
    await dialog().getByRole("heading", { name: "Create VM" }).waitFor({ timeout: STEP_MS });
    // The entry it was opened from is chosen, its minimums filled in.
    expect(
      await dialog()
        .getByLabel(/^Operating system/)
        .inputValue(),
    ).toBe("Micro");
    expect(await dialog().getByLabel("Memory").inputValue()).toBe("256Mi");
    expect(await dialog().getByLabel("Cloud-init").inputValue()).toContain("marker-from-catalog");

    // The name field has the focus: type, then Tab along to the memory and go below its minimum.
    const focused = (locator: ReturnType<typeof page.locator>) =>
      locator.evaluate((el) => el === el.ownerDocument.activeElement);
    await expect.poll(() => focused(dialog().getByLabel(/^Name/))).toBe(true);
    await page.keyboard.type(VM);
    await page.keyboard.press("Tab"); // operating system
    await page.keyboard.press("Tab"); // vCPU
    await page.keyboard.press("Tab"); // memory
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type("128Mi");
    await expect.poll(() => helpOf("Memory")).toContain('128Mi is below the minimum 256Mi of "Micro"');
    const review = dialog().getByRole("button", { name: "Review" });
    expect(await review.isDisabled()).toBe(true);
    // Enter does not get past it either: nothing is sent to the server.
    await page.keyboard.press("Enter");
    await ui.screenshot("10-create-vm-below-minimum");
    expect(vmRequests).toHaveLength(0);

    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type("256Mi");
    await expect.poll(() => review.isEnabled()).toBe(true);
    await ui.screenshot("11-create-vm-form");
    await page.keyboard.press("Enter");
    await dialog()
      .getByRole("heading", { name: `Review: ${VM}` })
      .waitFor({ timeout: STEP_MS });
    const rendered = dialog().getByLabel("What will be created");
    await expect.poll(() => rendered.innerText(), { timeout: STEP_MS }).toContain("qemu-system-x86_64");
    expect(vmRequests.map((r) => new URL(r.url()).search)).toEqual(["?dryRun=true"]);
    await ui.screenshot("12-create-vm-review");

    await dialog().getByRole("button", { name: "Create" }).click();
    // Straight to the VMs page, where the new VM is listed at once.
    await page.waitForURL(/\/vms$/, { timeout: STEP_MS });
    await vmRow().waitFor({ timeout: STEP_MS });
    expect(JSON.parse(vmRequests[1]?.postData() ?? "{}")).toMatchObject({
      name: VM,
      image: "Micro",
      cpu: 1,
      memory: "256Mi",
      storage: "1Gi",
    });
    expect(ui.errors).toEqual([]);
  });

  it(
    "shows the VM's progress live until it is Ready",
    async () => {
      const { page } = ui;
      const status = vmRow().locator('[data-label="Status"]');
      const phases = new Set<string>();
      // Collect what the row shows as the VM is provisioned and boots (the event stream drives it).
      const deadline = Date.now() + READY_MS;
      let shot = false;
      for (;;) {
        const text = (await status.innerText()).trim();
        phases.add(text.replace(/\d+%/, "%"));
        if (!shot && /Importing image|Booting|Starting/.test(text)) {
          await ui.screenshot("13-vms-progress");
          shot = true;
        }
        if (text.startsWith("Ready")) break;
        if (text.startsWith("Failed")) throw new Error(`the VM failed: ${await vmRow().innerText()}`);
        if (Date.now() > deadline) throw new Error(`not Ready after ${READY_MS} ms: ${[...phases]}`);
        await page.waitForTimeout(100);
      }
      // It was seen on its way, not only at the end.
      expect([...phases].some((p) => /Provisioning|Importing image|Starting|Booting/.test(p))).toBe(true);
      expect(await vmRow().locator('[data-label="Operating system"]').innerText()).toBe("Micro");
      expect(await vmRow().locator('[data-label="Phase"]').innerText()).toBe("Ready");
      await ui.screenshot("14-vms-ready");

      // Its actions: stop, restart and pause are possible, start and unpause are not.
      await page.getByRole("button", { name: `Actions for ${VM}` }).click();
      const item = (name: string) => page.getByRole("menuitem", { name, exact: true });
      expect(await item("Start").isDisabled()).toBe(true);
      expect(await item("Unpause").isDisabled()).toBe(true);
      expect(await item("Stop").isEnabled()).toBe(true);
      expect(await item("Pause").isEnabled()).toBe(true);
      await page.keyboard.press("Escape");
      expect(ui.errors).toEqual([]);
    },
    READY_MS + 30_000,
  );

  it("shows the details, and the serial console answers `hostname`", async () => {
    const { page } = ui;
    await page.getByRole("link", { name: VM, exact: true }).click();
    await page.waitForURL(new RegExp(`/vms/${VM}$`));
    await page.getByRole("heading", { name: VM, level: 1 }).waitFor({ timeout: STEP_MS });
    const conditions = page.getByRole("grid", { name: "Conditions" });
    await conditions.waitFor({ timeout: STEP_MS });
    expect(await conditions.innerText()).toMatch(/Ready\s+True/);
    expect(await page.getByLabel("SSH command").inputValue()).toMatch(/^ssh -p \d+ root@127\.0\.0\.1$/);
    // What happened, newest first: the Ready transition on top of the way there.
    await eventsTable().waitFor({ timeout: STEP_MS });
    await expect.poll(eventReasons, { timeout: STEP_MS }).toContain("Ready");
    const reasons = await eventReasons();
    expect(reasons.indexOf("Ready")).toBeLessThan(reasons.indexOf("Running"));
    expect(reasons.indexOf("Running")).toBeLessThan(reasons.indexOf("Starting"));
    expect(reasons.slice(-4)).toEqual(["Pulled", "Pulling", "Provisioning", "Created"]);
    const ready = eventsTable()
      .locator("tbody tr")
      .filter({ has: page.locator('[data-label="Reason"]', { hasText: /^Ready$/ }) });
    expect(await ready.locator('[data-label="Type"]').innerText()).toBe("Normal");
    expect(await ready.locator('[data-label="Message"]').innerText()).toBe("the guest is ready");
    expect(await ready.locator('[data-label="Time"]').innerText()).toMatch(/^\d+s ago$/);
    await page.evaluate("window.scrollTo(0, 0)");
    await ui.screenshot("15-vm-details");
    // The time itself is in a tooltip that the keyboard reaches too.
    await ready.locator("time").focus();
    const tooltip = page.getByRole("tooltip");
    await tooltip.waitFor({ timeout: STEP_MS });
    // (in the browser's own locale and time zone)
    const exact = await ready
      .locator("time")
      .evaluate((el) => new Date(el.getAttribute("datetime") as string).toLocaleString());
    expect(await tooltip.innerText()).toBe(exact);
    // (shown once it has faded in)
    await expect
      .poll(() => tooltip.evaluate((el) => el.ownerDocument.defaultView?.getComputedStyle(el).opacity), {
        timeout: STEP_MS,
      })
      .toBe("1");
    await ui.screenshot("15-vm-events");
    await page.keyboard.press("Escape");
    await tooltip.waitFor({ state: "hidden", timeout: STEP_MS });

    await page.getByRole("tab", { name: "Serial console" }).click();
    await page.getByText("Serial console: connected").waitFor({ timeout: STEP_MS });
    const terminal = page.locator(".xterm-rows");
    await page.locator(".osimg-terminal").click();
    await page.keyboard.type("hostname\n");
    // The guest's shell echoes the command, then answers with the VM's name on a line of its own.
    await expect
      .poll(async () => (await terminal.innerText()).split("\n").map((l) => l.trim()), { timeout: 30_000 })
      .toContain(VM);
    await page.keyboard.type("echo typed-$((6*7))\n");
    await expect.poll(() => terminal.innerText(), { timeout: 30_000 }).toContain("typed-42");
    expect(page.url()).toContain("tab=console");
    await ui.screenshot("16-vm-serial-console");
    // The terminal takes Tab; Ctrl+] leaves it (as `osimg vm console` does), and Tab goes on from there.
    const focused = (locator: ReturnType<typeof page.locator>) =>
      locator.evaluate((el) => el === el.ownerDocument.activeElement);
    const input = page.locator(".xterm-helper-textarea");
    expect(await focused(input)).toBe(true);
    await page.keyboard.press("Control+BracketRight");
    expect(await focused(page.locator(".osimg-console-bar"))).toBe(true);
    await page.keyboard.press("Shift+Tab");
    // (to the tab's panel, which PatternFly makes focusable, just before the console)
    expect(await focused(page.getByRole("tabpanel", { name: "Serial console" }))).toBe(true);

    await page.getByRole("tab", { name: "VNC" }).click();
    await page.getByText(/VNC: connected/).waitFor({ timeout: STEP_MS });
    await page.locator(".osimg-vnc canvas").waitFor({ timeout: STEP_MS });
    await ui.screenshot("17-vm-vnc");
    expect(ui.errors).toEqual([]);
  }, 120_000);

  it("stops the VM and deletes it after a confirmation", async () => {
    const { page } = ui;
    await page.getByRole("tab", { name: "Overview" }).click();
    const actions = page.getByRole("group", { name: `Actions on ${VM}` });
    await actions.getByRole("button", { name: "Stop" }).click();
    await actions
      .getByRole("button", { name: "Start" })
      .and(page.locator(":enabled"))
      .waitFor({ timeout: 60_000 });
    expect(await actions.getByRole("button", { name: "Stop" }).isDisabled()).toBe(true);
    expect(await page.locator("[data-phase]").first().getAttribute("data-phase")).toBe("Stopped");
    // The request and what it led to, live on the page.
    await expect
      .poll(async () => (await eventReasons()).slice(0, 3), { timeout: STEP_MS })
      .toEqual(["Stopped", "Stopping", "StopRequested"]);
    await ui.screenshot("18-vm-stopped");

    await actions.getByRole("button", { name: "Delete" }).click();
    const confirm = page.getByRole("dialog", { name: `Delete ${VM}?` });
    await confirm.waitFor({ timeout: STEP_MS });
    await ui.screenshot("19-vm-delete-confirm");
    await confirm.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL(/\/vms$/, { timeout: STEP_MS });
    await page.getByRole("heading", { name: "No VMs in project default" }).waitFor({ timeout: STEP_MS });
    expect((await server.get(`/api/v1/namespaces/default/vms/${VM}`)).status).toBe(404);
    await ui.screenshot("20-vms-empty");
    expect(ui.errors).toEqual([]);
  }, 90_000);

  it("lists the pulled image in the store and pulls a catalog image with live progress", async () => {
    const { page } = ui;
    await page.getByRole("link", { name: "Images" }).click();
    await page.waitForURL(/\/images$/);
    const stored = page.getByRole("grid", { name: "Stored images" }).locator("tbody tr");
    await stored.first().waitFor({ timeout: STEP_MS });
    expect(await stored.count()).toBe(1);
    expect(await stored.first().locator('[data-label="Image"]').innerText()).toContain("micro.qcow2");
    expect(await stored.first().locator('[data-label="Format"]').innerText()).toContain("qcow2");

    const pull = page.getByRole("button", { name: "Pull again Micro EFI" });
    await pull.click();
    const row = page
      .getByRole("grid", { name: "Catalog images" })
      .locator("tbody tr", { hasText: "Micro EFI" });
    await row.getByText("Pulled").waitFor({ timeout: 60_000 });
    await ui.screenshot("21-images");

    // The same pages on a narrow window, in the dark.
    const narrow = await openPage(browser, { width: 420, height: 860, colorScheme: "dark" });
    await narrow.page.goto(url("/images"));
    await narrow.page.getByRole("grid", { name: "Stored images" }).waitFor({ timeout: STEP_MS });
    await narrow.screenshot("22-images-narrow-dark");
    await narrow.page.goto(url("/vms"));
    await narrow.page.getByRole("button", { name: "Create VM" }).first().click();
    await narrow.page
      .getByRole("dialog")
      .getByLabel(/^Operating system/)
      .waitFor({ timeout: STEP_MS });
    await narrow.screenshot("23-create-vm-narrow-dark");
    expect(narrow.errors).toEqual([]);
    await narrow.context.close();
    expect(ui.errors).toEqual([]);
  }, 120_000);
});
