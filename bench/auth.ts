// npm run bench:auth — what authentication costs on the catalog API: the Kube-DC endpoint of a project
// (GET /api/create-vm/demo/os-images, a namespace-scoped read) under load, served by two `osimg serve`
// child processes started the same way on the same catalog — one with --auth none, one with --auth oidc
// and every request carrying a viewer's JWT from a local issuer (keys generated now) — measured
// alternately in the same run. Verified tokens are cached by their hash (bounded by their expiry), so a
// request costs a SHA-256 and a lookup, not an RSA signature check; the full check's rate is printed too.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { jwtVerify } from "jose";
import { startIssuer } from "../test/support/auth.ts";
import { catalogYaml, generatedCatalog, UBUNTU } from "../test/support/catalogs.ts";
import {
  freePort,
  type LoadResult,
  load,
  percentile,
  printTable,
  startProcess,
  stop,
  verdict,
} from "./support.ts";

const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TARGET = 0.8;

const dir = mkdtempSync(join(tmpdir(), "osimg-bench-auth-"));
const node = process.execPath;
const bin = new URL("../bin/osimg.js", import.meta.url).pathname;
const issuer = await startIssuer("osimg");
const token = await issuer.sign({ sub: "bench", groups: ["/demo/viewer"] }, { expiresIn: "2h" });
const headers = { authorization: `Bearer ${token}` };

async function serve(name: string, catalogPath: string, auth: string[]) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = await startProcess(
    node,
    [bin, "serve", ...auth, "--catalog", catalogPath, "--port", String(port), "--data-dir", join(dir, name)],
    `${base}/healthz`,
    { OSIMG_LOG_LEVEL: "warn" },
  );
  return { child, url: `${base}/api/create-vm/demo/os-images` };
}

const mean = (xs: LoadResult[]): LoadResult => ({
  requestsPerSecond: xs.reduce((s, x) => s + x.requestsPerSecond, 0) / xs.length,
  p50Ms: xs.reduce((s, x) => s + x.p50Ms, 0) / xs.length,
  p99Ms: xs.reduce((s, x) => s + x.p99Ms, 0) / xs.length,
  errors: xs.reduce((s, x) => s + x.errors, 0),
  non2xx: xs.reduce((s, x) => s + x.non2xx, 0),
});

const children: Awaited<ReturnType<typeof serve>>["child"][] = [];
try {
  // The cost of one full verification (signature, claims) without the cache, for scale.
  const { createRemoteJWKSet } = await import("jose");
  const keys = createRemoteJWKSet(new URL(`${issuer.issuer}/jwks`));
  await jwtVerify(token, keys, { issuer: issuer.issuer, audience: "osimg" });
  const started = performance.now();
  let verified = 0;
  while (performance.now() - started < 1000) {
    await jwtVerify(token, keys, { issuer: issuer.issuer, audience: "osimg" });
    verified++;
  }
  const fullPerSecond = verified / ((performance.now() - started) / 1000);

  const rows: (string | number)[][] = [];
  const ratios: { catalog: string; ratio: number; pairs: number[] }[] = [];
  for (const [label, text] of [
    ["500 entries", generatedCatalog(500)],
    ["1 entry", catalogYaml([UBUNTU])],
  ] as const) {
    const catalogPath = join(dir, `${label.replace(/\W/g, "-")}.yaml`);
    writeFileSync(catalogPath, text);
    const off = await serve(`off-${label}`, catalogPath, ["--auth", "none"]);
    const on = await serve(`on-${label}`, catalogPath, [
      "--auth",
      "oidc",
      "--oidc-issuer",
      issuer.issuer,
      "--oidc-audience",
      "osimg",
    ]);
    children.push(off.child, on.child);
    const check = await fetch(on.url, { headers });
    if (check.status !== 200) throw new Error(`the JWT was refused: ${check.status} ${await check.text()}`);
    if ((await fetch(on.url)).status !== 401) throw new Error("the oidc server answered without a token");
    await load(off.url, CONNECTIONS, 2); // warm-up of both servers
    await load(on.url, CONNECTIONS, 2, headers);
    // Alternating runs, each "on" paired with the "off" just before it: the ratio of each pair is
    // immune to the machine getting busier or quieter over the run; the median pair is reported.
    const offRuns: LoadResult[] = [];
    const onRuns: LoadResult[] = [];
    const pairs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      offRuns.push(await load(off.url, CONNECTIONS, SECONDS));
      onRuns.push(await load(on.url, CONNECTIONS, SECONDS, headers));
      pairs.push(
        (onRuns.at(-1) as LoadResult).requestsPerSecond / (offRuns.at(-1) as LoadResult).requestsPerSecond,
      );
    }
    const a = mean(offRuns);
    const b = mean(onRuns);
    rows.push(
      [`${label}: --auth none (baseline)`, a.requestsPerSecond, a.p50Ms, a.p99Ms, a.errors, a.non2xx],
      [`${label}: --auth oidc, JWT per request`, b.requestsPerSecond, b.p50Ms, b.p99Ms, b.errors, b.non2xx],
    );
    ratios.push({ catalog: label, ratio: percentile(pairs, 50), pairs });
    await stop(off.child);
    await stop(on.child);
  }
  console.log(
    `GET /api/create-vm/demo/os-images; ${CONNECTIONS} connections, ${ROUNDS} × ${SECONDS} s each, alternating; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  printTable(
    "Catalog API with JWT auth on vs off",
    ["server", "req/s", "p50 ms", "p99 ms", "errors", "non-2xx"],
    rows,
  );
  printTable(
    "For scale: one full JWT verification (RS256 signature + claims, jose) in this process",
    ["check", "per second"],
    [["jwtVerify, no cache", fullPerSecond]],
  );
  for (const { catalog, ratio } of ratios)
    verdict(
      `throughput ratio auth on / off (${catalog})`,
      ratio >= TARGET,
      `${ratio.toFixed(2)} (target >= ${TARGET})`,
    );
} finally {
  for (const child of children) await stop(child);
  await issuer.stop();
  rmSync(dir, { recursive: true, force: true });
}
