// Support for the UI's component tests: catalog responses made by the real parser from YAML, a fake
// server answering fetch() by method and path (recording what the UI sent), and a render with the
// app's providers around a component, at a URL of an in-memory router.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactNode } from "react";
import { vi } from "vitest";
import { Router } from "wouter";
import { memoryLocation } from "wouter/memory-location";
import type { Finding } from "../../src/catalog/findings.ts";
import { parseCatalog } from "../../src/catalog/parse.ts";
import type { Vm } from "../../src/vms/model.ts";
import type { CatalogResponse } from "../../web/src/api/catalog.ts";

export function catalogResponse(yaml: string, overrides: Partial<CatalogResponse> = {}): CatalogResponse {
  const parsed = parseCatalog(yaml);
  const count = (severity: Finding["severity"]) =>
    parsed.findings.filter((f) => f.severity === severity).length;
  return {
    version: "0123456789abcdef0123",
    source: { kind: "file", location: "/etc/osimg/images.yaml" },
    format: parsed.format,
    servingLastGood: false,
    lastReload: null,
    counts: {
      entries: parsed.entries.length,
      error: count("error"),
      warning: count("warning"),
      info: count("info"),
    },
    entries: parsed.entries,
    findings: parsed.findings,
    ...overrides,
  };
}

export interface SentRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: unknown;
  signal?: AbortSignal;
}

/** A JSON answer, or a stream of server-sent events (see EventFeed). */
export type Reply = { status?: number; body: unknown } | { status?: number; events: EventFeed };
type Handler = (request: SentRequest) => Reply | Promise<Reply>;

/** A text/event-stream answer that a test writes events to; it ends when the client aborts. */
export class EventFeed {
  readonly #controllers = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #opened = 0;

  /** How many streams have been opened (connections of the client). */
  get opened(): number {
    return this.#opened;
  }

  get open(): number {
    return this.#controllers.size;
  }

  stream(signal?: AbortSignal): ReadableStream<Uint8Array> {
    let self: ReadableStreamDefaultController<Uint8Array>;
    this.#opened++;
    return new ReadableStream({
      start: (controller) => {
        self = controller;
        this.#controllers.add(controller);
        controller.enqueue(new TextEncoder().encode(": hello\n\n"));
        signal?.addEventListener("abort", () => {
          this.#controllers.delete(controller);
          controller.error(new DOMException("aborted", "AbortError"));
        });
      },
      cancel: () => {
        this.#controllers.delete(self);
      },
    });
  }

  send(event: string, data: unknown): void {
    const bytes = new TextEncoder().encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    for (const c of this.#controllers) c.enqueue(bytes);
  }

  /** Ends every open stream, as a server restart would. */
  close(): void {
    for (const c of this.#controllers) c.close();
    this.#controllers.clear();
  }
}

/** Replaces fetch with answers by "METHOD /path"; an unknown route answers 404 in the server's shape. */
export function fakeServer(routes: Record<string, Handler>) {
  const sent: SentRequest[] = [];
  vi.stubGlobal("fetch", async (input: string, init: RequestInit = {}) => {
    const method = (init.method ?? "GET").toUpperCase();
    const [path = input, search = ""] = input.split("?");
    const request: SentRequest = {
      method,
      path,
      query: new URLSearchParams(search),
      headers: new Headers(init.headers),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
      signal: init.signal ?? undefined,
    };
    sent.push(request);
    const handler = routes[`${method} ${path}`];
    const reply = handler
      ? await handler(request)
      : { status: 404, body: { error: "not_found", message: `no route ${method} ${path}` } };
    if ("events" in reply)
      return new Response(reply.events.stream(request.signal), {
        status: reply.status ?? 200,
        headers: { "content-type": "text/event-stream" },
      });
    return new Response(reply.status === 204 ? null : JSON.stringify(reply.body), {
      status: reply.status ?? 200,
      headers: { "content-type": "application/json" },
    });
  });
  return { sent };
}

export function renderAt(path: string, ui: ReactNode) {
  const location = memoryLocation({ path, record: true });
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const result = render(
    <QueryClientProvider client={client}>
      <Router hook={location.hook} searchHook={location.searchHook}>
        {ui}
      </Router>
    </QueryClientProvider>,
  );
  return { ...result, location, client };
}

/** A VM as the server answers it, by default Ready on local QEMU. */
export function vmFixture(
  name: string,
  phase: Vm["status"]["phase"] = "Ready",
  status: Partial<Vm["status"]> = {},
): Vm {
  return {
    namespace: "demo",
    name,
    provider: "qemu",
    createdAt: new Date(Date.now() - 90_000).toISOString(),
    spec: {
      namespace: "demo",
      name,
      image: {
        entryId: "ubuntu-24.04",
        osName: "Ubuntu 24.04",
        url: "https://images.example.test/noble.img",
        cloudUser: "ubuntu",
        firmware: "efi",
        features: ["acpi"],
        bootOrder: [],
        additionalDisks: [],
      },
      cpu: 2,
      memory: "2Gi",
      memoryBytes: 2 * 2 ** 30,
      storage: "20G",
      storageBytes: 20e9,
      sshKeys: [],
      hasPassword: false,
      runStrategy: "Always",
    },
    status: {
      phase,
      conditions: [],
      ipAddresses: phase === "Ready" ? ["10.0.2.15"] : [],
      notes: [],
      consoles: { serial: "serial.sock", vnc: "vnc.sock" },
      ...(phase === "Ready" ? { ssh: { host: "127.0.0.1", port: 2222, user: "ubuntu" } } : {}),
      ...status,
    },
  };
}
