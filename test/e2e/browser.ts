// A real browser for the UI's end-to-end tests and benchmark: Debian's chromium driven by playwright-core,
// with every console error and uncaught exception of its pages recorded.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { PROJECT_ROOT } from "../../src/config/paths.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const SCREENSHOTS = join(PROJECT_ROOT, ".test-artifacts", "screenshots");

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions, except those the test said to expect. */
  errors: string[];
  /** Messages that are part of the scenario (the browser logs every 4xx answer to fetch as an error). */
  expect(pattern: RegExp): void;
  screenshot(name: string): Promise<string>;
}

export async function openPage(
  browser: Browser,
  options: { width?: number; height?: number; colorScheme?: "light" | "dark" } = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
    colorScheme: options.colorScheme ?? "light",
  });
  const page = await context.newPage();
  const errors: string[] = [];
  const expected: RegExp[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = `${message.text()} (${message.location().url})`;
    if (!expected.some((p) => p.test(text))) errors.push(text);
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  return {
    page,
    context,
    errors,
    expect: (pattern) => expected.push(pattern),
    async screenshot(name) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const path = join(SCREENSHOTS, `${name}.png`);
      // Finished transitions: a button that was just enabled is shown enabled.
      await page.screenshot({ path, animations: "disabled" });
      return path;
    },
  };
}
