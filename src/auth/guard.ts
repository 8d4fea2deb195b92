// The authorizer in front of every route (installed by src/server/policy.ts): who is calling (a bearer
// token checked by the configured authenticator, verified tokens cached briefly by their hash), what the
// policy table allows them, and the rate limits (failed logins per client address, mutating calls per
// principal). The modes:
//   none        everything allowed, as an anonymous admin (loopback only; a loud warning);
//   token       static tokens from the token file (the embedded default);
//   oidc        JWTs of an OIDC issuer (Keycloak in Kube-DC), roles and projects from claims;
//   kubernetes  tokens authenticated by the cluster (TokenReview); Kubernetes RBAC decides: actions whose
//               Kubernetes calls carry the user's token are delegated, the others asked as
//               SubjectAccessReviews.
import { createHash } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ApiError } from "../server/errors.ts";
import type { AccessRequest, Action, Authorizer } from "../server/policy.ts";
import { credentialsOf } from "./credentials.ts";
import { type KubernetesAuthenticator, KubernetesUnavailable } from "./kubernetes.ts";
import { IssuerUnavailable, type OidcAuthenticator } from "./oidc.ts";
import { type Decision, decide, ruleFor, type Scope } from "./policy-table.ts";
import { type AuthMode, type Principal, UNAUTHENTICATED_ADMIN } from "./principal.ts";
import { type BucketOptions, TokenBuckets } from "./rate-limit.ts";
import type { TokenAuthenticator } from "./tokens.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Who is calling, once the authorizer ran (undefined: anonymous, or a public route). */
    principal?: Principal;
  }
}

export type Authenticate = (
  token: string,
) => Promise<{ ok: true; principal: Principal } | { ok: false; reason: string }>;

export interface RateLimits {
  /** Per principal (or client address) on POST/PUT/PATCH/DELETE; false: none. */
  mutating: BucketOptions | false;
  /** Per client address: requests with invalid credentials; false: none. */
  failedLogins: BucketOptions | false;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  mutating: { capacity: 120, perSecond: 2 },
  failedLogins: { capacity: 20, perSecond: 0.2 },
};

export interface GuardOptions {
  mode: AuthMode;
  /** Checks a presented token (not for mode none). */
  authenticate?: Authenticate;
  /** For the token mode: bumped when the token file changes, so cached verifications are redone. */
  generation?: () => number;
  /** The kubernetes mode's RBAC questions. */
  kubernetes?: Pick<KubernetesAuthenticator, "allowed">;
  /** Kubernetes mode: the provider calls Kubernetes with the user's token (pass-through). */
  delegate?: boolean;
  rateLimits?: Partial<RateLimits>;
  /** How long a verified token is trusted without checking again (bounded by its expiry); ms. */
  cacheTtlMs?: number;
  /** What GET /api/v1/auth/config tells the login page. */
  describe?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** The OIDC mode: browser logins (authorization code with PKCE) are completed here. */
  oidc?: Pick<OidcAuthenticator, "exchangeCode">;
  close?: () => void;
}

const MAX_CACHED = 10_000;
/** The UI's route the issuer sends the browser back to. */
export const OIDC_CALLBACK_PATH = "/auth/callback";
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function isMutating(method: string): boolean {
  return MUTATING.has(method);
}

function unauthenticated(message: string, detail?: string): ApiError {
  const error = new ApiError(401, "unauthenticated", message, {
    hint: "send Authorization: Bearer <token> (osimg login, or OSIMG_TOKEN); the UI asks for a token",
  });
  error.headers["www-authenticate"] = detail
    ? `Bearer realm="osimg", error="invalid_token", error_description="${detail.replace(/"/g, "'")}"`
    : 'Bearer realm="osimg"';
  return error;
}

function tooMany(code: string, message: string, retryAfterSec: number): ApiError {
  const error = new ApiError(429, code, message, { hint: `try again in ${retryAfterSec} s` });
  error.headers["retry-after"] = String(retryAfterSec);
  return error;
}

export class Guard {
  readonly mode: AuthMode;
  readonly #options: GuardOptions;
  readonly #cache = new Map<string, { principal: Principal; until: number; generation: number }>();
  readonly #failed: TokenBuckets | undefined;
  readonly #mutating: TokenBuckets | undefined;

  constructor(options: GuardOptions) {
    if (options.mode !== "none" && !options.authenticate)
      throw new Error(`auth mode ${options.mode} needs an authenticator`);
    this.mode = options.mode;
    this.#options = options;
    const limits = { ...DEFAULT_RATE_LIMITS, ...options.rateLimits };
    this.#failed = limits.failedLogins ? new TokenBuckets(limits.failedLogins) : undefined;
    this.#mutating = limits.mutating ? new TokenBuckets(limits.mutating) : undefined;
  }

