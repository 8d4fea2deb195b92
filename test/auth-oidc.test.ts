// OIDC bearer tokens against a real test issuer (keys generated now, discovery and JWKS served on
// 127.0.0.1): good tokens give the roles and projects of their claims; expired, wrong-audience,
// wrong-issuer, wrong-key, `alg: none` and HMAC tokens are refused with 401; verified tokens are cached
// only until they expire; an issuer that cannot be reached is a 503, not a refusal.
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileGroupPattern, principalFromClaims } from "../src/auth/oidc.ts";
import { bearer, startIssuer, type TestIssuer } from "./support/auth.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { eventually, startTestServer, type TestServer, tempDir } from "./support/server.ts";

let issuer: TestIssuer;
let server: TestServer;

const get = (path: string, token?: string) => fetch(`${server.url}${path}`, { headers: bearer(token) });

beforeAll(async () => {
  issuer = await startIssuer("osimg-ui");
  const dataDir = tempDir("osimg-oidc-");
  const catalogPath = join(dataDir, "catalog.yaml");
  writeFileSync(catalogPath, catalogYaml([UBUNTU]));
  server = await startTestServer({
    catalogPath,
    dataDir,
    auth: { mode: "oidc", issuer: issuer.issuer, audience: issuer.audience },
    // This file sends many bad tokens on purpose; the failed-login limit has its own test.
    tenancy: { rateLimits: { failedLogins: false } },
  });
});

afterAll(async () => {
  await server?.stop();
  await issuer?.stop();
});

describe("OIDC tokens", () => {
  it("accepts the issuer's token, with projects from groups and roles from realm roles", async () => {
    const token = await issuer.sign({
      sub: "alice-id",
      preferred_username: "alice",
      groups: ["/demo/member", "/audit/viewer", "/not a project/member", "unrelated"],
      realm_access: { roles: ["offline_access"] },
    });
    const me = await get("/api/v1/whoami", token);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({
      subject: "oidc:alice-id",
      name: "alice",
      via: "oidc",
      projects: { demo: "member", audit: "viewer" },
    });
    expect((await get("/api/v1/namespaces/demo/vms", token)).status).toBe(200);
    expect((await get("/api/v1/namespaces/audit/vms", token)).status).toBe(200);
    expect((await get("/api/v1/namespaces/other/vms", token)).status).toBe(403);
    expect((await get("/api/v1/catalog", token)).status).toBe(200);
    // A member edits no catalog.
    const put = await fetch(`${server.url}/api/v1/catalog/source`, {
      method: "PUT",
      headers: { ...bearer(token), "content-type": "application/json" },
      body: JSON.stringify({ text: "" }),
    });
    expect(put.status).toBe(403);
  });

  it("makes an admin of the osimg-admin realm role: every project and the catalog", async () => {
    const token = await issuer.sign({ sub: "root", realm_access: { roles: ["osimg-admin"] } });
    expect((await get("/api/v1/namespaces/anything/vms", token)).status).toBe(200);
    const put = await fetch(`${server.url}/api/v1/catalog/source`, {
      method: "PUT",
      headers: { ...bearer(token), "content-type": "application/json" },
      body: JSON.stringify({ text: "" }),
    });
    expect(put.status).toBe(428); // past authorization: If-Match is missing
  });

  it("refuses expired, wrong-audience, wrong-issuer, wrong-key, alg none and HMAC tokens", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string, RegExp][] = [
      ["expired", await issuer.sign({ sub: "a", exp: now - 120 }), /expired/],
      ["wrong audience", await issuer.sign({ sub: "a", aud: "another-client" }), /audience/],
      ["wrong issuer", await issuer.sign({ sub: "a", iss: "https://evil.example" }), /issuer/],
      [
        "a key the issuer does not publish",
        await issuer.signWithOtherKey({ sub: "a" }),
        /not signed by a key/,
      ],
      [
        "another key claiming the issuer's kid",
        await issuer.signWithOtherKey(
          { sub: "a" },
          JSON.parse(atob((await issuer.sign()).split(".")[0] as string)).kid,
        ),
        /signature/,
      ],
      [
        "alg none",
        new UnsecuredJWT({ sub: "a", groups: ["demo/member"] })
          .setIssuer(issuer.issuer)
          .setAudience(issuer.audience)
          .setExpirationTime("10m")
          .encode(),
        /not allowed|malformed|not valid/,
      ],
      [
        "HMAC keyed by a guess",
        await new SignJWT({ sub: "a" })
          .setProtectedHeader({ alg: "HS256" })
          .setIssuer(issuer.issuer)
          .setAudience(issuer.audience)
          .setExpirationTime("10m")
          .sign(new TextEncoder().encode("x".repeat(32))),
        /algorithm/,
      ],
      ["not a JWT", "garbage.token.here", /malformed|not valid/],
    ];
    for (const [what, token, reason] of cases) {
      const response = await get("/api/v1/namespaces/demo/vms", token);
      expect(response.status, what).toBe(401);
      const body = (await response.json()) as { error: string; message: string };
      expect(body.error, what).toBe("unauthenticated");
      expect(body.message, what).toMatch(reason);
      expect(response.headers.get("www-authenticate"), what).toMatch(
        /^Bearer realm="osimg", error="invalid_token"/,
      );
    }
  });

  it("trusts a verified token only until it expires, and reads discovery and keys once", async () => {
    const token = await issuer.sign({ sub: "short", groups: ["demo/viewer"] }, { expiresIn: "3s" });
    expect((await get("/api/v1/namespaces/demo/vms", token)).status).toBe(200);
    const jwksBefore = issuer.hits.jwks;
    for (let i = 0; i < 5; i++) expect((await get("/api/v1/namespaces/demo/vms", token)).status).toBe(200);
    expect(issuer.hits.jwks).toBe(jwksBefore);
    expect(issuer.hits.discovery).toBe(1);
    await eventually(
      async () => (await get("/api/v1/namespaces/demo/vms", token)).status === 401,
      10_000,
      "expiry",
    );
  });

  it("tells the login page how to log in", async () => {
    const response = await get("/api/v1/auth/config");
    expect(await response.json()).toEqual({
      mode: "oidc",
      issuer: issuer.issuer,
      audience: "osimg-ui",
      clientId: "osimg-ui",
      authorizationEndpoint: `${issuer.issuer}/authorize`,
    });
  });
});

