// Pushing to registries that want credentials, end to end: Debian's docker-registry on 127.0.0.1 behind a
// small auth gateway (also on 127.0.0.1) that answers 401 with a challenge to requests without valid
// credentials and passes the others on (authorization header removed, bodies streamed both ways, Location
// headers pointing to the registry rewritten to the gateway). "bearer" mode is the distribution token
// flow (a token endpoint checking Basic credentials, the service and the scopes asked for, granting
// short-lived tokens; challenges naming the scope each request needs, as docker-registry's token auth
// does, or none, as some registries do); "basic" mode wants the credentials on every request. The
// registry's own access log shows that every request it answered came through the gateway's check.
import { createHash, randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildOciImage, MEDIA_TYPES, type OciImageResult } from "../src/oci/layout.ts";
import { deleteImage, pushLayout } from "../src/oci/push.ts";
import { type Registry, startRegistry, tempDir } from "./support/build.ts";

const USER = "builder";
const PASSWORD = "correct horse battery staple";
const SERVICE = "osimg-test-registry";
const CREDENTIALS = { OSIMG_REGISTRY_USERNAME: USER, OSIMG_REGISTRY_PASSWORD: PASSWORD };
/** The gateway connects to the registry from this loopback address: the registry's log tells it apart. */
const GATEWAY_SOURCE = "127.0.0.2";
/** Hop-by-hop headers: a proxy does not pass them on. */
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);

type GatewayMode =
  | {
      auth: "bearer";
      /** false: challenges name no scope (the client must choose one). */
      challengeScope?: boolean;
      /** The field of the token response holding the token. */
      tokenField?: "token" | "access_token";
      /** How many requests a token is good for (tokens also expire after a minute). */
      tokenUses?: number;
    }
  | { auth: "basic" };

interface TokenRequest {
  service: string | null;
  scopes: string[];
  user: string | undefined;
  granted: boolean;
}

interface Exchange {
  method: string;
  uri: string;
  status: number;
}

interface Gateway {
  /** host:port */
  address: string;
  tokenRequests: TokenRequest[];
  /** Requests that passed the check, as passed on to the registry, with the registry's status. */
  proxied: Exchange[];
  /** Requests answered 401, with the challenge. */
  challenged: (Exchange & { challenge: string })[];
  /** Response headers that still named the registry after the rewriting. */
  leaks: string[];
  stop(): Promise<void>;
}

let dir: string;
let registry: Registry;
let layout: string;
let image: OciImageResult;
const gateways: Gateway[] = [];

beforeAll(async () => {
  dir = await tempDir("osimg-oci-auth-");
  registry = await startRegistry();
  const payload = join(dir, "payload.bin");
  await writeFile(payload, randomBytes(256 * 1024));
  layout = join(dir, "layout");
  image = await buildOciImage({
    layout,
    tag: "v1",
    layers: [
      {
        kind: "files",
        entries: [
          { path: "data", type: "dir", mode: 0o755, uid: 0, gid: 0 },
          { path: "data/payload.bin", type: "file", from: payload, mode: 0o644, uid: 0, gid: 0 },
        ],
      },
    ],
    config: { labels: { test: "oci-auth" } },
    compression: "gzip",
    created: 1_735_689_600,
  });
}, 60_000);

afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.stop();
});

afterAll(async () => {
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const basicHeader = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header?.startsWith("Basic ")) return undefined;
  const text = Buffer.from(header.slice(6), "base64").toString("utf8");
  const colon = text.indexOf(":");
  return colon === -1 ? undefined : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** What docker-registry's token auth asks for a request: pull to read, pull and push to write, delete. */
function requiredAccess(method: string, path: string): { repository: string; actions: string[] } | undefined {
  const m = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(path);
  if (!m) return undefined;
  const actions =
    method === "GET" || method === "HEAD" ? ["pull"] : method === "DELETE" ? ["delete"] : ["pull", "push"];
  return { repository: m[1] as string, actions };
}

const unauthorized = (res: ServerResponse, challenge: string, message: string) => {
  res.writeHead(401, { "www-authenticate": challenge, "content-type": "application/json" });
  res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message }] }));
};

