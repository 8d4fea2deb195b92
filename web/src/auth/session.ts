// The UI's credentials: one bearer token kept in sessionStorage (gone when the tab closes; never in
// localStorage or a cookie), added to every request by the fetch wrapper (api/http.ts), and offered to
// console WebSockets as a `bearer.<token>` subprotocol beside "osimg.console" (browsers cannot set
// headers on WebSockets; the server selects "osimg.console" and never echoes the token).
const KEY = "osimg.token";
export const CONSOLE_PROTOCOL = "osimg.console";

export function currentToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function clearToken(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: nothing was kept
  }
}

/** The request's headers with the session's token, unless the request carries its own. */
export function withCredentials(init?: HeadersInit): Headers {
  const headers = new Headers(init);
  const token = currentToken();
  if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  return headers;
}

/** Subprotocols for a console WebSocket: `new WebSocket(url, consoleProtocols())`, noVNC's wsProtocols. */
export function consoleProtocols(): string[] {
  const token = currentToken();
  return token ? [CONSOLE_PROTOCOL, `bearer.${token}`] : [CONSOLE_PROTOCOL];
}

const listeners = new Set<() => void>();

/** The server refused the session's credentials (401): the login page takes over. */
export function reportUnauthorized(): void {
  for (const listener of listeners) listener();
}

export function onUnauthorized(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
