import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crossOriginProblem } from "../src/auth/security.ts";
import { type ServeOptions, startServer } from "../src/server/serve.ts";
import { bearer, LOCAL_ENTRY, OWN, type RoleTokens, startTokenServer, upgrade } from "./support/auth.ts";
import { type TestServer, tempDir } from "./support/server.ts";

const ENTRY = LOCAL_ENTRY;

const serve = (tenancy: ServeOptions["tenancy"] = {}) =>
  startTokenServer({ prefix: "osimg-security-", tenancy });

describe("headers and origins", () => {
  let server: TestServer;
  let tokens: RoleTokens;
  beforeAll(async () => {
    ({ server, tokens } = await serve({ allowedOrigins: ["https://osimg.example.com"] }));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("sends security headers on every answer, refusals and unknown paths included", async () => {
    for (const [path, token] of [
      ["/api/v1/catalog", tokens.viewer],
      ["/api/v1/catalog", undefined],
      ["/api/v1/nothing-here", tokens.viewer],
      ["/healthz", undefined],
    ] as const) {
      const response = await fetch(`${server.url}${path}`, { headers: bearer(token) });
      expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(response.headers.get("x-frame-options"), path).toBe("DENY");
      expect(response.headers.get("referrer-policy"), path).toBe("same-origin");
      expect(response.headers.get("cross-origin-resource-policy"), path).toBe("same-origin");
      expect(response.headers.get("x-request-id"), path).toMatch(/^[0-9a-f-]{36}$/);
      if (path.startsWith("/api/"))
        expect(response.headers.get("content-security-policy"), path).toBe(
          "default-src 'none'; frame-ancestors 'none'",
        );
    }
    const me = await fetch(`${server.url}/api/v1/whoami`, { headers: bearer(tokens.viewer) });
    expect(me.headers.get("cache-control")).toBe("no-store");
  });

  it("answers no CORS: another origin's page can neither read answers nor preflight", async () => {
    const read = await fetch(`${server.url}/api/v1/catalog`, {
      headers: { ...bearer(tokens.viewer), origin: "https://evil.example" },
    });
    expect(read.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await fetch(`${server.url}/api/v1/namespaces/demo/vms`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(404);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses changes and console upgrades from pages of other origins, before any credential is checked", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/api/v1/namespaces/${OWN}/vms/absent/stop`, {
        method: "POST",
        headers: { ...bearer(tokens.member), ...headers },
      });
    const evil = await post({ origin: "https://evil.example" });
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as { error: string }).error).toBe("cross_origin");
    expect((await post({ "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await post({ origin: "null" })).status).toBe(403);
    // The server's own origin, an allowed one, and clients that send none (the CLI) pass on.
    expect((await post({ origin: server.url })).status).toBe(404);
    expect((await post({ origin: "https://osimg.example.com" })).status).toBe(404);
    expect((await post({})).status).toBe(404);
    const console = `${server.url}/api/v1/namespaces/${OWN}/vms/absent/console`;
    expect(
      (await upgrade(console, { ...bearer(tokens.member), origin: "https://evil.example" })).status,
    ).toBe(403);
    expect((await upgrade(console, { ...bearer(tokens.member), origin: server.url })).status).toBe(101);
  });

  it("compares origins by host (a TLS proxy in front changes the scheme, not the host)", () => {
    expect(crossOriginProblem({ origin: "https://osimg.lan:8080", host: "osimg.lan:8080" })).toBeUndefined();
    expect(crossOriginProblem({ origin: "http://osimg.lan", host: "osimg.lan:8080" })).toMatch(
      /another origin/,
    );
    expect(crossOriginProblem({ host: "x", "sec-fetch-site": "same-origin" })).toBeUndefined();
  });

  it("limits bodies per route: lifecycle calls take almost nothing, a VM create its cloud-init", async () => {
    const big = (n: number) => JSON.stringify({ pad: "x".repeat(n) });
    const action = await fetch(`${server.url}/api/v1/namespaces/${OWN}/vms/absent/stop`, {
      method: "POST",
      headers: { ...bearer(tokens.member), "content-type": "application/json" },
      body: big(20_000),
    });
    expect(action.status).toBe(413);
    const create = (n: number) =>
      fetch(`${server.url}/api/v1/namespaces/${OWN}/vms`, {
        method: "POST",
        headers: { ...bearer(tokens.member), "content-type": "application/json" },
        body: JSON.stringify({
          name: "big",
          image: ENTRY.OS_NAME,
          userData: `#cloud-config\n#${"x".repeat(n)}`,
        }),
      });
    expect((await create(300_000)).status).toBe(413);
    // Under the route's limit but over cloud-init's own: refused by the field check, naming it.
    const overCloudInit = await create(70_000);
    expect(overCloudInit.status).toBe(400);
    expect(JSON.stringify(await overCloudInit.json())).toContain("userData");
  });

  it("checks VM names strictly", async () => {
    const response = await fetch(`${server.url}/api/v1/namespaces/${OWN}/vms`, {
      method: "POST",
      headers: { ...bearer(tokens.member), "content-type": "application/json" },
      body: JSON.stringify({ name: "../Etc_Passwd", image: ENTRY.OS_NAME }),
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { details: { field: string }[] };
    expect(body.details.map((d) => d.field)).toContain("name");
  });
});

describe("rate limits", () => {
  it("limits changes per principal, leaving reads and other principals alone", async () => {
    const { server, tokens } = await serve({
      rateLimits: { mutating: { capacity: 3, perSecond: 0.01 } },
    });
    try {
      const stop = (token: string) =>
        fetch(`${server.url}/api/v1/namespaces/${OWN}/vms/absent/stop`, {
          method: "POST",
          headers: bearer(token),
        });
      for (let i = 0; i < 3; i++) expect((await stop(tokens.member)).status).toBe(404);
      const limited = await stop(tokens.member);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(((await limited.json()) as { error: string }).error).toBe("rate_limited");
      expect(
        (await fetch(`${server.url}/api/v1/namespaces/${OWN}/vms`, { headers: bearer(tokens.member) }))
          .status,
      ).toBe(200);
      expect((await stop(tokens.admin)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });

  it("blocks an address after repeated invalid credentials, even with a good one next", async () => {
    const { server, tokens } = await serve({
      rateLimits: { failedLogins: { capacity: 3, perSecond: 0.01 } },
    });
    try {
      const whoami = (token: string) => fetch(`${server.url}/api/v1/whoami`, { headers: bearer(token) });
      for (let i = 0; i < 3; i++) expect((await whoami(`osimg_guess${i}`)).status).toBe(401);
      const blocked = await whoami(tokens.admin);
      expect(blocked.status).toBe(429);
      expect(((await blocked.json()) as { error: string }).error).toBe("too_many_failed_logins");
    } finally {
      await server.stop();
    }
  });
});

describe("behind a reverse proxy", () => {
  it("counts failed logins per client named by a trusted proxy, not per proxy", async () => {
    const { server, tokens } = await serve({
      trustProxy: ["127.0.0.1"],
      rateLimits: { failedLogins: { capacity: 2, perSecond: 0.01 } },
    });
    try {
      const whoami = (token: string, client: string) =>
        fetch(`${server.url}/api/v1/whoami`, { headers: { ...bearer(token), "x-forwarded-for": client } });
      expect((await whoami("osimg_guess", "10.0.0.1")).status).toBe(401);
      expect((await whoami("osimg_guess", "10.0.0.1")).status).toBe(401);
      expect((await whoami(tokens.admin, "10.0.0.1")).status).toBe(429);
      expect((await whoami(tokens.admin, "10.0.0.2")).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe("--auth none", () => {
  it("is refused on an address other than loopback", async () => {
    await expect(
      startServer({
        port: 0,
        host: "0.0.0.0",
        dataDir: tempDir("osimg-none-"),
        auth: { mode: "none", quiet: true },
      }),
    ).rejects.toThrow(/--auth none is refused on 0\.0\.0\.0/);
  });
});