async function startGateway(mode: GatewayMode): Promise<Gateway> {
  const [backendHost, backendPort] = registry.address.split(":") as [string, string];
  const tokenRequests: TokenRequest[] = [];
  const proxied: Exchange[] = [];
  const challenged: Gateway["challenged"] = [];
  const leaks: string[] = [];
  const tokens = new Map<string, { grants: Map<string, Set<string>>; expires: number; usesLeft: number }>();
  let address = "";

  const issueToken = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const credentials = parseBasic(req.headers.authorization);
    const record: TokenRequest = {
      service: url.searchParams.get("service"),
      scopes: url.searchParams.getAll("scope"),
      user: credentials?.user,
      granted: false,
    };
    tokenRequests.push(record);
    if (credentials?.user !== USER || credentials.password !== PASSWORD)
      return unauthorized(res, 'Basic realm="token"', "invalid username or password");
    const grants = new Map<string, Set<string>>();
    for (const scope of record.scopes) {
      const m = /^repository:([a-z0-9._/-]+):([a-z*]+(?:,[a-z*]+)*)$/.exec(scope);
      if (!m) {
        res
          .writeHead(400, { "content-type": "application/json" })
          .end(`{"details":"invalid scope ${scope}"}`);
        return;
      }
      // This account may do anything under osimg/, nothing elsewhere.
      if (!m[1]?.startsWith("osimg/")) continue;
      const actions = grants.get(m[1]) ?? new Set<string>();
      for (const action of (m[2] as string).split(",")) actions.add(action);
      grants.set(m[1], actions);
    }
    if (record.service !== SERVICE) {
      res.writeHead(400, { "content-type": "application/json" }).end('{"details":"unknown service"}');
      return;
    }
    record.granted = true;
    const token = randomBytes(18).toString("base64url");
    tokens.set(token, {
      grants,
      expires: Date.now() + 60_000,
      usesLeft: mode.auth === "bearer" ? (mode.tokenUses ?? Number.POSITIVE_INFINITY) : 0,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        [mode.auth === "bearer" ? (mode.tokenField ?? "token") : "token"]: token,
        expires_in: 60,
        issued_at: new Date().toISOString(),
      }),
    );
  };

  /** true, or the challenge to answer with. */
  const check = (req: IncomingMessage, path: string): true | string => {
    const header = req.headers.authorization;
    if (mode.auth === "basic") return header === basicHeader(USER, PASSWORD) ? true : 'Basic realm="test"';
    const need = requiredAccess(req.method ?? "GET", path);
    const token = header?.startsWith("Bearer ") ? tokens.get(header.slice(7)) : undefined;
    let error: string | undefined;
    if (!token || token.expires < Date.now() || token.usesLeft <= 0) {
      if (header?.startsWith("Bearer ")) error = "invalid_token";
    } else {
      const granted = need ? token.grants.get(need.repository) : undefined;
      if (!need || granted?.has("*") || need.actions.every((a) => granted?.has(a))) {
        token.usesLeft--;
        return true;
      }
      error = "insufficient_scope";
    }
    const scope =
      need && mode.challengeScope !== false
        ? `,scope="repository:${need.repository}:${need.actions.join(",")}"`
        : "";
    return `Bearer realm="http://${address}/token",service="${SERVICE}"${scope}${error ? `,error="${error}"` : ""}`;
  };

  const proxy = (req: IncomingMessage, res: ServerResponse) => {
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers))
      if (value !== undefined && !HOP.has(name) && name !== "authorization" && name !== "host")
        headers[name] = value;
    // As a reverse proxy that does not keep the Host: the registry's URLs then name itself.
    headers.host = registry.address;
    const method = req.method ?? "GET";
    const uri = req.url ?? "/";
    const upstream = httpRequest(
      {
        host: backendHost,
        port: Number(backendPort),
        localAddress: GATEWAY_SOURCE,
        method,
        path: uri,
        headers,
      },
      (answer) => {
        const back: OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value === undefined || HOP.has(name)) continue;
          const rewritten =
            name === "location" && typeof value === "string"
              ? value.replace(`http://${registry.address}/`, `http://${address}/`)
              : value;
          if (String(rewritten).includes(`//${registry.address}/`)) leaks.push(`${name}: ${rewritten}`);
          back[name] = rewritten;
        }
        proxied.push({ method, uri, status: answer.statusCode ?? 0 });
        res.writeHead(answer.statusCode ?? 502, back);
        answer.pipe(res);
      },
    );
    upstream.on("error", (e) => res.destroy(e));
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (mode.auth === "bearer" && url.pathname === "/token" && req.method === "GET")
      return issueToken(req, res, url);
    if (!url.pathname.startsWith("/v2/")) {
      res.writeHead(404).end();
      return;
    }
    const verdict = check(req, url.pathname);
    if (verdict === true) return proxy(req, res);
    challenged.push({ method: req.method ?? "GET", uri: req.url ?? "/", status: 401, challenge: verdict });
    unauthorized(res, verdict, "authentication required");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gateway: Gateway = {
    address,
    tokenRequests,
    proxied,
    challenged,
    leaks,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  gateways.push(gateway);
  return gateway;
}

