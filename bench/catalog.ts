// npm run bench:catalog — the Kube-DC catalog endpoint under load, against the ceiling of this machine:
// a bare node:http server answering a precomputed buffer of the same body. Both run as child processes
// so that the load generator (autocannon, here) never shares their event loop. Then the reload latency:
// file written → new content served.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { catalogYaml, generatedCatalog, UBUNTU } from "../test/support/catalogs.ts";
import { freePort, load, percentile, printTable, startProcess, stop, verdict } from "./support.ts";

const ENTRIES = 500;
const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RELOADS = 30;

const dir = mkdtempSync(join(tmpdir(), "osimg-bench-catalog-"));
const catalogPath = join(dir, "images.yaml");
writeFileSync(catalogPath, generatedCatalog(ENTRIES));
const node = process.execPath;
const bin = new URL("../bin/osimg.js", import.meta.url).pathname;

const ourPort = await freePort();
const ourUrl = `http://127.0.0.1:${ourPort}/api/create-vm/demo/os-images`;
const ours = await startProcess(
  node,
  [
    bin,
    "serve",
    "--auth",
    "none",
    "--catalog",
    catalogPath,
    "--port",
    String(ourPort),
    "--data-dir",
    join(dir, "data"),
  ],
  ourUrl,
  {
    OSIMG_LOG_LEVEL: "warn",
  },
);
const body = Buffer.from(await (await fetch(ourUrl)).arrayBuffer());
const bodyPath = join(dir, "body.json");
writeFileSync(bodyPath, body);

const barePort = await freePort();
const bareUrl = `http://127.0.0.1:${barePort}/api/create-vm/demo/os-images`;
const bareScript = `
const body = require("node:fs").readFileSync(${JSON.stringify(bodyPath)});
require("node:http").createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": body.length });
  res.end(body);
}).listen(${barePort}, "127.0.0.1");`;
const bare = await startProcess(node, ["-e", bareScript], bareUrl);

try {
  console.log(
    `catalog: ${ENTRIES} entries, body ${body.length} bytes; ${CONNECTIONS} connections, ${SECONDS} s each`,
  );
  await load(bareUrl, CONNECTIONS, 2); // warm-up of the machine and both servers
  await load(ourUrl, CONNECTIONS, 2);
  const baseline = await load(bareUrl, CONNECTIONS, SECONDS);
  const ourLoad = await load(ourUrl, CONNECTIONS, SECONDS);
  const ratio = ourLoad.requestsPerSecond / baseline.requestsPerSecond;
  printTable(
    "GET /api/create-vm/demo/os-images",
    ["server", "req/s", "p50 ms", "p99 ms", "errors", "non-2xx"],
    [
      [
        "bare node:http, precomputed body (ceiling)",
        baseline.requestsPerSecond,
        baseline.p50Ms,
        baseline.p99Ms,
        baseline.errors,
        baseline.non2xx,
      ],
      [
        "osimg serve",
        ourLoad.requestsPerSecond,
        ourLoad.p50Ms,
        ourLoad.p99Ms,
        ourLoad.errors,
        ourLoad.non2xx,
      ],
    ],
  );
  verdict("throughput ratio osimg / ceiling", ratio >= 0.7, `${ratio.toFixed(2)} (target >= 0.70)`);
  verdict("osimg p99 latency", ourLoad.p99Ms < 20, `${ourLoad.p99Ms} ms (target < 20 ms)`);

  const latencies: number[] = [];
  for (let i = 0; i < RELOADS; i++) {
    const name = `Reloaded ${i}`;
    const started = performance.now();
    writeFileSync(catalogPath, catalogYaml([{ ...UBUNTU, OS_NAME: name }]));
    for (;;) {
      const entries = (await (await fetch(ourUrl)).json()) as { OS_NAME: string }[];
      if (entries[0]?.OS_NAME === name) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    latencies.push(performance.now() - started);
  }
  printTable(
    `Reload latency: file written -> new content served (${RELOADS} edits)`,
    ["system", "p50 ms", "p99 ms", "max ms"],
    [
      ["Kube-DC: its documented 30 s cache TTL (not measured here)", 30_000, 30_000, 30_000],
      ["osimg serve", percentile(latencies, 50), percentile(latencies, 99), Math.max(...latencies)],
    ],
  );
  verdict(
    "reload latency p99",
    percentile(latencies, 99) < 1000,
    `${percentile(latencies, 99).toFixed(0)} ms (target < 1000 ms)`,
  );
} finally {
  await stop(ours);
  await stop(bare);
  rmSync(dir, { recursive: true, force: true });
}
