// OIDC bearer tokens (how Kube-DC's Keycloak users arrive): a JWT verified with jose against the issuer's
// keys — signature (asymmetric algorithms only: `alg: none` and HMAC are refused), issuer, audience,
// expiry — with the keys found through the issuer's discovery document, both cached. Roles and project
// memberships come from configurable claims:
//   roles claim (default realm_access.roles): "osimg-admin" | "osimg-member" | "osimg-viewer" → a role in
//     every project (admin also edits the catalog);
//   groups claim (default groups): each group matching the pattern (default "{project}/{role}", a leading
//     "/" of Keycloak's full group paths ignored) → that role in that project; a pattern without {role}
//     gives `member`.
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { isDns1123Label } from "../util/names.ts";
import { higher, ROLES, type Role } from "./policy-table.ts";
import type { Principal } from "./principal.ts";

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** Dot path of the claim with role names; default realm_access.roles (Keycloak realm roles). */
  rolesClaim?: string;
  /** Dot path of the claim with group names; default groups. */
  groupsClaim?: string;
  /** How a group names a project and a role; default "{project}/{role}". */
  groupPattern?: string;
  /** The prefix of role names in the roles claim; default "osimg-". */
  rolePrefix?: string;
  /** Allowed clock skew, seconds; default 30. */
  clockToleranceSec?: number;
  /** The UI's public client at the issuer (browser login with PKCE); default: the audience. */
  clientId?: string;
}

export interface ClaimMapping {
  rolesClaim: string;
  groupsClaim: string;
  groupPattern: string;
  rolePrefix: string;
}

export const DEFAULT_CLAIMS: ClaimMapping = {
  rolesClaim: "realm_access.roles",
  groupsClaim: "groups",
  groupPattern: "{project}/{role}",
  rolePrefix: "osimg-",
};

/** Only signatures with public keys: a token cannot choose `none` or an HMAC keyed by a public key. */
export const ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
];

