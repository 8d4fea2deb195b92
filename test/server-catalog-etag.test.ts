// GET /api/v1/catalog answers with an ETag and 304 to If-None-Match, so that the UI's one-second poll
// costs a hash, not the whole catalog. The tag changes with each thing the answer is made of: the served
// catalog, the outcome of the latest reload (a rejected edit), and the image checks.
import Fastify, { type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildCatalog } from "../src/catalog/catalog.ts";
import { CatalogState } from "../src/catalog/state.ts";
import type { EntryVerification } from "../src/images/verifier.ts";
import { installErrorHandler } from "../src/server/errors.ts";
import { catalogRoutes } from "../src/server/routes/catalog.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";

const SOURCE = { kind: "file", location: "/etc/osimg/images.yaml" } as const;
const GOOD = catalogYaml([UBUNTU]);

let app: FastifyInstance;
let state: CatalogState;
let checks: Record<string, EntryVerification>;

beforeEach(async () => {
  state = new CatalogState();
  checks = {};
  app = Fastify().withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  await app.register(catalogRoutes(state, () => checks));
});

afterEach(() => app.close());

const get = (etag?: string) =>
  app.inject({ method: "GET", url: "/api/v1/catalog", headers: etag ? { "if-none-match": etag } : {} });

async function tag(): Promise<string> {
  const response = await get();
  expect(response.statusCode).toBe(200);
  const etag = response.headers.etag;
  expect(etag).toMatch(/^"[\w-]{27}"$/);
  expect(response.headers["cache-control"]).toBe("no-cache");
  return etag as string;
}

describe("GET /api/v1/catalog ETag", () => {
  it("answers 304 with no body to its own ETag, and the full catalog otherwise", async () => {
    state.offer(buildCatalog(GOOD, SOURCE));
    const etag = await tag();
    const again = await get(etag);
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expect(again.headers.etag).toBe(etag);
    // A weak form, a list, and a stale tag.
    expect((await get(`W/${etag}`)).statusCode).toBe(304);
    expect((await get(`"stale", ${etag}`)).statusCode).toBe(304);
    const stale = await get('"stale"');
    expect(stale.statusCode).toBe(200);
    expect(stale.json()).toMatchObject({ counts: { entries: 1 } });
  });

  it("is the same for the same state, and changes when the catalog changes", async () => {
    state.offer(buildCatalog(GOOD, SOURCE));
    const first = await tag();
    expect(await tag()).toBe(first);
    state.offer(buildCatalog(GOOD.replace("Ubuntu 24.04", "Ubuntu 24.04 LTS"), SOURCE));
    const edited = await tag();
    expect(edited).not.toBe(first);
    expect((await get(first)).statusCode).toBe(200);
  });

  it("changes when an edit is rejected (the last-good alert must show) and when it is fixed", async () => {
    state.offer(buildCatalog(GOOD, SOURCE));
    const good = await tag();
    state.offer(buildCatalog(GOOD.replace('"1G"', '"1 GB"'), SOURCE));
    const rejected = await get(good);
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({ servingLastGood: true, lastReload: { ok: false } });
    const rejectedTag = rejected.headers.etag as string;
    expect(rejectedTag).not.toBe(good);
    state.offer(buildCatalog(GOOD, SOURCE));
    const fixed = await get(rejectedTag);
    expect(fixed.statusCode).toBe(200);
    expect(fixed.json()).toMatchObject({ servingLastGood: false, lastReload: { ok: true } });
  });

  it("changes when an image check progresses, though the catalog did not", async () => {
    state.offer(buildCatalog(GOOD, SOURCE));
    const id = (await get()).json().entries[0].id as string;
    checks = { [id]: { entry: id, state: "pending" } };
    const pending = await tag();
    checks = { [id]: { entry: id, state: "running" } };
    const running = await get(pending);
    expect(running.statusCode).toBe(200);
    expect(running.json().verification[id].state).toBe("running");
    expect((await get(running.headers.etag as string)).statusCode).toBe(304);
  });

  it("keeps the 503 before any catalog was loaded", async () => {
    const response = await get();
    expect(response.statusCode).toBe(503);
    expect(response.headers.etag).toBeUndefined();
  });
});
