// npm run bench:ui — the web UI in a real browser (chromium via playwright-core), against a real
// `osimg serve` with a 500-entry catalog:
//   1. First render of the catalog page: from the start of navigation to the first row of the OS images
//      table, on a cold cache (new browser context) and a warm one (reload). Baseline, in the same run and
//      browser: fetching /api/v1/catalog alone (request + JSON parse), the floor of any page that shows it.
//   2. VM list updates: from the Create click in the dialog to the new VM in the list, and the part of it
//      after the server answered (target < 1 s); then VMs created and deleted through the API by someone
//      else, from the server's answer to the list showing it (the event stream, a refetch, a render).
//      Baselines: the create request alone, and fetching the VM list alone. (The VMs' images are not
//      reachable from here, so they fail to provision after being listed; listing is what is timed.)
//   3. The bundle sizes (raw, gzip, brotli) against the 350 KB gzip budget of the initial JavaScript.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, gzipSync } from "node:zlib";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../test/e2e/browser.ts";
import { generatedCatalog } from "../test/support/catalogs.ts";
import { ensureWebBuilt, WEB_DIST } from "../web/build.ts";
import { freePort, percentile, printTable, startProcess, stop, verdict } from "./support.ts";

const ENTRIES = 500;
const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const FIRST_RENDER_TARGET_MS = 1000;
const LIST_UPDATE_TARGET_MS = 1000;
const NS = "bench";
const INITIAL_JS_BUDGET_GZIP = 350 * 1024;

await ensureWebBuilt({ log: (line) => console.log(line) });

const dir = mkdtempSync(join(tmpdir(), "osimg-bench-ui-"));
const catalogPath = join(dir, "images.yaml");
writeFileSync(catalogPath, generatedCatalog(ENTRIES));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = await startProcess(
  process.execPath,
  [
    new URL("../bin/osimg.js", import.meta.url).pathname,
    "serve",
    "--auth",
    "none",
    "--catalog",
    catalogPath,
    "--port",
    String(port),
    "--data-dir",
    join(dir, "data"),
  ],
  `${base}/readyz`,
  { OSIMG_LOG_LEVEL: "warn" },
);

// Set before any script of the page runs: the time the first table row appears, from navigation start.
const FIRST_ROW = `
  window.__firstRowMs = undefined;
  new MutationObserver((_m, observer) => {
    if (document.querySelector('[aria-label="OS images"] tbody tr')) {
      window.__firstRowMs = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
`;

// Page functions are passed as functions, not strings: the UI's CSP forbids eval. (Type-checked without
// DOM types: the page's global is described by what is read from it.)
type Timed = { __firstRowMs?: number };

async function firstRow(page: Page): Promise<{ ms: number; rows: number }> {
  const handle = await page.waitForFunction(() => (globalThis as Timed).__firstRowMs, undefined, {
    timeout: 30_000,
  });
  const ms = (await handle.jsonValue()) as number;
  const rows = await page.locator('[aria-label="OS images"] tbody tr').count();
  return { ms, rows };
}

async function coldRender(browser: Browser): Promise<{ ms: number; rows: number }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(FIRST_ROW);
  const page = await context.newPage();
  await page.goto(`${base}/catalog`);
  const result = await firstRow(page);
  await context.close();
  return result;
}

async function warmRenders(browser: Browser, runs: number): Promise<number[]> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(FIRST_ROW);
  const page = await context.newPage();
  await page.goto(`${base}/catalog`);
  await firstRow(page);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    await page.reload();
    times.push((await firstRow(page)).ms);
  }
  await context.close();
  return times;
}

async function fetchAlone(browser: Browser, runs: number): Promise<number[]> {
  const page = await browser.newPage();
  await page.goto(`${base}/favicon.svg`); // same origin, no app
  const times: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const ms = await page.evaluate(async (expected) => {
      const start = performance.now();
      const body = (await (await fetch("/api/v1/catalog", { cache: "no-store" })).json()) as {
        entries: unknown[];
      };
      if (body.entries.length !== expected) throw new Error("unexpected catalog");
      return performance.now() - start;
    }, ENTRIES);
    if (i > 0) times.push(ms); // the first one opens the connection
  }
  await page.close();
  return times;
}

