// Test support for authentication: a token file with one token per role, a local OIDC issuer (keys
// generated at test time, discovery + JWKS on 127.0.0.1), a stand-in for the Kubernetes review APIs
// (TokenReview, SubjectAccessReview), and WebSocket handshakes that report the HTTP status.
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import type { Principal } from "../../src/auth/principal.ts";
import { principalOf, TokenFile, tokenFilePath } from "../../src/auth/tokens.ts";
import type { ServeOptions } from "../../src/server/serve.ts";
import { catalogYaml, UBUNTU } from "./catalogs.ts";
import { startTestServer, type TestServer, tempDir } from "./server.ts";

export const OWN = "demo";
export const OTHER = "other";

export interface RoleTokens {
  admin: string;
  member: string;
  viewer: string;
  principals: Record<"admin" | "member" | "viewer", Principal>;
  file: TokenFile;
}

/** The data directory's token file with an admin, a member of `demo` and a viewer of `demo`. */
export async function roleTokens(dataDir: string): Promise<RoleTokens> {
  const file = new TokenFile(tokenFilePath(dataDir));
  const admin = await file.create({ name: "admin-test", role: "admin", projects: [] });
  const member = await file.create({ name: "member-demo", role: "member", projects: [OWN] });
  const viewer = await file.create({ name: "viewer-demo", role: "viewer", projects: [OWN] });
  return {
    admin: admin.token,
    member: member.token,
    viewer: viewer.token,
    principals: {
      admin: principalOf(admin.info),
      member: principalOf(member.info),
      viewer: principalOf(viewer.info),
    },
    file,
  };
}

/**
 * A catalog entry whose image is never fetched: the server refuses loopback addresses, so a VM's
 * provisioning fails at once and no guest runs (quotas count every VM, whatever its phase).
 */
export const LOCAL_ENTRY = {
  ...UBUNTU,
  OS_NAME: "Ubuntu 24.04",
  OS_IMAGE_URL: "http://127.0.0.1:9/never.qcow2",
  MIN_STORAGE: "2G",
};

export interface TokenServer {
  server: TestServer;
  tokens: RoleTokens;
  dataDir: string;
}

/**
 * A real server with --auth token, the role tokens, and a catalog of LOCAL_ENTRY; `files` are written
 * into the data directory before the start (quotas.yaml).
 */
export async function startTokenServer(
  options: {
    prefix?: string;
    files?: Record<string, string>;
    tenancy?: ServeOptions["tenancy"];
    logger?: ServeOptions["logger"];
  } = {},
): Promise<TokenServer> {
  const dataDir = tempDir(options.prefix ?? "osimg-auth-");
  const tokens = await roleTokens(dataDir);
  const catalogPath = join(dataDir, "catalog.yaml");
  writeFileSync(catalogPath, catalogYaml([LOCAL_ENTRY]));
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dataDir, name), text);
  const server = await startTestServer({
    catalogPath,
    dataDir,
    auth: { mode: "token" },
    tenancy: options.tenancy,
    logger: options.logger,
  });
  return { server, tokens, dataDir };
}

export const bearer = (token: string | undefined): Record<string, string> =>
  token ? { authorization: `Bearer ${token}` } : {};

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface TestIssuer {
  issuer: string;
  audience: string;
  /** A token signed by the issuer's key; claims override the defaults (sub, aud, iss, exp in 10 min). */
  sign(claims?: JWTPayload, options?: { expiresIn?: number | string; kid?: string }): Promise<string>;
  /** Signed by a key the issuer does not publish (optionally claiming the issuer's kid). */
  signWithOtherKey(claims?: JWTPayload, kid?: string): Promise<string>;
  /** Requests for the discovery document, the key set and the token endpoint. */
  hits: { discovery: number; jwks: number; token: number };
  /** The claims of the ID token a browser login gets (the issuer's /authorize approves at once). */
  loginAs: JWTPayload;
  stop(): Promise<void>;
}

