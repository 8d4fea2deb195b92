// The UI in a real browser (Debian's chromium) against a real `osimg serve` on a free port with a temp
// data dir and catalog file: the catalog page, a broken edit of the file shown as findings with the
// last-good alert and cleared when fixed, and the YAML editor's validation, save and conflict. Every step
// leaves a screenshot in .test-artifacts/screenshots/; no page may log a console error.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../web/build.ts";
import { catalogYaml, UBUNTU } from "../support/catalogs.ts";
import { FixtureServer } from "../support/http-fixture-server.ts";
import { sha256File } from "../support/image-fixtures.ts";
import { startTestServer, type TestServer, tempDir } from "../support/server.ts";
import { launchBrowser, openPage, type WatchedPage } from "./browser.ts";

const STEP_MS = 15_000;

/** The test's catalog: its images on a local HTTP server, so that the server's image verifier (which
 * checks every entry's URL) has something real to check without leaving the machine. */
function entries(images: string, sha256: string): Record<string, string>[] {
  return [
    // Not on the image server: unreachable (404).
    { ...UBUNTU, OS_IMAGE_URL: `${images}/noble-server-cloudimg-amd64.img` },
    {
      OS_NAME: "Alpine 3.22",
      CLOUD_USER: "alpine",
      OS_IMAGE_URL: `${images}/alpine.qcow2`,
      OS_IMAGE_SHA256: sha256,
      MIN_MEMORY: "512Mi",
      MIN_VCPU: "1",
      MIN_STORAGE: "2G",
      FIRMWARE_TYPE: "bios",
      FEATURES: "acpi",
    },
    {
      OS_NAME: "Debian 13",
      CLOUD_USER: "debian",
      OS_IMAGE_URL: `${images}/debian-13-genericcloud-amd64.qcow2`,
      MIN_MEMORY: "1G",
      MIN_VCPU: "1",
      MIN_STORAGE: "10G",
      FIRMWARE_TYPE: "efi",
      MACHINE_TYPE: "q35",
      FEATURES: "acpi,smm",
    },
  ];
}
let GOOD = "";
let images: FixtureServer;

let browser: Browser;
let server: TestServer;
let catalogPath: string;
let ui: WatchedPage;

beforeAll(async () => {
  await ensureWebBuilt({ log: (line) => process.stderr.write(`${line}\n`) });
  const dir = tempDir("osimg-e2e-");
  const imageDir = join(dir, "images");
  mkdirSync(imageDir);
  for (const name of ["alpine.qcow2", "debian-13-genericcloud-amd64.qcow2"])
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", join(imageDir, name), "64M"]);
  images = await new FixtureServer({ root: imageDir }).start();
  GOOD = catalogYaml(entries(images.url, sha256File(join(imageDir, "alpine.qcow2"))));
  catalogPath = join(dir, "images.yaml");
  writeFileSync(catalogPath, GOOD);
  // The server fetches only public addresses, unless allowed: here the local image server.
  process.env.OSIMG_FETCH_ALLOW = "127.0.0.1/32";
  server = await startTestServer({ catalogPath });
  browser = await launchBrowser();
  ui = await openPage(browser);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await images?.stop();
  delete process.env.OSIMG_FETCH_ALLOW;
});

const url = (path: string) => `${server.url}${path}`;
const rows = () => ui.page.getByRole("grid", { name: "OS images" }).locator("tbody tr");
const alertHeading = () => ui.page.getByRole("heading", { name: /Serving the last good catalog/ });