  static none(options: Omit<GuardOptions, "mode" | "authenticate"> = {}): Guard {
    return new Guard({ ...options, mode: "none" });
  }

  static forTokens(tokens: TokenAuthenticator, options: Partial<GuardOptions> = {}): Guard {
    return new Guard({
      mode: "token",
      authenticate: async (token) => {
        const principal = await tokens.authenticate(token);
        return principal ? { ok: true, principal } : { ok: false, reason: "the token is not valid" };
      },
      generation: () => tokens.generation,
      close: () => tokens.stop(),
      ...options,
    });
  }

  static forOidc(oidc: OidcAuthenticator, options: Partial<GuardOptions> = {}): Guard {
    return new Guard({
      mode: "oidc",
      authenticate: (token) => oidc.authenticate(token),
      cacheTtlMs: 60_000,
      oidc,
      describe: async () => ({
        issuer: oidc.options.issuer,
        audience: oidc.options.audience,
        clientId: oidc.options.clientId,
        // Where the login page sends the browser; absent while the issuer cannot be reached (the page
        // then offers pasting a token, without waiting long for the issuer).
        authorizationEndpoint: (
          await Promise.race([
            oidc.discovery().catch(() => undefined),
            new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000).unref()),
          ])
        )?.doc.authorizationEndpoint,
      }),
      ...options,
    });
  }

  static forKubernetes(
    kube: KubernetesAuthenticator,
    options: Partial<GuardOptions> & { delegate: boolean },
  ): Guard {
    return new Guard({
      mode: "kubernetes",
      authenticate: (token) => kube.authenticate(token),
      kubernetes: kube,
      cacheTtlMs: 10_000,
      describe: () => ({ delegate: options.delegate }),
      ...options,
    });
  }

  /** For GET /api/v1/auth/config: what the login page needs to know. */
  async describe(): Promise<{ mode: AuthMode } & Record<string, unknown>> {
    return { mode: this.mode, ...(await this.#options.describe?.()) };
  }

  /**
   * Completes a browser login of the OIDC mode: the code and PKCE verifier the issuer's redirect gave the
   * UI are exchanged for an ID token, which is checked and answered. Counts as a login attempt.
   */
  async completeLogin(
    request: FastifyRequest,
    login: { code: string; codeVerifier: string; redirectUri: string; nonce: string },
  ): Promise<{ token: string; principal: Principal }> {
    const oidc = this.#options.oidc;
    if (!oidc)
      throw new ApiError(409, "not_oidc", "this server does not log in through OIDC", {
        hint: "start it with --auth oidc --oidc-issuer URL --oidc-audience CLIENT_ID",
      });
    // The callback must be this server's own: a code is never sent on to another site.
    let callback: URL;
    try {
      callback = new URL(login.redirectUri);
    } catch {
      throw new ApiError(400, "invalid_request", "redirectUri is not a URL", { field: "redirectUri" });
    }
    if (callback.host !== request.headers.host || callback.pathname !== OIDC_CALLBACK_PATH)
      throw new ApiError(400, "invalid_request", `redirectUri must be this server's ${OIDC_CALLBACK_PATH}`, {
        field: "redirectUri",
      });
    const key = this.#refuseBlockedAddress(request);
    let result: Awaited<ReturnType<OidcAuthenticator["exchangeCode"]>>;
    try {
      result = await oidc.exchangeCode(login);
    } catch (error) {
      if (error instanceof IssuerUnavailable)
        throw new ApiError(503, "auth_unavailable", `the login cannot be completed now: ${error.message}`);
      throw error;
    }
    if (!result.ok) {
      this.#failed?.take(key);
      throw unauthenticated(`login refused: ${result.reason}`, result.reason);
    }
    return result;
  }

  close(): void {
    this.#options.close?.();
  }

  /** The authorizer for installAuthorization. */
  readonly authorize: Authorizer = async (access: AccessRequest) => {
    const { request } = access;
    // Open to anyone (health, the UI's files, how to log in): credentials are not even looked at.
    if (ruleFor(access.action, access.scope)?.who === "anyone") return true;
    const principal = await this.identify(request);
    request.principal = principal;
    const decision = await this.decide(principal, access.action, access.scope, access.namespace);
    if (!decision.allowed) {
      if (decision.reason === "unauthenticated") throw unauthenticated(`${access.action} needs credentials`);
      if (decision.reason === "no_rule")
        throw new ApiError(
          500,
          "no_policy",
          `the policy table has no rule for ${access.action} in scope ${access.scope}`,
        );
      const where = access.namespace ? ` in project ${access.namespace}` : "";
      throw new ApiError(
        403,
        "forbidden",
        `${principal?.name ?? "anonymous"} may not ${access.action}${where}`,
        {
          ...(decision.required
            ? {
                hint:
                  decision.required === "admin"
                    ? "this needs an admin"
                    : `this needs the role ${decision.required} (or higher)${where}`,
              }
            : {}),
        },
      );
    }
    // Without authentication (loopback only) everyone is the same "principal": no per-caller limit.
    if (this.#mutating && this.mode !== "none" && isMutating(request.method)) {
      const taken = this.#mutating.take(principal?.subject ?? `ip:${request.ip}`);
      if (!taken.ok) throw tooMany("rate_limited", "too many changes in a short time", taken.retryAfterSec);
    }
    return true;
  };

  /** The failed-login key of the request's address; 429 while that address is blocked. */
  #refuseBlockedAddress(request: FastifyRequest): string {
    const key = `ip:${request.ip}`;
    const blocked = this.#failed?.check(key);
    if (blocked && !blocked.ok)
      throw tooMany(
        "too_many_failed_logins",
        "too many invalid credentials from this address",
        blocked.retryAfterSec,
      );
    return key;
  }

  /** Who sent the request: the principal of its credentials, undefined without any; throws 401/429/503. */
  async identify(request: FastifyRequest): Promise<Principal | undefined> {
    if (this.mode === "none") return UNAUTHENTICATED_ADMIN;
    const credentials = credentialsOf(request.headers);
    if (credentials.kind === "none") return undefined;
    const key = this.#refuseBlockedAddress(request);
    if (credentials.kind === "malformed") {
      this.#failed?.take(key);
      throw unauthenticated(credentials.reason, credentials.reason);
    }
    const result = await this.#verified(credentials.token);
    if (!result.ok) {
      this.#failed?.take(key);
      throw unauthenticated(`invalid credentials: ${result.reason}`, result.reason);
    }
    return result.principal;
  }

  async #verified(
    token: string,
  ): Promise<{ ok: true; principal: Principal } | { ok: false; reason: string }> {
    const hash = createHash("sha256").update(token).digest("base64url");
    const now = Date.now();
    const generation = this.#options.generation?.() ?? 0;
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now && cached.generation === generation)
      return { ok: true, principal: cached.principal };
    if (cached) this.#cache.delete(hash);
    let result: Awaited<ReturnType<Authenticate>>;
    try {
      result = await (this.#options.authenticate as Authenticate)(token);
    } catch (error) {
      if (error instanceof IssuerUnavailable || error instanceof KubernetesUnavailable)
        throw new ApiError(503, "auth_unavailable", `credentials cannot be checked now: ${error.message}`, {
          hint: "the identity provider did not answer; try again shortly",
        });
      throw error;
    }
    if (!result.ok) return result;
    const expiresAt = result.principal.expiresAt;
    if (expiresAt !== undefined && expiresAt * 1000 <= now)
      return { ok: false, reason: "the token has expired" };
    const until = Math.min(
      now + (this.#options.cacheTtlMs ?? 30_000),
      expiresAt ? expiresAt * 1000 : Infinity,
    );
    if (this.#cache.size >= MAX_CACHED) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(hash, { principal: result.principal, until, generation });
    return result;
  }

  /** The decision for a principal, with Kubernetes RBAC asked in the kubernetes mode. */
  async decide(
    principal: Principal | undefined,
    action: Action,
    scope: Scope,
    namespace: string | undefined,
  ): Promise<Decision> {
    const rule = ruleFor(action, scope);
    if (this.mode !== "kubernetes" || !rule || rule.who === "anyone" || rule.who === "authenticated")
      return decide(principal, action, scope, namespace);
    if (!principal) return { allowed: false, reason: "unauthenticated", required: rule.who };
    const check = rule.kubernetes;
    // No RBAC question is defined for it: only cluster admins, which the kubernetes mode has none of.
    if (!check) return { allowed: false, reason: "forbidden", required: rule.who };
    if (check.delegate && this.#options.delegate) return { allowed: true };
    try {
      return (await this.#options.kubernetes?.allowed(principal, check, namespace))
        ? { allowed: true }
        : { allowed: false, reason: "forbidden", required: rule.who };
    } catch (error) {
      if (error instanceof KubernetesUnavailable)
        throw new ApiError(503, "auth_unavailable", `access cannot be checked now: ${error.message}`);
      throw error;
    }
  }

  /**
   * Whether the caller of a request may do `action` (e.g. "catalog.read" in a project, to show that
   * project's overlay entries): for routes that decide more than their own policy.
   */
  async may(request: FastifyRequest, action: Action, scope: Scope, namespace?: string): Promise<boolean> {
    return (await this.decide(request.principal, action, scope, namespace)).allowed;
  }
}
