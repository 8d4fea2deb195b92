// The UI route of the server (src/server/routes/ui.ts) over a small built tree: files with the right
// caching, precompressed twins, the page for client routes, and never the page for /api/* or a missing
// asset; a clear 503 when the UI has not been built.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, gzipSync } from "node:zlib";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { installErrorHandler } from "../../src/server/errors.ts";
import { allowAll, installAuthorization, routesWithoutPolicy } from "../../src/server/policy.ts";
import { uiRoutes } from "../../src/server/routes/ui.ts";

const INDEX =
  '<!doctype html><html><body><div id="root"></div><script src="/assets/index-abc123.js"></script></body></html>';
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});`;

let dir: string | undefined;
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  app = undefined;
  dir = undefined;
});

function builtTree(): string {
  dir = mkdtempSync(join(tmpdir(), "osimg-ui-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), INDEX);
  writeFileSync(join(dir, "favicon.svg"), "<svg/>");
  writeFileSync(join(dir, ".osimg-build.json"), "{}");
  writeFileSync(join(dir, "assets", "index-abc123.js"), SCRIPT);
  writeFileSync(join(dir, "assets", "index-abc123.js.br"), brotliCompressSync(SCRIPT));
  writeFileSync(join(dir, "assets", "index-abc123.js.gz"), gzipSync(SCRIPT));
  return dir;
}

async function serve(root: string): Promise<FastifyInstance> {
  app = Fastify();
  installErrorHandler(app);
  installAuthorization(app, allowAll);
  app.get(
    "/api/v1/catalog",
    { config: { policy: { action: "catalog.read", scope: "cluster" } } },
    async () => ({
      entries: [],
    }),
  );
  await app.register(uiRoutes({ root }));
  return app;
}

describe("UI route", () => {
  it("serves the page for / and for the UI's own routes, revalidated on every load", async () => {
    const server = await serve(builtTree());
    for (const url of ["/", "/catalog", "/catalog/edit?ns=team-a", "/vms/web-1", "/catalog/ubuntu-24.04"]) {
      const response = await server.inject({ url, headers: { accept: "text/html" } });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers["content-type"]).toContain("text/html");
      expect(response.headers["cache-control"]).toBe("no-cache");
      expect(response.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(response.body).toBe(INDEX);
    }
    expect(routesWithoutPolicy(server)).toEqual([]);
  });

  it("leaves /api/* to the API: known routes answer, unknown ones are a JSON 404, never the page", async () => {
    const server = await serve(builtTree());
    expect((await server.inject({ url: "/api/v1/catalog" })).json()).toEqual({ entries: [] });
    for (const url of ["/api/v1/nothing-here", "/api", "/api/"]) {
      const response = await server.inject({ url, headers: { accept: "text/html" } });
      expect(response.statusCode, url).toBe(404);
      expect(response.json()).toMatchObject({ error: "not_found" });
    }
  });

  it("caches hashed assets for a year and sends the precompressed twin the client accepts", async () => {
    const server = await serve(builtTree());
    const br = await server.inject({
      url: "/assets/index-abc123.js",
      headers: { "accept-encoding": "br, gzip" },
    });
    expect(br.statusCode).toBe(200);
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(br.headers["content-type"]).toContain("javascript");
    expect(Number(br.headers["content-length"])).toBeLessThan(SCRIPT.length);
    const gz = await server.inject({
      url: "/assets/index-abc123.js",
      headers: { "accept-encoding": "gzip" },
    });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    const plain = await server.inject({ url: "/assets/index-abc123.js" });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.body).toBe(SCRIPT);
    // Files outside assets/ have stable names: revalidated.
    expect((await server.inject({ url: "/favicon.svg" })).headers["cache-control"]).toBe("no-cache");
  });

  it("answers 404, not the page, for a missing asset, a dotfile, or a path out of the tree", async () => {
    const server = await serve(builtTree());
    for (const url of ["/assets/index-old999.js", "/missing.css", "/.osimg-build.json", "/../package.json"]) {
      const response = await server.inject({ url });
      expect(response.statusCode, url).toBe(404);
      expect(response.body).not.toContain("<html");
    }
    const encoded = await server.inject({ url: "/%2e%2e/%2e%2e/package.json" });
    expect(encoded.statusCode).toBeGreaterThanOrEqual(400);
    expect(encoded.body).not.toContain('"name"');
  });

  it("says how to build the UI when it has not been built", async () => {
    const server = await serve(join(tmpdir(), "osimg-ui-never-built"));
    const response = await server.inject({ url: "/catalog" });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      error: "ui_not_built",
      hint: expect.stringContaining("npm run build:web"),
    });
  });
});