describe("a browser login (authorization code with PKCE)", () => {
  /** What the UI does: a verifier and its challenge, a nonce, then the issuer's redirect followed by hand. */
  async function authorize(redirectUri: string, nonce: string) {
    const verifier = randomBytes(32).toString("base64url");
    const config = (await (await get("/api/v1/auth/config")).json()) as {
      authorizationEndpoint: string;
      clientId: string;
    };
    const url = new URL(config.authorizationEndpoint);
    for (const [k, v] of Object.entries({
      response_type: "code",
      client_id: config.clientId,
      redirect_uri: redirectUri,
      scope: "openid",
      state: "s1",
      nonce,
      code_challenge: createHash("sha256").update(verifier).digest("base64url"),
      code_challenge_method: "S256",
    }))
      url.searchParams.set(k, v);
    const back = new URL((await fetch(url, { redirect: "manual" })).headers.get("location") ?? "");
    return { code: back.searchParams.get("code") ?? "", verifier };
  }
  const login = (body: Record<string, string>) =>
    fetch(`${server.url}/api/v1/auth/oidc/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("exchanges the code for an ID token the server accepts, with the user's projects", async () => {
    const redirectUri = `${server.url}/auth/callback`;
    const nonce = randomBytes(16).toString("hex");
    const { code, verifier } = await authorize(redirectUri, nonce);
    const response = await login({ code, codeVerifier: verifier, redirectUri, nonce });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const { token, principal } = (await response.json()) as { token: string; principal: { name: string } };
    expect(principal).toMatchObject({ name: "bob", projects: { demo: "member" } });
    expect((await get("/api/v1/namespaces/demo/vms", token)).status).toBe(200);
    // A code is good once.
    const again = await login({ code, codeVerifier: verifier, redirectUri, nonce });
    expect(again.status).toBe(401);
  });

  it("refuses a wrong verifier, a wrong nonce, and a callback on another site", async () => {
    const redirectUri = `${server.url}/auth/callback`;
    const nonce = randomBytes(16).toString("hex");
    const first = await authorize(redirectUri, nonce);
    const wrongVerifier = await login({
      code: first.code,
      codeVerifier: randomBytes(32).toString("base64url"),
      redirectUri,
      nonce,
    });
    expect(wrongVerifier.status).toBe(401);
    expect(((await wrongVerifier.json()) as { message: string }).message).toMatch(/PKCE verifier mismatch/);
    const second = await authorize(redirectUri, nonce);
    const wrongNonce = await login({
      code: second.code,
      codeVerifier: second.verifier,
      redirectUri,
      nonce: randomBytes(16).toString("hex"),
    });
    expect(wrongNonce.status).toBe(401);
    expect(((await wrongNonce.json()) as { message: string }).message).toMatch(/nonce/);
    const elsewhere = await login({
      code: "x",
      codeVerifier: randomBytes(32).toString("base64url"),
      redirectUri: "https://evil.example/auth/callback",
      nonce,
    });
    expect(elsewhere.status).toBe(400);
  });
});

describe("an unreachable issuer", () => {
  it("answers 503 (credentials cannot be checked), not 401", async () => {
    const other = await startIssuer("x");
    const token = await other.sign({ sub: "a" });
    await other.stop();
    const dataDir = tempDir("osimg-oidc-down-");
    const down = await startTestServer({
      dataDir,
      auth: { mode: "oidc", issuer: other.issuer, audience: "x" },
    });
    try {
      const response = await fetch(`${down.url}/api/v1/whoami`, { headers: bearer(token) });
      expect(response.status).toBe(503);
      expect(((await response.json()) as { error: string }).error).toBe("auth_unavailable");
    } finally {
      await down.stop();
    }
  });
});

describe("claims to roles and projects", () => {
  it("maps configurable claims and group patterns", () => {
    const p = principalFromClaims(
      {
        sub: "u",
        roles: ["platform-viewer", "platform-member"],
        teams: ["proj:a:viewer", "proj:b", "proj:C:member"],
      },
      {
        rolesClaim: "roles",
        groupsClaim: "teams",
        groupPattern: "proj:{project}:{role}",
        rolePrefix: "platform-",
      },
    );
    expect(p.clusterRole).toBe("member");
    expect(p.projects).toEqual({ a: "viewer" });
    const noRole = principalFromClaims(
      { sub: "u", groups: ["team-a", "team-b"] },
      { rolesClaim: "x", groupsClaim: "groups", groupPattern: "team-{project}", rolePrefix: "" },
    );
    expect(noRole.projects).toEqual({ a: "member", b: "member" });
    expect(() => compileGroupPattern("{role}")).toThrow(/\{project\}/);
  });
});