export async function startIssuer(audience = "osimg"): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const other = await generateKeyPair("RS256");
  const kid = randomBytes(6).toString("hex");
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  const hits = { discovery: 0, jwks: 0, token: 0 };
  const codes = new Map<
    string,
    { clientId: string; redirectUri: string; challenge: string; nonce: string }
  >();
  let issuer = "";
  const build = (claims: JWTPayload, expiresIn: number | string) =>
    new SignJWT({ ...claims })
      .setIssuedAt()
      .setSubject(String(claims.sub ?? "user-1"))
      .setIssuer(String(claims.iss ?? issuer))
      .setAudience((claims.aud as string | string[] | undefined) ?? audience)
      .setExpirationTime(claims.exp ?? expiresIn);
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const result: TestIssuer = {
    issuer,
    audience,
    hits,
    loginAs: { sub: "browser-user", preferred_username: "bob", groups: ["/demo/member"] },
    sign: (claims = {}, options = {}) =>
      build(claims, options.expiresIn ?? "10m")
        .setProtectedHeader({ alg: "RS256", kid: options.kid ?? kid })
        .sign(privateKey),
    signWithOtherKey: (claims = {}, otherKid = "not-published") =>
      build(claims, "10m").setProtectedHeader({ alg: "RS256", kid: otherKid }).sign(other.privateKey),
    stop: () => close(server),
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", issuer);
    if (url.pathname === "/.well-known/openid-configuration") {
      hits.discovery++;
      json(res, 200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        code_challenge_methods_supported: ["S256"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    } else if (url.pathname === "/jwks") {
      hits.jwks++;
      json(res, 200, { keys: [jwk] });
    } else if (url.pathname === "/authorize") {
      // The user is taken to be logged in at the issuer already: straight back with a code.
      const q = url.searchParams;
      const back = new URL(q.get("redirect_uri") ?? "");
      back.searchParams.set("state", q.get("state") ?? "");
      if (q.get("response_type") !== "code" || q.get("code_challenge_method") !== "S256")
        back.searchParams.set("error", "invalid_request");
      else {
        const code = randomBytes(16).toString("hex");
        codes.set(code, {
          clientId: q.get("client_id") ?? "",
          redirectUri: q.get("redirect_uri") ?? "",
          challenge: q.get("code_challenge") ?? "",
          nonce: q.get("nonce") ?? "",
        });
        back.searchParams.set("code", code);
      }
      res.writeHead(302, { location: back.toString() });
      res.end();
    } else if (url.pathname === "/token" && req.method === "POST") {
      hits.token++;
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      const grant = codes.get(form.get("code") ?? "");
      codes.delete(form.get("code") ?? "");
      const verifier = form.get("code_verifier") ?? "";
      const challenge = createHash("sha256").update(verifier).digest("base64url");
      if (
        form.get("grant_type") !== "authorization_code" ||
        !grant ||
        grant.redirectUri !== form.get("redirect_uri") ||
        grant.clientId !== form.get("client_id") ||
        grant.challenge !== challenge
      )
        return json(res, 400, {
          error: "invalid_grant",
          error_description: "code, client or PKCE verifier mismatch",
        });
      const idToken = await build({ ...result.loginAs, aud: grant.clientId, nonce: grant.nonce }, "10m")
        .setProtectedHeader({ alg: "RS256", kid })
        .sign(privateKey);
      json(res, 200, { id_token: idToken, access_token: "opaque", token_type: "Bearer", expires_in: 600 });
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  issuer = await listen(server);
  result.issuer = issuer;
  return result;
}

export interface FakeReviews {
  kubeConfig: KubeConfig;
  /** token → user name (and groups) the TokenReview answers. */
  users: Map<string, { username: string; groups?: string[] }>;
  /** "user verb group/resource[/sub] namespace" strings RBAC allows. */
  allow: Set<string>;
  reviews: { token: number; access: { user: string; verb: string; resource: string; namespace?: string }[] };
  stop(): Promise<void>;
}

export function accessKey(
  user: string,
  verb: string,
  group: string,
  resource: string,
  namespace = "",
  sub = "",
): string {
  return `${user} ${verb} ${group}/${resource}${sub ? `/${sub}` : ""} ${namespace}`;
}

interface Review {
  spec: {
    token?: string;
    user?: string;
    resourceAttributes?: {
      verb: string;
      group: string;
      resource: string;
      subresource?: string;
      namespace?: string;
    };
  };
}

async function body(req: IncomingMessage): Promise<Review> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Review;
}

/** The two Kubernetes review APIs, answering from the maps above, behind a kubeconfig. */
export async function startFakeReviews(): Promise<FakeReviews> {
  const users = new Map<string, { username: string; groups?: string[] }>();
  const allow = new Set<string>();
  const reviews: FakeReviews["reviews"] = { token: 0, access: [] };
  const server = createServer(async (req, res) => {
    res.setHeader("content-type", "application/json");
    const review = await body(req);
    if (req.method === "POST" && req.url?.startsWith("/apis/authentication.k8s.io/v1/tokenreviews")) {
      reviews.token++;
      const user = users.get(review.spec?.token ?? "");
      res.end(
        JSON.stringify({
          ...review,
          status: user
            ? { authenticated: true, user: { username: user.username, groups: user.groups ?? [] } }
            : { authenticated: false, error: "invalid bearer token" },
        }),
      );
      return;
    }
    if (req.method === "POST" && req.url?.startsWith("/apis/authorization.k8s.io/v1/subjectaccessreviews")) {
      const a = review.spec.resourceAttributes;
      const user = review.spec.user ?? "";
      if (!a) throw new Error("a SubjectAccessReview without resourceAttributes");
      reviews.access.push({ user, verb: a.verb, resource: a.resource, namespace: a.namespace });
      const allowed = allow.has(accessKey(user, a.verb, a.group, a.resource, a.namespace, a.subresource));
      res.end(JSON.stringify({ ...review, status: { allowed } }));
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ kind: "Status", code: 404, message: `no ${req.url}` }));
  });
  const url = await listen(server);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "osimg", token: "service-account-token" }],
    contexts: [{ name: "fake", cluster: "fake", user: "osimg" }],
    currentContext: "fake",
  });
  return { kubeConfig, users, allow, reviews, stop: () => close(server) };
}

/**
 * A WebSocket handshake by hand: the HTTP status of the answer (101 when upgraded), the selected
 * subprotocol, and the body of a refusal.
 */
export function upgrade(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; protocol?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      // A connection of its own, like a WebSocket client's: an upgrade refused with an HTTP answer
      // leaves its connection unusable for further requests.
      agent: false,
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": randomBytes(16).toString("base64"),
        ...headers,
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({
        status: res.statusCode ?? 101,
        protocol: res.headers["sec-websocket-protocol"] as string | undefined,
        body: "",
      });
    });
    req.on("response", async (res) => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
    });
    req.on("error", reject);
    req.end();
  });
}