const key = (e: { method: string; uri: string; status: number }) => `${e.method} ${e.uri} ${e.status}`;

/**
 * The requests the registry answered since `mark` (its log line comes after the response: wait for the
 * gateway's count, then a little for any stray one) are exactly those the gateway passed on.
 */
async function expectOnlyGatewayTraffic(gateway: Gateway, mark: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (registry.accessLog.length - mark < gateway.proxied.length && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  const seen = registry.accessLog.slice(mark);
  expect(seen.filter((e) => e.remote !== GATEWAY_SOURCE)).toEqual([]);
  expect(seen.map(key).sort()).toEqual(gateway.proxied.map(key).sort());
}

/** The manifest under a tag or digest, read from the registry directly. */
async function registryManifest(repository: string, ref: string) {
  const response = await fetch(`http://${registry.address}/v2/${repository}/manifests/${ref}`, {
    headers: { accept: MEDIA_TYPES.manifest },
  });
  const body = Buffer.from(await response.arrayBuffer());
  return {
    status: response.status,
    digest: response.headers.get("docker-content-digest"),
    bodyDigest: `sha256:${createHash("sha256").update(body).digest("hex")}`,
  };
}

const registryBlobStatus = async (repository: string, digest: string) =>
  (await fetch(`http://${registry.address}/v2/${repository}/blobs/${digest}`, { method: "HEAD" })).status;

async function expectPushed(repository: string, tag: string): Promise<void> {
  const manifest = await registryManifest(repository, tag);
  expect(manifest).toEqual({ status: 200, digest: image.manifest.digest, bodyDigest: image.manifest.digest });
  for (const blob of [image.config, ...image.layers])
    expect(await registryBlobStatus(repository, blob.digest)).toBe(200);
}

async function expectNothingPushed(gateway: Gateway, repository: string, mark: number): Promise<void> {
  expect(gateway.proxied).toEqual([]);
  await expectOnlyGatewayTraffic(gateway, mark);
  expect((await registryManifest(repository, "v1")).status).toBe(404);
  for (const blob of [image.config, ...image.layers])
    expect(await registryBlobStatus(repository, blob.digest)).toBe(404);
}

const failure = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: Error) => e,
  );

const push = (gateway: Gateway, repository: string, env: NodeJS.ProcessEnv) =>
  pushLayout({ layout, tag: "v1", reference: `${gateway.address}/${repository}:v1`, tlsVerify: false, env });

