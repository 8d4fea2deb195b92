// JSON over fetch with osimg's one error shape: every failure becomes an HttpError that carries the
// server's message and hint, so pages show what the server said, not "request failed".
import type { Finding } from "../../../src/catalog/findings.ts";

/** The server's error body (src/server/errors.ts), plus the findings some routes add. */
export interface ApiErrorBody {
  error: string;
  message: string;
  field?: string;
  hint?: string;
  details?: { field: string; message: string }[];
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

export async function requestJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("accept", "application/json");
  if (init.body !== undefined && !headers.has("content-type"))
    headers.set("content-type", "application/json");
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new HttpError(0, {
      error: "unreachable",
      message: `cannot reach the osimg server (${error instanceof Error ? error.message : String(error)})`,
      hint: "check that `osimg serve` is running",
    });
  }
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

/** Worth asking again: the server was unreachable or failed, not a refusal that would repeat. */
export function isRetryable(error: unknown): boolean {
  return !(error instanceof HttpError) || error.status === 0 || error.status >= 500;
}
