// npm run bench:ui — the web UI's first render of the catalog page with a 500-entry catalog, timed by the
// page itself in a real browser (chromium via playwright-core): from the start of navigation to the first
// row of the OS images table, on a cold cache (new browser context) and a warm one (reload). The baseline,
// measured in the same run and the same browser: fetching /api/v1/catalog alone (request + JSON parse),
// the floor of any page that shows it. Then the bundle sizes (raw, gzip, brotli) against the 350 KB gzip
// budget of the initial JavaScript.
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
    "initial JS < 350 KB gzip",
    sum(initialJs, "gzip") < INITIAL_JS_BUDGET_GZIP,
    `${kb(sum(initialJs, "gzip"))} (${initialJs.map((a) => a.file).join(", ")})`,
  );
} finally {
  await browser?.close();
  await stop(server);
  rmSync(dir, { recursive: true, force: true });
}