describe("a registry that wants a bearer token", () => {
  it("the token comes from the realm for a push scope with the credentials; the image lands in the registry", async () => {
    const gateway = await startGateway({ auth: "bearer" });
    const mark = registry.accessLog.length;
    const result = await push(gateway, "osimg/bearer", CREDENTIALS);
    expect(result).toEqual({
      reference: `${gateway.address}/osimg/bearer:v1`,
      digest: image.manifest.digest,
      uploaded: 2,
      skipped: 0,
    });
    // The registry really asked: the first request was challenged, with the push scope once writing.
    expect(gateway.challenged[0]?.challenge).toMatch(
      new RegExp(
        `^Bearer realm="http://${gateway.address}/token",service="${SERVICE}",scope="repository:osimg/bearer:`,
      ),
    );
    expect(gateway.challenged.map((c) => c.challenge)).toContainEqual(
      expect.stringContaining('scope="repository:osimg/bearer:pull,push"'),
    );
    expect(gateway.tokenRequests.length).toBeGreaterThan(0);
    for (const request of gateway.tokenRequests) {
      expect(request).toMatchObject({ service: SERVICE, user: USER, granted: true });
      for (const scope of request.scopes) expect(scope).toMatch(/^repository:osimg\/bearer:[a-z,]+$/);
    }
    expect(gateway.tokenRequests.flatMap((r) => r.scopes)).toContain("repository:osimg/bearer:pull,push");
    // Tokens are kept, not asked for each request.
    expect(gateway.tokenRequests.length).toBeLessThanOrEqual(2);
    expect(gateway.proxied).toContainEqual({
      method: "PUT",
      uri: "/v2/osimg/bearer/manifests/v1",
      status: 201,
    });
    await expectOnlyGatewayTraffic(gateway, mark);
    expect(gateway.leaks).toEqual([]);
    await expectPushed("osimg/bearer", "v1");
  });

  it("a token that runs out mid-push is fetched again (from access_token) and the request sent again", async () => {
    const gateway = await startGateway({ auth: "bearer", tokenField: "access_token", tokenUses: 1 });
    const mark = registry.accessLog.length;
    const result = await push(gateway, "osimg/expiring", CREDENTIALS);
    expect(result).toMatchObject({ digest: image.manifest.digest, uploaded: 2, skipped: 0 });
    // Every request passed on had a fresh token: one each, the uploads' bodies sent twice.
    expect(gateway.tokenRequests.length).toBe(gateway.proxied.length);
    expect(gateway.challenged.filter((c) => c.challenge.includes('error="invalid_token"')).length).toBe(
      gateway.proxied.length - 1,
    );
    expect(gateway.proxied.filter((e) => e.method === "PUT").map((e) => e.status)).toEqual([201, 201, 201]);
    await expectOnlyGatewayTraffic(gateway, mark);
    await expectPushed("osimg/expiring", "v1");
  });

  it("a wrong password is refused with an error naming the registry and the credentials; nothing is pushed", async () => {
    const gateway = await startGateway({ auth: "bearer" });
    const mark = registry.accessLog.length;
    const error = await failure(
      push(gateway, "osimg/denied", { OSIMG_REGISTRY_USERNAME: USER, OSIMG_REGISTRY_PASSWORD: "wrong" }),
    );
    expect(error.message).toContain(gateway.address);
    expect(error.message).toMatch(/401/);
    expect(error.message).toMatch(/OSIMG_REGISTRY_USERNAME.*OSIMG_REGISTRY_PASSWORD/);
    expect(gateway.tokenRequests).toEqual([
      {
        service: SERVICE,
        scopes: [expect.stringMatching(/^repository:osimg\/denied:/)],
        user: USER,
        granted: false,
      },
    ]);
    await expectNothingPushed(gateway, "osimg/denied", mark);
  });

  it("without credentials the anonymous token is refused and the error says which variables to set", async () => {
    const gateway = await startGateway({ auth: "bearer" });
    const mark = registry.accessLog.length;
    const error = await failure(push(gateway, "osimg/anonymous", {}));
    expect(error.message).toContain(gateway.address);
    expect(error.message).toMatch(/set OSIMG_REGISTRY_USERNAME and OSIMG_REGISTRY_PASSWORD/);
    expect(gateway.tokenRequests).toMatchObject([{ user: undefined, granted: false }]);
    await expectNothingPushed(gateway, "osimg/anonymous", mark);
  });
});

