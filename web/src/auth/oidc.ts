// The OIDC browser login (authorization code with PKCE, RFC 7636): the page goes to the issuer with a
// challenge, a state and a nonce; the issuer sends it back to /auth/callback with a code; the server
// exchanges the code (with the verifier kept in this tab) for an ID token, checks it and answers it; the
// token becomes the session's. Nothing secret leaves the tab but the code and the verifier, to our server.
import { requestJson } from "../api/http.ts";
import type { AuthConfig, WhoAmI } from "./api.ts";

export const CALLBACK_PATH = "/auth/callback";
const PENDING_KEY = "osimg.oidc.pending";

interface Pending {
  state: string;
  nonce: string;
  verifier: string;
  /** Where the user was going: opened after the login. */
  returnTo: string;
}

function randomText(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function challengeOf(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}

export function canRedirect(config: AuthConfig): boolean {
  return config.mode === "oidc" && Boolean(config.authorizationEndpoint && config.clientId);
}

/** Leaves for the issuer's login page. */
export async function startLogin(config: AuthConfig): Promise<void> {
  if (!config.authorizationEndpoint || !config.clientId) throw new Error("the server names no OIDC login");
  const pending: Pending = {
    state: randomText(16),
    nonce: randomText(16),
    verifier: randomText(32),
    returnTo: `${location.pathname}${location.search}`,
  };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(config.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: `${location.origin}${CALLBACK_PATH}`,
    scope: "openid profile email",
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: await challengeOf(pending.verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/**
 * On /auth/callback: the issuer's answer turned into the session's token. Returns the token, who it is,
 * and where to go; throws with the reason when the login failed or was not this tab's.
 */
export async function completeLogin(): Promise<{ token: string; me: WhoAmI; returnTo: string }> {
  const params = new URLSearchParams(location.search);
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const pending = raw ? (JSON.parse(raw) as Pending) : undefined;
  const error = params.get("error");
  if (error)
    throw new Error(`the identity provider refused the login: ${params.get("error_description") ?? error}`);
  if (!pending || params.get("state") !== pending.state)
    throw new Error("this login was not started in this tab (state mismatch); sign in again");
  const answer = await requestJson<{ token: string; principal: WhoAmI }>("/api/v1/auth/oidc/login", {
    method: "POST",
    body: JSON.stringify({
      code: params.get("code") ?? "",
      codeVerifier: pending.verifier,
      redirectUri: `${location.origin}${CALLBACK_PATH}`,
      nonce: pending.nonce,
    }),
  });
  return { token: answer.token, me: answer.principal, returnTo: pending.returnTo || "/" };
}
