// Builds in a real browser (Debian's chromium) against a real `osimg serve` (auth none: an admin): the
// empty Builds page; New build with its example spec; a broken spec refused with its findings at
// line:column, the text kept and a finding's button moving the editor's cursor to it; the example
// submitted and built for real (on a synthetic root filesystem put into the server's build cache
// beforehand, so it takes seconds and downloads nothing), its page following the live log to Succeeded
// with the outputs; the build listed as succeeded. Every step leaves a screenshot in
// .test-artifacts/screenshots/; no page may log a console error.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../web/build.ts";
import { seedSyntheticBase } from "../support/build.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { launchBrowser, openPage, type WatchedPage } from "./browser.ts";

const STEP_MS = 15_000;
/** A vm-img build of the example on the synthetic root filesystem (seconds; more on a loaded machine). */
const BUILD_MS = 120_000;

let server: TestServer;
let browser: Browser;
let ui: WatchedPage;
/** The dialog's example spec, as it offers it (web/src/builds/example.ts, which needs the DOM's types). */
let example = "";

beforeAll(async () => {
  await ensureWebBuilt({ log: (line) => process.stderr.write(`${line}\n`) });
  server = await startTestServer();
  browser = await launchBrowser();
  ui = await openPage(browser);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const url = (path: string) => `${server.url}${path}`;
const dialog = () => ui.page.getByRole("dialog", { name: "New build" });
const editor = () => dialog().getByRole("textbox", { name: /^Spec \(TOML\)/ });
const buildRows = () => ui.page.getByRole("grid", { name: "Builds" }).locator("tbody tr");
// (This file is type-checked without DOM types: the textarea is described by what is called on it.)
type Selectable = {
  value: string;
  selectionStart: number;
  selectionEnd: number;
  setSelectionRange(start: number, end: number): void;
};
/** The offset of line:column (1-based) in a text. */
const offsetOf = (text: string, line: number, column: number) =>
  text
    .split("\n")
    .slice(0, line - 1)
    .reduce((sum, l) => sum + l.length + 1, 0) +
  column -
  1;

describe("Builds in a real browser", { timeout: 60_000 }, () => {
  it("shows the empty Builds page and opens New build with the example spec", async () => {
    const { page } = ui;
    await page.goto(url("/builds"));
    await page.getByRole("heading", { name: "No builds yet" }).waitFor({ timeout: STEP_MS });
    expect(await page.getByText("0 builds").count()).toBe(1);
    await ui.screenshot("30-builds-empty");

    await page.getByRole("button", { name: "New build" }).click();
    await editor().waitFor({ timeout: STEP_MS });
    expect(await dialog().getByLabel("Kind").inputValue()).toBe("vm-img");
    example = await editor().inputValue();
    expect(example).toMatch(/^# Debian 12 .*\n\[from_repo\]\n/);
    // Its base, before anything is submitted: a synthetic root filesystem in the server's build cache.
    await seedSyntheticBase(server.dataDir, example);
    // Nothing to push for a VM disk.
    expect(await dialog().getByLabel("Push to").count()).toBe(0);
    await ui.screenshot("31-build-new");
    expect(ui.errors).toEqual([]);
  });

  it("keeps a refused spec and lists its findings, each going to its line", async () => {
    const { page } = ui;
    // Type a plaintext root password over the example's "!" and misspell a key.
    const at = example.indexOf('root_passwd = "!"') + 'root_passwd = "'.length;
    await editor().focus();
    await editor().evaluate((el, i) => (el as unknown as Selectable).setSelectionRange(i, i + 1), at);
    await page.keyboard.type("hunter2");
    const groups = (await editor().inputValue()).indexOf("groups = [");
    await editor().evaluate((el, i) => (el as unknown as Selectable).setSelectionRange(i, i + 6), groups);
    await page.keyboard.type("grups");
    const broken = example
      .replace('root_passwd = "!"', 'root_passwd = "hunter2"')
      .replace("groups = [", "grups = [");
    expect(await editor().inputValue()).toBe(broken);

    // The browser logs the refusal (a 400 to fetch) as an error: part of the scenario.
    ui.expect(/status of 400/);
    await dialog().getByRole("button", { name: "Submit" }).click();
    await dialog()
      .getByRole("heading", { name: /The server refused the spec/ })
      .waitFor({ timeout: STEP_MS });
    const findings = dialog().getByRole("grid", { name: "Findings of the refused spec" });
    const lines = broken.split("\n");
    const passwdLine = lines.findIndex((l) => l.startsWith("root_passwd")) + 1;
    const grupsLine = lines.findIndex((l) => l.startsWith("grups")) + 1;
    const text = await findings.innerText();
    expect(text).toContain(`${passwdLine}:15`);
    expect(text).toMatch(/plaintext passwords are refused/);
    expect(text).toContain(`${grupsLine}:1`);
    expect(text).toContain("grups");
    // The text is kept as it was typed, and the dialog can submit again.
    expect(await editor().inputValue()).toBe(broken);
    expect(await dialog().getByRole("button", { name: "Submit" }).isEnabled()).toBe(true);
    expect(page.url()).toMatch(/\/builds$/);

    // A finding's position moves the cursor to it, in the editor with the focus.
    await findings.getByRole("button", { name: `go to line ${passwdLine}, column 15` }).click();
    const selection = () =>
      editor().evaluate((el) => {
        const t = el as unknown as Selectable;
        return [t.selectionStart, t.selectionEnd, el === el.ownerDocument.activeElement] as const;
      });
    const passwdAt = offsetOf(broken, passwdLine, 15);
    await expect.poll(selection, { timeout: STEP_MS }).toEqual([passwdAt, passwdAt, true]);
    expect(broken.slice(passwdAt, passwdAt + 9)).toBe('"hunter2"');
    await findings.getByRole("button", { name: `go to line ${grupsLine}, column 1` }).click();
    const grupsAt = offsetOf(broken, grupsLine, 1);
    await expect.poll(selection, { timeout: STEP_MS }).toEqual([grupsAt, grupsAt, true]);
    await ui.screenshot("32-build-findings");
    expect(ui.errors).toEqual([]);
  });

  it(
    "builds the example: its page follows the live log to Succeeded, with the outputs",
    async () => {
      const { page } = ui;
      // Back to the example as the dialog offered it (its base is in the server's build cache).
      await editor().fill(example);
      await dialog().getByRole("button", { name: "Submit" }).click();
      await page.waitForURL(/\/builds\/[^/]+$/, { timeout: STEP_MS });
      const id = new URL(page.url()).pathname.split("/").at(-1) ?? "";
      await page.getByRole("heading", { name: `Build ${id}`, level: 1 }).waitFor({ timeout: STEP_MS });
      expect(await dialog().count()).toBe(0);

      const log = page.getByRole("log", { name: `Log of build ${id}` });
      const live = page.getByRole("heading", { name: "Log (live)" });
      // The log as it comes: the steps, then the end (the "(live)" mark goes).
      await expect
        .poll(() => log.innerText(), { timeout: BUILD_MS })
        .toContain(
          "==> customize.rootfs: users, passwords, os-release, files and units in the root filesystem",
        );
      await live.waitFor({ state: "detached", timeout: BUILD_MS });
      const lines = (await log.innerText()).split("\n");
      expect(lines[0]).toMatch(new RegExp(`^build ${id}: vm-img `));
      expect(lines.some((l) => l.startsWith("==> disk.qcow2"))).toBe(true);
      const state = page.locator("h1 + p [data-state]");
      await expect.poll(() => state.getAttribute("data-state"), { timeout: STEP_MS }).toBe("succeeded");
      expect((await state.innerText()).trim()).toBe("succeeded");
      // What it made, with sizes and digests, and its steps.
      const outputs = page.getByRole("grid", { name: "Outputs" });
      await outputs.waitFor({ timeout: STEP_MS });
      const names = await outputs.locator('tbody [data-label="Name"]').allInnerTexts();
      for (const name of ["system.raw", "system.qcow2", "rootfs.tar"])
        expect(names.some((n) => n.startsWith(name))).toBe(true);
      expect(await outputs.innerText()).toMatch(/sha256:[0-9a-f]{64}/);
      const steps = await page
        .getByRole("grid", { name: "Steps" })
        .locator('tbody [data-label="Step"]')
        .allInnerTexts();
      expect(steps).toContain("customize.rootfs");
      expect(steps.some((s) => s.startsWith("disk.qcow2"))).toBe(true);
      await page.evaluate("window.scrollTo(0, 0)");
      await ui.screenshot("33-build-details");
      // Further down, the log as it ended (kept scrolled to its last line).
      await log.scrollIntoViewIfNeeded();
      await ui.screenshot("34-build-log");

      // The Builds page lists it as succeeded.
      await page.getByRole("link", { name: "Builds" }).first().click();
      await page.waitForURL(/\/builds$/, { timeout: STEP_MS });
      await buildRows().first().waitFor({ timeout: STEP_MS });
      expect(await buildRows().count()).toBe(1);
      const row = buildRows().first();
      expect(await row.locator('[data-label="Build"]').innerText()).toBe(id);
      expect(await row.locator('[data-label="Kind"]').innerText()).toBe("vm-img");
      expect(await row.locator("[data-state]").getAttribute("data-state")).toBe("succeeded");
      expect(await row.locator('[data-label="Runs on"]').innerText()).toBe("this server");
      await ui.screenshot("35-builds");
      expect(ui.errors).toEqual([]);
    },
    BUILD_MS + 30_000,
  );
});