/** Reads a dot path ("realm_access.roles") of a claims object. */
export function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The group pattern as a regular expression with named groups `project` and, if present, `role`. */
export function compileGroupPattern(pattern: string): RegExp {
  if (!pattern.includes("{project}"))
    throw new Error(`--oidc-group-pattern "${pattern}" must contain {project} (e.g. "{project}/{role}")`);
  const escaped = pattern
    .split(/(\{project\}|\{role\})/)
    .map((part) =>
      part === "{project}"
        ? "(?<project>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
        : part === "{role}"
          ? `(?<role>${ROLES.join("|")})`
          : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("");
  return new RegExp(`^${escaped}$`);
}

/** Pure: the principal a verified token's claims stand for. */
export function principalFromClaims(payload: JWTPayload, mapping: ClaimMapping = DEFAULT_CLAIMS): Principal {
  let clusterRole: Role | undefined;
  for (const name of strings(claimAt(payload, mapping.rolesClaim))) {
    if (!name.startsWith(mapping.rolePrefix)) continue;
    const role = name.slice(mapping.rolePrefix.length);
    if ((ROLES as readonly string[]).includes(role)) clusterRole = higher(clusterRole, role as Role);
  }
  const pattern = compileGroupPattern(mapping.groupPattern);
  const projects: Record<string, Role> = {};
  for (const group of strings(claimAt(payload, mapping.groupsClaim))) {
    const match = pattern.exec(group.replace(/^\//, ""));
    const project = match?.groups?.project;
    if (!project || !isDns1123Label(project)) continue;
    const role = (match.groups?.role as Role | undefined) ?? "member";
    projects[project] = higher(projects[project], role) as Role;
  }
  const subject = String(payload.sub);
  const username = claimAt(payload, "preferred_username") ?? claimAt(payload, "email");
  return {
    subject: `oidc:${subject}`,
    name: typeof username === "string" ? username : subject,
    via: "oidc",
    ...(clusterRole ? { clusterRole } : {}),
    projects,
    ...(typeof payload.exp === "number" ? { expiresAt: payload.exp } : {}),
  };
}

/** Why a token was refused, in words a client may see (never the token). */
export function refusalReason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "the token has expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return "the token is for another audience";
    if (error.claim === "iss") return "the token is from another issuer";
    if (error.claim === "nbf") return "the token is not valid yet";
    return `the token's "${error.claim}" claim is not valid`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return "the token's signature algorithm is not allowed";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (error instanceof errors.JWKSNoMatchingKey) return "the token is not signed by a key of the issuer";
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid)
    return "the token is malformed";
  return "the token is not valid";
}

export class IssuerUnavailable extends Error {
  override name = "IssuerUnavailable";
}

export type OidcResult = { ok: true; principal: Principal } | { ok: false; reason: string };

/** What the discovery document tells: where the keys are, and where the browser logs in. */
export interface Discovery {
  jwksUri: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
}

const DISCOVERY_TTL_MS = 3600_000;

export class OidcAuthenticator {
  readonly options: Required<Omit<OidcOptions, "clientId">> & { clientId: string };
  #discovered: { doc: Discovery; keys: JWTVerifyGetKey; at: number } | undefined;
  #discovering: Promise<{ doc: Discovery; keys: JWTVerifyGetKey; at: number }> | undefined;

  constructor(options: OidcOptions) {
    this.options = { ...DEFAULT_CLAIMS, clockToleranceSec: 30, clientId: options.audience, ...options };
    compileGroupPattern(this.options.groupPattern); // a bad pattern fails at start, not per request
  }

  /** The discovery document, checked against the configured issuer; cached for an hour. */
  async discovery(): Promise<{ doc: Discovery; keys: JWTVerifyGetKey }> {
    if (this.#discovered && Date.now() - this.#discovered.at < DISCOVERY_TTL_MS) return this.#discovered;
    this.#discovering ??= (async () => {
      const url = `${this.options.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
        if (!response.ok) throw new IssuerUnavailable(`${url} answered ${response.status}`);
        const raw = (await response.json()) as Record<string, unknown>;
        if (raw.issuer !== this.options.issuer)
          throw new IssuerUnavailable(
            `${url} names issuer "${String(raw.issuer)}", not "${this.options.issuer}" (check --oidc-issuer)`,
          );
        if (typeof raw.jwks_uri !== "string") throw new IssuerUnavailable(`${url} has no jwks_uri`);
        const text = (key: string) => (typeof raw[key] === "string" ? (raw[key] as string) : undefined);
        const doc: Discovery = {
          jwksUri: raw.jwks_uri,
          authorizationEndpoint: text("authorization_endpoint"),
          tokenEndpoint: text("token_endpoint"),
        };
        const keys = createRemoteJWKSet(new URL(doc.jwksUri), { timeoutDuration: 10_000 });
        this.#discovered = { doc, keys, at: Date.now() };
        return this.#discovered;
      } catch (error) {
        if (error instanceof IssuerUnavailable) throw error;
        throw new IssuerUnavailable(`cannot read ${url}: ${(error as Error).message}`);
      } finally {
        this.#discovering = undefined;
      }
    })();
    return this.#discovering;
  }

  /**
   * Throws IssuerUnavailable when the issuer cannot be asked (not the caller's fault: a 503). `nonce`:
   * the token must carry it (a login's ID token).
   */
  async authenticate(token: string, nonce?: string): Promise<OidcResult> {
    const { keys } = await this.discovery();
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.options.clockToleranceSec,
        requiredClaims: ["exp", "sub"],
      });
      if (nonce !== undefined && payload.nonce !== nonce)
        return { ok: false, reason: "the token was not issued for this login (nonce)" };
      return { ok: true, principal: principalFromClaims(payload, this.options) };
    } catch (error) {
      const unreachable =
        error instanceof errors.JWKSTimeout ||
        (error as { code?: string }).code === "ERR_JOSE_GENERIC" || // the key set's answer was not 200 JSON
        (error instanceof TypeError && /fetch/i.test(error.message));
      if (unreachable)
        throw new IssuerUnavailable(`the issuer's keys cannot be read: ${(error as Error).message}`);
      return { ok: false, reason: refusalReason(error) };
    }
  }

  /**
   * The end of a browser login (authorization code with PKCE): the code is exchanged at the issuer's
   * token endpoint as the public client, and the ID token checked like any bearer token, plus its nonce.
   */
  async exchangeCode(request: {
    code: string;
    codeVerifier: string;
    redirectUri: string;
    nonce: string;
  }): Promise<{ ok: true; token: string; principal: Principal } | { ok: false; reason: string }> {
    const { doc } = await this.discovery();
    if (!doc.tokenEndpoint) return { ok: false, reason: "the issuer names no token endpoint" };
    let answer: { id_token?: unknown; error?: unknown; error_description?: unknown };
    try {
      const response = await fetch(doc.tokenEndpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code: request.code,
          redirect_uri: request.redirectUri,
          client_id: this.options.clientId,
          code_verifier: request.codeVerifier,
        }),
        signal: AbortSignal.timeout(10_000),
      });
      answer = (await response.json()) as typeof answer;
    } catch (error) {
      throw new IssuerUnavailable(`the issuer's token endpoint did not answer: ${(error as Error).message}`);
    }
    if (typeof answer.id_token !== "string")
      return {
        ok: false,
        reason: `the issuer refused the login: ${String(answer.error_description ?? answer.error ?? "no ID token")}`,
      };
    const checked = await this.authenticate(answer.id_token, request.nonce);
    return checked.ok ? { ok: true, token: answer.id_token, principal: checked.principal } : checked;
  }
}
