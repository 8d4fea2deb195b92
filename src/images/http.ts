// A small HTTP client over node:http/https for image intake: streaming bodies, a bounded number of
// redirects each checked by the fetch policy, and timeouts that turn an unreachable host into a clear
// answer within seconds.
import { request as httpRequestRaw, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequestRaw } from "node:https";
import { type FetchPolicy, FetchRefused } from "./fetch-policy.ts";

export type FetchErrorKind =
  | "unreachable"
  | "refused"
  | "http"
  | "timeout"
  | "redirects"
  | "too_large"
  | "protocol";

export class FetchError extends Error {
  readonly kind: FetchErrorKind;
  readonly status: number | undefined;
  readonly url: string;
  constructor(kind: FetchErrorKind, url: string, message: string, status?: number) {
    super(message);
    this.kind = kind;
    this.url = url;
    this.status = status;
  }
}

export interface HttpOptions {
  policy: FetchPolicy;
  headers?: Record<string, string>;
  method?: "GET" | "HEAD";
  /** Until the response headers arrive, in ms (connect, TLS, redirects included). */
  timeoutMs?: number;
  /** Longest silence while the body streams, in ms. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  /** The URL that answered, after redirects. */
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  redirects: string[];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
export const USER_AGENT = "osimg/0.1 (image intake)";

function describeNetworkError(error: NodeJS.ErrnoException, url: URL): string {
  const where = `${url.hostname}${url.port ? `:${url.port}` : ""}`;
  switch (error.code) {
    case "ENOTFOUND":
      return `cannot resolve host ${url.hostname}`;
    case "EAI_AGAIN":
      return `DNS lookup of ${url.hostname} failed (no DNS answer: no network?)`;
    case "ECONNREFUSED":
      return `connection refused by ${where}`;
    case "ECONNRESET":
      return `connection reset by ${where}`;
    case "ENETUNREACH":
    case "EHOSTUNREACH":
      return `network unreachable for ${where}`;
    case "ETIMEDOUT":
      return `connection to ${where} timed out`;
    default:
      return error.code?.startsWith("ERR_TLS") || error.code?.includes("CERT")
        ? `TLS failed with ${where}: ${error.message}`
        : `${where}: ${error.message}`;
  }
}

function once(url: URL, options: HttpOptions, deadline: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const make = url.protocol === "https:" ? httpsRequestRaw : httpRequestRaw;
    const remaining = Math.max(1, deadline - Date.now());
    const req = make(url, {
      method: options.method ?? "GET",
      headers: { "user-agent": USER_AGENT, ...options.headers },
      lookup: options.policy.lookupFor(url),
      // A socket of its own: the idle timeout below must not outlive this response on a pooled socket.
      agent: false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const timer = setTimeout(() => {
      req.destroy(
        new FetchError(
          "timeout",
          url.href,
          `no answer from ${url.host} within ${Math.round((options.timeoutMs ?? 15000) / 1000)} s`,
        ),
      );
    }, remaining);
    req.once("response", (res) => {
      clearTimeout(timer);
      const idle = options.idleTimeoutMs ?? 60_000;
      res.socket?.setTimeout(idle, () =>
        res.destroy(
          new FetchError("timeout", url.href, `the download from ${url.host} stalled for ${idle / 1000} s`),
        ),
      );
      res.once("close", () => res.socket?.setTimeout(0));
      resolve(res);
    });
    req.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error instanceof FetchError) reject(error);
      else if (error instanceof FetchRefused) reject(new FetchError("refused", url.href, error.message));
      else if (error.name === "AbortError") reject(error);
      else reject(new FetchError("unreachable", url.href, describeNetworkError(error, url)));
    });
    req.end();
  });
}

/** Sends a request, following redirects (each one checked by the policy). Non-2xx answers are returned. */
export async function httpRequest(target: string, options: HttpOptions): Promise<HttpResponse> {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new FetchError("protocol", target, `"${target}" is not a URL`);
  }
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const redirects: string[] = [];
  for (;;) {
    try {
      options.policy.checkUrl(url);
    } catch (error) {
      throw new FetchError("refused", url.href, (error as Error).message);
    }
    const res = await once(url, options, deadline);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECTS.has(status) || !location) {
      return { url: url.href, status, headers: res.headers, body: res, redirects };
    }
    res.resume();
    if (redirects.length >= options.policy.maxRedirects)
      throw new FetchError(
        "redirects",
        url.href,
        `more than ${options.policy.maxRedirects} redirects (last to ${location})`,
      );
    const next = new URL(location, url);
    redirects.push(next.href);
    url = next;
  }
}

/** Throws a FetchError for an answer that is not the wanted one. */
export function expectStatus(res: HttpResponse, ...wanted: number[]): void {
  if (wanted.includes(res.status)) return;
  res.body.resume();
  throw new FetchError("http", res.url, `HTTP ${res.status} from ${res.url}`, res.status);
}

/** A small text body (a checksum file, a directory listing), refused past maxBytes. */
export async function readText(res: HttpResponse, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > maxBytes) {
      res.body.destroy();
      throw new FetchError("too_large", res.url, `${res.url} is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function headerString(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** "bytes 0-99/1234" -> { start, end, total } */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), ...(m[3] !== "*" ? { total: Number(m[3]) } : {}) };
}
