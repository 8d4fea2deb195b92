// The UI's one way to the server: JSON over fetch with osimg's one error shape (every failure becomes an
// HttpError that carries the server's message and hint, so pages show what the server said, not "request
// failed"), ETag revalidation for polled resources, server-sent events, and WebSocket URLs.
import { createParser } from "eventsource-parser";
import type { Finding } from "../../../src/catalog/findings.ts";
import { reportUnauthorized, withCredentials } from "../auth/session.ts";

/** One field of a refused request (422): the VM routes name each field with its minimum. */
export interface FieldDetail {
  field: string;
  message: string;
  minimum?: string;
  hint?: string;
  line?: number;
  column?: number;
}

/** The server's error body (src/server/errors.ts), plus the findings some routes add. */
export interface ApiErrorBody {
  error: string;
  message: string;
  field?: string;
  hint?: string;
  details?: FieldDetail[];
  findings?: Finding[];
}

export class HttpError extends Error {
  /** 0 when the server could not be reached at all. */
  readonly status: number;
  readonly body: ApiErrorBody;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.name = "HttpError";
    this.status = status;
    this.body = body;
  }
}

function isErrorBody(value: unknown): value is ApiErrorBody {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as ApiErrorBody).error === "string" &&
    typeof (value as ApiErrorBody).message === "string"
  );
}

/**
 * Every request of the UI to the server goes through here: the one place to add credentials (a bearer
 * token) to requests. Network failures become an HttpError with status 0.
 */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: withCredentials(init.headers) });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new HttpError(0, {
      error: "unreachable",
      message: `cannot reach the osimg server (${error instanceof Error ? error.message : String(error)})`,
      hint: "check that `osimg serve` is running",
    });
  }
  if (response.status === 401) reportUnauthorized();
  return response;
}

function jsonHeaders(init: RequestInit): Headers {
  const headers = new Headers(init.headers);
  headers.set("accept", "application/json");
  if (init.body !== undefined && !headers.has("content-type"))
    headers.set("content-type", "application/json");
  return headers;
}

/** The body of an answer as JSON, or an HttpError in the server's words when it is not a success. */
async function readJson<T>(path: string, response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    throw new HttpError(
      response.status,
      isErrorBody(body)
        ? body
        : {
            error: `http_${response.status}`,
            message: `${path} answered ${response.status} ${response.statusText}`.trim(),
          },
    );
  }
  return body as T;
}

export async function requestJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  return readJson<T>(path, await send(path, { ...init, headers: jsonHeaders(init) }));
}

/** The last answer of each revalidated GET, with its ETag. */
const revalidated = new Map<string, { etag: string; body: unknown }>();

/**
 * GET with If-None-Match: an unchanged resource (304) answers the very object of the last answer, so a
 * poll of an unchanged catalog costs neither the transfer, nor parsing, nor a render.
 */
export async function getRevalidated<T>(path: string, signal?: AbortSignal): Promise<T> {
  const cached = revalidated.get(path);
  const headers = jsonHeaders({});
  if (cached) headers.set("if-none-match", cached.etag);
  const response = await send(path, { signal, headers });
  if (response.status === 304 && cached) return cached.body as T;
  const body = await readJson<T>(path, response);
  const etag = response.headers.get("etag");
  if (etag) revalidated.set(path, { etag, body });
  else revalidated.delete(path);
  return body;
}

/** The WebSocket URL of a server path (consoles), on the page's own host. */
export function socketUrl(path: string): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

export interface ServerEvent {
  event: string;
  data: string;
}

export interface EventStreamHandlers {
  onEvent: (event: ServerEvent) => void;
  /** Called on every (re)connection: what happened while disconnected must be fetched again. */
  onOpen?: () => void;
  onDisconnect?: () => void;
}

const RECONNECT_MS = [500, 1000, 2000, 5000, 10_000];

/**
 * Follows a server-sent event stream, reconnecting with backoff until stopped. Read with fetch (not
 * EventSource) so that it goes through `send` like every other request. Returns the stop function.
 */
export function followEvents(path: string, handlers: EventStreamHandlers): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  (async () => {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const response = await send(path, { signal, headers: { accept: "text/event-stream" } });
        if (!response.ok || !response.body) await readJson(path, response);
        else {
          failures = 0;
          handlers.onOpen?.();
          const parser = createParser({
            onEvent: (message) => handlers.onEvent({ event: message.event ?? "message", data: message.data }),
          });
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
        }
      } catch {
        // Reconnect below; a refusal (4xx) is retried too, slowly: it may be a server being restarted.
      }
      if (signal.aborted) break;
      handlers.onDisconnect?.();
      await sleep(RECONNECT_MS[Math.min(failures++, RECONNECT_MS.length - 1)] as number);
    }
  })();
  return () => controller.abort();
}

/** Worth asking again: the server was unreachable or failed, not a refusal that would repeat. */
export function isRetryable(error: unknown): boolean {
  return !(error instanceof HttpError) || error.status === 0 || error.status >= 500;
}