describe("a registry that wants Basic credentials", () => {
  it("without credentials the error says which variables to set; with a wrong password, that they were refused", async () => {
    const gateway = await startGateway({ auth: "basic" });
    const mark = registry.accessLog.length;
    const missing = await failure(push(gateway, "osimg/basic-denied", {}));
    expect(missing.message).toBe(
      `${gateway.address} wants credentials: set OSIMG_REGISTRY_USERNAME and OSIMG_REGISTRY_PASSWORD`,
    );
    const wrong = await failure(
      push(gateway, "osimg/basic-denied", {
        OSIMG_REGISTRY_USERNAME: USER,
        OSIMG_REGISTRY_PASSWORD: "wrong",
      }),
    );
    expect(wrong.message).toContain(gateway.address);
    expect(wrong.message).toMatch(/401/);
    expect(wrong.message).toMatch(/refused.*OSIMG_REGISTRY_USERNAME.*OSIMG_REGISTRY_PASSWORD/);
    expect(gateway.challenged[0]).toMatchObject({
      method: "HEAD",
      status: 401,
      challenge: 'Basic realm="test"',
    });
    await expectNothingPushed(gateway, "osimg/basic-denied", mark);
  });

  it("pushes with the credentials", async () => {
    const gateway = await startGateway({ auth: "basic" });
    const mark = registry.accessLog.length;
    const result = await push(gateway, "osimg/basic", CREDENTIALS);
    expect(result).toMatchObject({ digest: image.manifest.digest, uploaded: 2, skipped: 0 });
    expect(gateway.proxied).toContainEqual({
      method: "PUT",
      uri: "/v2/osimg/basic/manifests/v1",
      status: 201,
    });
    await expectOnlyGatewayTraffic(gateway, mark);
    expect(gateway.leaks).toEqual([]);
    await expectPushed("osimg/basic", "v1");
    // Pushed again: the registry has every blob.
    expect(await push(gateway, "osimg/basic", CREDENTIALS)).toMatchObject({ uploaded: 0, skipped: 2 });
  });
});

describe("deleting through a registry that wants a bearer token", () => {
  it.each([
    ["challenges naming the scope", true, "osimg/delete-scoped"],
    ["challenges naming no scope", false, "osimg/delete-unscoped"],
  ] as const)("%s: the token is asked for a delete scope and the manifest goes", async (_, challengeScope, repository) => {
    const gateway = await startGateway({ auth: "bearer", challengeScope });
    await push(gateway, repository, CREDENTIALS);
    await expectPushed(repository, "v1");
    const asked = gateway.tokenRequests.length;
    const mark = registry.accessLog.length;
    const proxiedBefore = gateway.proxied.length;
    const reference = `${gateway.address}/${repository}:v1`;
    expect(await deleteImage({ reference, tlsVerify: false, env: CREDENTIALS })).toEqual({
      digest: image.manifest.digest,
    });
    const scopes = gateway.tokenRequests.slice(asked).flatMap((r) => r.scopes);
    expect(scopes).toContainEqual(
      expect.stringMatching(new RegExp(`^repository:${repository}:(.+,)?(delete|\\*)(,.+)?$`)),
    );
    expect(gateway.proxied.slice(proxiedBefore)).toContainEqual({
      method: "DELETE",
      uri: `/v2/${repository}/manifests/${image.manifest.digest}`,
      status: 202,
    });
    const passedOn = { ...gateway, proxied: gateway.proxied.slice(proxiedBefore) };
    await expectOnlyGatewayTraffic(passedOn, mark);
    expect((await registryManifest(repository, "v1")).status).toBe(404);
    expect((await registryManifest(repository, image.manifest.digest)).status).toBe(404);
    await expect(deleteImage({ reference, tlsVerify: false, env: CREDENTIALS })).rejects.toThrow(
      /does not exist/,
    );
  });
});
