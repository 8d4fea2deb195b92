// Where a request carries its bearer token: the Authorization header, or — for WebSockets, whose browser
// API cannot set headers — a `bearer.<token>` entry in Sec-WebSocket-Protocol, offered beside the real
// subprotocol (e.g. ["osimg.console", "bearer.<token>"]). The server never selects the bearer entry, so
// the token is not echoed back; it selects the first other protocol offered.
import type { IncomingHttpHeaders } from "node:http";

export const BEARER_PROTOCOL_PREFIX = "bearer.";
/** The subprotocol osimg's console clients offer beside the bearer entry. */
export const CONSOLE_PROTOCOL = "osimg.console";

export type Credentials =
  | { kind: "none" }
  | { kind: "bearer"; token: string }
  | { kind: "malformed"; reason: string };

function protocols(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(",") : (header ?? "");
  return text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
}

export function credentialsOf(headers: IncomingHttpHeaders): Credentials {
  const authorization = headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization);
    if (!match?.[1])
      return { kind: "malformed", reason: 'the Authorization header must be "Bearer <token>"' };
    return { kind: "bearer", token: match[1] };
  }
  if (headers.upgrade?.toLowerCase() === "websocket") {
    const offered = protocols(headers["sec-websocket-protocol"]).find((p) =>
      p.startsWith(BEARER_PROTOCOL_PREFIX),
    );
    if (offered) return { kind: "bearer", token: offered.slice(BEARER_PROTOCOL_PREFIX.length) };
  }
  return { kind: "none" };
}

/** ws's handleProtocols: the first offered protocol that is not a credential; none if only credentials. */
export function selectSubprotocol(offered: Set<string>): string | false {
  for (const p of offered) if (!p.startsWith(BEARER_PROTOCOL_PREFIX)) return p;
  return false;
}
