// A local HTTP server for image intake tests and the intake benchmark: serves files with or without
// Range support, ETag and Last-Modified, redirects, HTML directory listings, and connections cut after a
// number of bytes (to test resuming). Listens on 127.0.0.1 only. Every request is logged.
//   node test/support/http-fixture-server.ts DIR [--no-range]   (prints "http://127.0.0.1:PORT")
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";

export interface RequestLog {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  status: number;
  /** Bytes of body sent (what the client could have read). */
  sent: number;
}

export interface FixtureServerOptions {
  /** Directory whose files are served at /NAME. */
  root: string;
  /** Answer Range requests with 206 (default true); false answers every GET with the whole file. */
  range?: boolean;
}

export class FixtureServer {
  readonly root: string;
  range: boolean;
  readonly log: RequestLog[] = [];
  readonly #redirects = new Map<string, { location: string; status: number }>();
  readonly #cuts = new Map<string, { bytes: number; skip: number }>();
  readonly #bodies = new Map<string, { data: Buffer; type: string }>();
  #server: Server | undefined;
  url = "";

  constructor(options: FixtureServerOptions) {
    this.root = options.root;
    this.range = options.range ?? true;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  /** Answers `path` with a redirect to `location` (absolute or relative). */
  redirect(path: string, location: string, status = 302): void {
    this.#redirects.set(path, { location, status });
  }

  /** The next download of `path` (a GET without Range, or with an open-ended one) sends `bytes` and then drops the connection; `skip` downloads are left whole first. */
  cutAfter(path: string, bytes: number, options: { skip?: number } = {}): void {
    this.#cuts.set(path, { bytes, skip: options.skip ?? 0 });
  }

  /** Serves fixed content at `path` (a checksum file, an HTML page). */
  body(path: string, data: string | Buffer, type = "text/plain"): void {
    this.#bodies.set(path, { data: Buffer.from(data), type });
  }

  requests(path: string): RequestLog[] {
    return this.log.filter((r) => r.path === path);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const entry: RequestLog = { method: req.method ?? "GET", path, status: 0, sent: 0 };
    if (req.headers.range) entry.range = req.headers.range;
    if (req.headers["if-range"]) entry.ifRange = String(req.headers["if-range"]);
    this.log.push(entry);
    const reply = (status: number, headers: Record<string, string | number> = {}, body?: string | Buffer) => {
      entry.status = status;
      res.writeHead(status, headers);
      if (body !== undefined && req.method !== "HEAD") entry.sent += Buffer.byteLength(body);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const redirect = this.#redirects.get(path);
    if (redirect) return reply(redirect.status, { location: redirect.location });
    const fixed = this.#bodies.get(path);
    if (fixed)
      return reply(200, { "content-type": fixed.type, "content-length": fixed.data.length }, fixed.data);

    const file = normalize(join(this.root, path));
    if (!file.startsWith(normalize(this.root))) return reply(403, {}, "forbidden");
    const info = await stat(file).catch(() => undefined);
    if (info?.isDirectory()) {
      const names = await readdir(file);
      const html = `<!DOCTYPE html><html><body>${names.map((n) => `<a href="${encodeURIComponent(n)}">${n}</a>`).join("\n")}</body></html>`;
      return reply(200, { "content-type": "text/html" }, html);
    }
    if (!info?.isFile()) return reply(404, { "content-type": "text/plain" }, "not found");

    const size = info.size;
    const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const headers: Record<string, string | number> = {
      "content-type": "application/octet-stream",
      etag,
      "last-modified": info.mtime.toUTCString(),
    };
    if (this.range) headers["accept-ranges"] = "bytes";
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (this.range && range && (!ifRange || ifRange === etag || ifRange === info.mtime.toUTCString())) {
      if (range[1] === "") {
        start = Math.max(0, size - Number(range[2]));
      } else {
        start = Number(range[1]);
        if (range[2] !== "") end = Math.min(end, Number(range[2]));
      }
      if (start >= size) return reply(416, { "content-range": `bytes */${size}` });
      status = 206;
      headers["content-range"] = `bytes ${start}-${end}/${size}`;
    }
    headers["content-length"] = end - start + 1;
    entry.status = status;
    res.writeHead(status, headers);
    if (req.method === "HEAD" || size === 0) return void res.end();
    const download = !req.headers.range || /^bytes=\d+-$/.test(req.headers.range);
    const planned = download ? this.#cuts.get(path) : undefined;
    let cut: number | undefined;
    if (planned && planned.skip > 0) planned.skip--;
    else if (planned) {
      cut = planned.bytes;
      this.#cuts.delete(path);
    }
    const last = cut !== undefined ? Math.min(end, start + cut - 1) : end;
    const stream = createReadStream(file, { start, end: last, highWaterMark: 1 << 20 });
    stream.on("data", (c) => {
      entry.sent += c.length;
    });
    if (cut !== undefined) {
      stream.on("end", () => res.socket?.destroy());
      stream.pipe(res, { end: false });
    } else stream.pipe(res);
    res.on("close", () => stream.destroy());
  }
}

export async function startFixtureServer(options: FixtureServerOptions): Promise<FixtureServer> {
  return new FixtureServer(options).start();
}

if (import.meta.main) {
  const root = process.argv[2];
  if (!root) throw new Error("usage: http-fixture-server.ts DIR [--no-range]");
  const server = await startFixtureServer({ root, range: !process.argv.includes("--no-range") });
  process.stdout.write(`${server.url}\n`);
  process.on("SIGTERM", () => server.stop().then(() => process.exit(0)));
}