// What page functions use of the browser (this file is type-checked without DOM types; types are erased,
// so page functions may name them): the VMs table's links, a MutationObserver, resource timings, and the
// times recorded on the page's global.
interface PageElement {
  textContent: string | null;
  closest(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
}
interface PageGlobal {
  document: PageElement & {
    querySelector(selector: string): PageElement | null;
    addEventListener(
      type: "click",
      listener: (event: { target: PageElement }) => void,
      capture: boolean,
    ): void;
  };
  MutationObserver: new (
    callback: (records: unknown, observer: { disconnect(): void }) => void,
  ) => { observe(target: unknown, options: { childList: boolean; subtree: boolean }): void };
  performance: {
    now(): number;
    getEntriesByType(type: "resource"): { name: string; startTime: number; responseEnd: number }[];
  };
  /** When the watched row appeared (or left): performance.now() and Date.now(). */
  __rowAt?: { at: number; epoch: number };
  __clickAt?: number;
}

/** Records when the VM's row is in (or out of) the VMs table, from now on. */
async function watchRow(page: Page, name: string, until: "shown" | "gone"): Promise<void> {
  await page.evaluate(
    ({ name, until }) => {
      const g = globalThis as unknown as PageGlobal;
      g.__rowAt = undefined;
      const listed = () =>
        Array.from(g.document.querySelector('[aria-label="VMs"]')?.querySelectorAll("tbody a") ?? []).some(
          (a) => a.textContent === name,
        );
      const check = () => {
        if (listed() !== (until === "shown")) return false;
        g.__rowAt = { at: g.performance.now(), epoch: Date.now() };
        return true;
      };
      if (check()) return;
      new g.MutationObserver((_records, observer) => {
        if (check()) observer.disconnect();
      }).observe(g.document, { childList: true, subtree: true });
    },
    { name, until },
  );
}

async function rowTime(page: Page): Promise<{ at: number; epoch: number }> {
  const handle = await page.waitForFunction(() => (globalThis as unknown as PageGlobal).__rowAt, undefined, {
    timeout: 30_000,
  });
  return (await handle.jsonValue()) as { at: number; epoch: number };
}

/** The VMs page in a new context, following the server's VM events. */
async function vmsPage(browser: Browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${base}/vms?ns=${NS}`);
  await page.getByText("updated live").waitFor({ timeout: 30_000 });
  return { context, page };
}

/** Create VM through the dialog: Create click → row, and POST answered → row. */
async function createThroughDialog(
  browser: Browser,
  runs: number,
): Promise<{ total: number[]; afterServer: number[]; request: number[] }> {
  const { context, page } = await vmsPage(browser);
  await page.evaluate(() => {
    const g = globalThis as unknown as PageGlobal;
    g.document.addEventListener(
      "click",
      (event) => {
        if (event.target.closest("button")?.textContent === "Create") g.__clickAt = g.performance.now();
      },
      true,
    );
  });
  const result = { total: [] as number[], afterServer: [] as number[], request: [] as number[] };
  for (let i = 0; i <= runs; i++) {
    const name = `ui-${i}`;
    await page.getByRole("button", { name: "Create VM" }).first().click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(/^Name/).fill(name);
    await dialog.getByLabel(/^Operating system/).selectOption("Ubuntu 24.04 variant 0");
    const review = dialog.getByRole("button", { name: "Review" });
    await review.and(page.locator(":enabled")).waitFor({ timeout: 30_000 });
    await review.click();
    const create = dialog.getByRole("button", { name: "Create", exact: true });
    await create.and(page.locator(":enabled")).waitFor({ timeout: 30_000 });
    await watchRow(page, name, "shown");
    await create.click();
    const row = await rowTime(page);
    const timing = await page.evaluate(
      ({ ns }) => {
        const g = globalThis as unknown as PageGlobal;
        const clickAt = g.__clickAt as number;
        // The first request to the VM list's URL after the click is the create (the refetch comes later).
        const post = g.performance
          .getEntriesByType("resource")
          .filter((e) => e.name.endsWith(`/api/v1/namespaces/${ns}/vms`) && e.startTime >= clickAt)
          .sort((a, b) => a.startTime - b.startTime)[0];
        return { clickAt, start: post?.startTime ?? Number.NaN, end: post?.responseEnd ?? Number.NaN };
      },
      { ns: NS },
    );
    if (i === 0) continue; // warm-up: the dialog's chunk, the first connection
    result.total.push(row.at - timing.clickAt);
    result.afterServer.push(row.at - timing.end);
    result.request.push(timing.end - timing.start);
  }
  await context.close();
  return result;
}

/** VMs created and deleted by someone else (the API): the server's answer → the list shows it. */
async function changesFromElsewhere(
  browser: Browser,
  runs: number,
): Promise<{ created: number[]; deleted: number[]; listFetch: number[] }> {
  const { context, page } = await vmsPage(browser);
  const api = `${base}/api/v1/namespaces/${NS}/vms`;
  const created: number[] = [];
  const deleted: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const name = `api-${i}`;
    await watchRow(page, name, "shown");
    const response = await fetch(api, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, image: "Ubuntu 24.04 variant 0" }),
    });
    const answeredAt = Date.now();
    if (response.status !== 201)
      throw new Error(`create ${name}: ${response.status} ${await response.text()}`);
    const shown = await rowTime(page);
    await watchRow(page, name, "gone");
    const gone = await fetch(`${api}/${name}`, { method: "DELETE" });
    const goneAt = Date.now();
    if (gone.status !== 204) throw new Error(`delete ${name}: ${gone.status}`);
    const hidden = await rowTime(page);
    if (i === 0) continue;
    created.push(Math.max(0, shown.epoch - answeredAt));
    deleted.push(Math.max(0, hidden.epoch - goneAt));
  }
  const listFetch: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const ms = await page.evaluate(async (path) => {
      const start = performance.now();
      await (await fetch(path, { cache: "no-store" })).json();
      return performance.now() - start;
    }, `/api/v1/namespaces/${NS}/vms`);
    if (i > 0) listFetch.push(ms);
  }
  await context.close();
  return { created, deleted, listFetch };
}

interface Asset {
  file: string;
  raw: number;
  gzip: number;
  brotli: number;
}

function measure(file: string): Asset {
  const data = readFileSync(join(WEB_DIST, file));
  return {
    file,
    raw: data.length,
    gzip: gzipSync(data, { level: 9 }).length,
    brotli: brotliCompressSync(data).length,
  };
}

/** The files index.html loads at once (entry script, its preloads, stylesheets); every other chunk is lazy. */
function bundle(): { initialJs: Asset[]; css: Asset[]; lazyJs: Asset[] } {
  const html = readFileSync(join(WEB_DIST, "index.html"), "utf8");
  const referenced = new Set(
    [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1] as string),
  );
  const files = readdirSync(join(WEB_DIST, "assets"))
    .map((f) => `assets/${f}`)
    .filter((f) => statSync(join(WEB_DIST, f)).isFile());
  const js = files.filter((f) => f.endsWith(".js"));
  return {
    initialJs: js.filter((f) => referenced.has(f)).map(measure),
    css: files.filter((f) => f.endsWith(".css")).map(measure),
    lazyJs: js.filter((f) => !referenced.has(f)).map(measure),
  };
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
const stats = (xs: number[]) => [percentile(xs, 50), percentile(xs, 90), Math.min(...xs)];

let browser: Browser | undefined;
try {
  browser = await launchBrowser();
  const catalogBytes = (await (await fetch(`${base}/api/v1/catalog`)).arrayBuffer()).byteLength;
  console.log(
    `catalog: ${ENTRIES} entries, /api/v1/catalog ${kb(catalogBytes)}; ${RUNS} runs each, 1280×800`,
  );
  await coldRender(browser); // warm-up: the server's and the browser's first-time costs
  const cold: number[] = [];
  let rows = 0;
  for (let i = 0; i < RUNS; i++) {
    const run = await coldRender(browser);
    cold.push(run.ms);
    rows = run.rows;
  }
  const warm = await warmRenders(browser, RUNS);
  const baseline = await fetchAlone(browser, RUNS);
  const [coldP50 = 0] = stats(cold);
  const [baseP50 = 0] = stats(baseline);
  printTable(
    `first render of /catalog (navigation start → first row; ${rows} rows rendered)`,
    ["what", "p50 ms", "p90 ms", "min ms", "× baseline (p50)"],
    [
      ["baseline: fetch /api/v1/catalog alone (+ JSON.parse)", ...stats(baseline), 1],
      ["catalog page, cold cache (new context)", ...stats(cold), coldP50 / baseP50],
      ["catalog page, warm cache (reload)", ...stats(warm), (stats(warm)[0] ?? 0) / baseP50],
    ],
  );

  const dialog = await createThroughDialog(browser, RUNS);
  const elsewhere = await changesFromElsewhere(browser, RUNS);
  const [afterP50 = 0] = stats(dialog.afterServer);
  const [createdP50 = 0] = stats(elsewhere.created);
  const [deletedP50 = 0] = stats(elsewhere.deleted);
  printTable(
    "VM list updates (1280×800)",
    ["what", "p50 ms", "p90 ms", "min ms"],
    [
      ["baseline: the create request alone (POST → answer)", ...stats(dialog.request)],
      ["Create click → the VM in the list", ...stats(dialog.total)],
      ["  of which after the server answered", ...stats(dialog.afterServer)],
      ["baseline: fetch the VM list alone", ...stats(elsewhere.listFetch)],
      ["created through the API → in the list (events)", ...stats(elsewhere.created)],
      ["deleted through the API → gone from the list", ...stats(elsewhere.deleted)],
    ],
  );

  const { initialJs, css, lazyJs } = bundle();
  const sum = (xs: Asset[], k: keyof Omit<Asset, "file">) => xs.reduce((n, a) => n + a[k], 0);
  const row = (label: string, xs: Asset[]) => [
    label,
    kb(sum(xs, "raw")),
    kb(sum(xs, "gzip")),
    kb(sum(xs, "brotli")),
  ];
  printTable(
    "bundle (web/dist)",
    ["part", "raw", "gzip", "brotli"],
    [row("initial JS", initialJs), ...lazyJs.map((a) => row(`  lazy: ${a.file}`, [a])), row("CSS", css)],
  );
  console.log("");
  verdict(
    `first render < ${FIRST_RENDER_TARGET_MS} ms (cold, p50)`,
    coldP50 < FIRST_RENDER_TARGET_MS,
    `${coldP50.toFixed(0)} ms, ${(coldP50 / baseP50).toFixed(1)}× the fetch alone`,
  );
  verdict(
    `list update < ${LIST_UPDATE_TARGET_MS} ms after the server knows (p50)`,
    Math.max(afterP50, createdP50, deletedP50) < LIST_UPDATE_TARGET_MS,
    `Create in the dialog ${afterP50.toFixed(0)} ms, created elsewhere ${createdP50.toFixed(0)} ms, deleted elsewhere ${deletedP50.toFixed(0)} ms`,
  );
  verdict(
    "initial JS < 350 KB gzip",
    sum(initialJs, "gzip") < INITIAL_JS_BUDGET_GZIP,
    `${kb(sum(initialJs, "gzip"))} (${initialJs.map((a) => a.file).join(", ")})`,
  );
} finally {
  await browser?.close();
  await stop(server);
  rmSync(dir, { recursive: true, force: true });
}
