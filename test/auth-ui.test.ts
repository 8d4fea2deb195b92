import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../web/build.ts";
import { launchBrowser, openPage, type WatchedPage } from "./e2e/browser.ts";
import {
  LOCAL_ENTRY,
  type RoleTokens,
  startIssuer,
  startTokenServer,
  type TestIssuer,
} from "./support/auth.ts";
import { startTestServer, type TestServer, tempDir } from "./support/server.ts";

const STEP_MS = 20_000;
const ENTRY = LOCAL_ENTRY;

let browser: Browser;
let server: TestServer;
let tokens: RoleTokens;
let ui: WatchedPage;

beforeAll(async () => {
  await ensureWebBuilt({ log: (line) => process.stderr.write(`${line}\n`) });
  ({ server, tokens } = await startTokenServer({
    prefix: "osimg-ui-auth-",
    files: { "quotas.yaml": "projects:\n  demo:\n    vms: 2\n    cpu: 4\n" },
  }));
  browser = await launchBrowser();
  ui = await openPage(browser);
  // Refusals are part of the scenario: the browser logs every 401 answer as an error.
  ui.expect(/status of 401/);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("logging in to the UI", { timeout: 120_000 }, () => {
  it("asks for a token, refuses a wrong one, and opens the page asked for with a good one", async () => {
    const { page } = ui;
    await page.goto(`${server.url}/catalog?ns=demo`);
    const heading = page.getByRole("heading", { name: "Sign in to osimg" });
    await heading.waitFor({ timeout: STEP_MS });
    expect(await page.getByText("osimg token create --role member").count()).toBe(1);
    await ui.screenshot("auth-01-login");

    const field = page.getByLabel("Access token");
    await field.fill("osimg_0123456789abcdef_not-a-real-token-not-a-real-token-xx");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("invalid credentials: the token is not valid").waitFor({ timeout: STEP_MS });
    await ui.screenshot("auth-02-refused");

    await field.fill(tokens.member);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: ENTRY.OS_NAME }).waitFor({ timeout: STEP_MS });
    expect(page.url()).toBe(`${server.url}/catalog?ns=demo`);
    await page.getByText("member-demo").waitFor({ timeout: STEP_MS });
    await page
      .getByRole("button", { name: /^Quota of demo: 0 \/ 2 VMs, 0 \/ 4 vCPU$/ })
      .waitFor({ timeout: STEP_MS });
    await ui.screenshot("auth-03-signed-in");
    // The token lives in this tab's sessionStorage only.
    expect(await page.evaluate(() => sessionStorage.getItem("osimg.token"))).toBe(tokens.member);
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain(tokens.member.slice(23));
    expect(await page.evaluate("document.cookie")).toBe("");

    await page.reload();
    await page.getByRole("button", { name: ENTRY.OS_NAME }).waitFor({ timeout: STEP_MS });
    expect(await heading.count()).toBe(0);
    expect(ui.errors).toEqual([]);
  });

  it("returns to the login page when the token is revoked, and signs out", async () => {
    const { page } = ui;
    await tokens.file.revoke("member-demo");
    // The catalog is polled: its next answer is a 401, and the login page takes over.
    await page.getByRole("heading", { name: "Sign in to osimg" }).waitFor({ timeout: STEP_MS });
    expect(await page.evaluate(() => sessionStorage.getItem("osimg.token"))).toBeNull();

    await page.getByLabel("Access token").fill(tokens.viewer);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("viewer-demo").waitFor({ timeout: STEP_MS });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to osimg" }).waitFor({ timeout: STEP_MS });
    expect(await page.evaluate(() => sessionStorage.getItem("osimg.token"))).toBeNull();
    await ui.screenshot("auth-04-signed-out");
    expect(ui.errors).toEqual([]);
  });
});

describe("logging in through an OIDC issuer", { timeout: 120_000 }, () => {
  let issuer: TestIssuer;
  let oidcServer: TestServer;
  beforeAll(async () => {
    issuer = await startIssuer("osimg-ui");
    oidcServer = await startTestServer({
      dataDir: tempDir("osimg-ui-oidc-"),
      auth: { mode: "oidc", issuer: issuer.issuer, audience: "osimg-ui" },
    });
  });
  afterAll(async () => {
    await oidcServer?.stop();
    await issuer?.stop();
  });

  it("goes to the issuer and back (code + PKCE), landing on the page asked for", async () => {
    const watched = await openPage(browser);
    const { page } = watched;
    try {
      await page.goto(`${oidcServer.url}/vms?ns=demo`);
      const button = page.getByRole("button", { name: `Sign in with ${new URL(issuer.issuer).host}` });
      await button.waitFor({ timeout: STEP_MS });
      await watched.screenshot("auth-05-oidc-login");
      await button.click();
      await page.waitForURL(`${oidcServer.url}/vms?ns=demo`, { timeout: STEP_MS });
      await page.getByText("bob").waitFor({ timeout: STEP_MS });
      expect(issuer.hits.token).toBe(1);
      const token = (await page.evaluate("sessionStorage.getItem('osimg.token')")) as string;
      expect(token.split(".")).toHaveLength(3);
      await watched.screenshot("auth-06-oidc-signed-in");
      expect(watched.errors).toEqual([]);
    } finally {
      await watched.context.close();
    }

    // A callback a tab did not start (a new one: no login state in its session) is refused, with the reason.
    // (Clearing the signed-in tab's session instead races its next VM list request, which then gets a 401.)
    const fresh = await openPage(browser);
    try {
      await fresh.page.goto(`${oidcServer.url}/auth/callback?code=stolen&state=guess`);
      await fresh.page.getByText(/state mismatch/).waitFor({ timeout: STEP_MS });
      expect(fresh.errors).toEqual([]);
    } finally {
      await fresh.context.close();
    }
  });
});
