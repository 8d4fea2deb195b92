// The CLI's side of the HTTP API: requests to a running `osimg serve`, errors printed with their fields.
import { storedToken } from "../auth/stored-credentials.ts";

export interface ApiClientOptions {
  server: string;
  /** The bearer token; default: the one `osimg login` saved for this server. */
  token?: string;
}

export class ApiRequestError extends Error {
  readonly status: number;
  readonly body: {
    error?: string;
    message?: string;
    hint?: string;
    details?: { field: string; message: string; minimum?: string; hint?: string }[];
  };

  constructor(status: number, body: ApiRequestError["body"]) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  /** Every line a user needs: the message, each field with its minimum or hint, the hint. */
  describe(): string {
    const details = this.body.details ?? [];
    const headline =
      details.length > 0
        ? `${details.length === 1 ? "a field was" : `${details.length} fields were`} refused`
        : undefined;
    const lines = [`error: ${headline ?? this.body.message ?? `HTTP ${this.status}`}`];
    for (const d of details) {
      const extra = d.minimum ? ` (minimum ${d.minimum})` : d.hint ? ` (${d.hint})` : "";
      lines.push(`  ${d.field}: ${d.message}${extra}`);
    }
    if (this.body.hint) lines.push(`  hint: ${this.body.hint}`);
    return lines.join("\n");
  }
}

export class ApiClient {
  readonly server: string;
  readonly #token: string | undefined;

  constructor(options: ApiClientOptions) {
    this.server = options.server.replace(/\/$/, "");
    this.#token = options.token || storedToken(this.server);
  }

  headers(): Record<string, string> {
    return this.#token ? { authorization: `Bearer ${this.#token}` } : {};
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.server}${path}`, {
        method,
        headers: { ...this.headers(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiRequestError(0, {
        message: `cannot reach the osimg server at ${this.server} (${(error as Error).cause ?? (error as Error).message})`,
        hint: "start it with `osimg serve`, or name another with --server / OSIMG_SERVER",
      });
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) throw new ApiRequestError(response.status, (parsed ?? {}) as ApiRequestError["body"]);
    return parsed as T;
  }

  websocketUrl(path: string): string {
    return `${this.server.replace(/^http/, "ws")}${path}`;
  }
}

/** Runs a CLI action; an API error becomes its description on stderr and exit status 1. */
export function handled<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (error) {
      if (!(error instanceof ApiRequestError)) throw error;
      process.stderr.write(`${error.describe()}\n`);
      process.exitCode = 1;
    }
  };
}