describe("UI in a real browser", { timeout: 90_000 }, () => {
  it("shows the catalog's entries with their values as written", async () => {
    const { page } = ui;
    await page.goto(url("/"));
    await page.waitForURL(/\/catalog$/);
    await rows().first().waitFor({ timeout: STEP_MS });
    expect(await rows().count()).toBe(3);
    const alpine = rows().filter({ hasText: "Alpine 3.22" });
    expect(await alpine.locator('[data-label="Min memory"]').innerText()).toBe("512Mi");
    // The local image server speaks plain http: a warning, listed with the catalog's findings.
    expect(await alpine.locator('[data-label="Status"]').innerText()).toContain("1 warning");
    const findings = page.getByRole("grid", { name: "Findings of the served catalog" });
    expect(await findings.innerText()).toContain("OS_IMAGE_URL uses plain http");
    expect(await page.title()).toBe("osimg");
    // The server's image checks arrive: reachable and a safe qcow2, or unreachable. (Its probe reads
    // headers only, so checksums stay unverified until an image is pulled.)
    const checked = (row: string, label: string) =>
      rows().filter({ hasText: row }).getByRole("img", { name: label });
    await checked("Alpine 3.22", "Reachable: passed").waitFor({ timeout: STEP_MS });
    await checked("Alpine 3.22", "Safe format: passed").waitFor({ timeout: STEP_MS });
    await checked("Alpine 3.22", "Checksum verified: unknown").waitFor({ timeout: STEP_MS });
    await checked("Ubuntu 24.04", "Reachable: failed").waitFor({ timeout: STEP_MS });
    await ui.screenshot("01-catalog");

    // By keyboard: Enter on an entry's name opens its details, with the focus in them; Escape closes them.
    await page.getByRole("button", { name: "Debian 13" }).focus();
    await page.keyboard.press("Enter");
    const heading = page.getByRole("heading", { name: "Debian 13", level: 2 });
    await heading.waitFor({ timeout: STEP_MS });
    expect(page.url()).toContain("entry=debian-13");
    expect(await heading.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    await ui.screenshot("02-entry-details");
    await page.keyboard.press("Escape");
    await heading.waitFor({ state: "detached", timeout: STEP_MS });
    expect(page.url()).not.toContain("entry=");

    // The same page on a narrow window, and in the dark.
    const narrow = await openPage(browser, { width: 420, height: 860, colorScheme: "dark" });
    await narrow.page.goto(url("/catalog"));
    await narrow.page.getByRole("button", { name: "Alpine 3.22" }).waitFor({ timeout: STEP_MS });
    await narrow.screenshot("03-catalog-narrow-dark");
    expect(narrow.errors).toEqual([]);
    await narrow.context.close();
    expect(ui.errors).toEqual([]);
  });

  it("shows a broken edit of the file as findings with the last-good alert, and clears them when fixed", async () => {
    const { page } = ui;
    const broken = GOOD.replace('MIN_MEMORY: "512Mi"', 'MIN_MEMORY: "512 MB"');
    writeFileSync(catalogPath, broken);
    await alertHeading().waitFor({ timeout: STEP_MS });
    const rejected = page.getByRole("grid", { name: "Findings of the rejected edit" });
    const line = broken.split("\n").findIndex((l) => l.includes('"512 MB"')) + 1;
    expect(await rejected.innerText()).toContain(`${line}:17`);
    expect(await rejected.innerText()).toContain('MIN_MEMORY: "512 MB" has an unknown unit');
    // The last good catalog is still listed.
    expect(await rows().count()).toBe(3);
    await ui.screenshot("04-broken-edit-last-good");

    writeFileSync(catalogPath, GOOD.replace('"Alpine 3.22"', '"Alpine 3.23"'));
    await alertHeading().waitFor({ state: "detached", timeout: STEP_MS });
    await page.getByRole("button", { name: "Alpine 3.23" }).waitFor({ timeout: STEP_MS });
    await ui.screenshot("05-fixed");
    expect(ui.errors).toEqual([]);
  });

  it("edits the YAML with live validation and saves it to the file", async () => {
    const { page } = ui;
    await page.getByRole("button", { name: "Edit YAML" }).click();
    await page.waitForURL(/\/catalog\/edit$/);
    const editor = page.getByRole("textbox", { name: /^Catalog YAML/ });
    await editor.waitFor({ timeout: STEP_MS });
    const original = await editor.inputValue();
    expect(original).toBe(readFileSync(catalogPath, "utf8"));

    // Type a mistake into the text: the same parser as the server marks it as you type.
    const value = original.indexOf('"1G"');
    await editor.focus();
    // (This file is type-checked without DOM types: the textarea is described by what is called on it.)
    type Selectable = { setSelectionRange(start: number, end: number): void };
    await editor.evaluate((el, at) => (el as unknown as Selectable).setSelectionRange(at + 1, at + 3), value);
    // Typed key by key, validation may run on "1 " first (a finding of its own): wait for the final text's.
    await page.keyboard.type("1 GB");
    const status = page.getByRole("status").filter({ hasText: /error|Valid/ });
    const findings = page.getByRole("grid", { name: "Findings of the edited catalog" });
    await findings
      .getByRole("row")
      .filter({ hasText: '"1 GB" has an unknown unit' })
      .waitFor({ timeout: STEP_MS });
    await status.filter({ hasText: "1 error" }).waitFor({ timeout: STEP_MS });
    expect(await page.getByRole("button", { name: "Save", exact: true }).isDisabled()).toBe(true);
    await findings
      .getByRole("row")
      .filter({ hasText: "unknown unit" })
      .getByRole("button", { name: /^go to line/ })
      .click();
    await ui.screenshot("06-editor-invalid");

    // Fix it and rename an entry; save; the file and the catalog page have it.
    const edited = original.replace('"Debian 13"', '"Debian 13 (edited in the UI)"');
    await editor.fill(edited);
    await status.filter({ hasText: "Valid: 3 entries" }).waitFor({ timeout: STEP_MS });
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.getByRole("heading", { name: /Saved/ }).waitFor({ timeout: STEP_MS });
    expect(readFileSync(catalogPath, "utf8")).toBe(edited);
    await ui.screenshot("07-editor-saved");

    await page.getByRole("button", { name: "Back to the catalog" }).click();
    await page.getByRole("button", { name: "Debian 13 (edited in the UI)" }).waitFor({ timeout: STEP_MS });
    expect(ui.errors).toEqual([]);
  });

  it("refuses a save over someone else's and keeps the text until the user chooses", async () => {
    const { page } = ui;
    await page.getByRole("button", { name: "Edit YAML" }).click();
    const editor = page.getByRole("textbox", { name: /^Catalog YAML/ });
    await editor.waitFor({ timeout: STEP_MS });
    const base = await editor.inputValue();
    const mine = base.replace('"Ubuntu 24.04"', '"Ubuntu 24.04 LTS"');
    await editor.fill(mine);
    // Someone edits the file in the meantime.
    const theirs = base.replace('CLOUD_USER: "alpine"', 'CLOUD_USER: "alpine-admin"');
    writeFileSync(catalogPath, theirs);
    ui.expect(/status of 409/);
    await page.getByRole("button", { name: "Save", exact: true }).click();
    const conflict = page.getByRole("heading", { name: /Someone else saved the catalog first/ });
    await conflict.waitFor({ timeout: STEP_MS });
    expect(await editor.inputValue()).toBe(mine);
    expect(await page.getByRole("button", { name: "Save", exact: true }).isEnabled()).toBe(true);
    expect(readFileSync(catalogPath, "utf8")).toBe(theirs);
    await ui.screenshot("08-editor-conflict");

    await page.getByRole("button", { name: "Save mine over theirs" }).click();
    await page.getByRole("heading", { name: /Saved/ }).waitFor({ timeout: STEP_MS });
    expect(readFileSync(catalogPath, "utf8")).toBe(mine);
    expect(ui.errors).toEqual([]);
  });
});
