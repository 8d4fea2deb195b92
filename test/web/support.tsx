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
  headers: Headers;
  body: unknown;
}

export type Reply = { status?: number; body: unknown };
type Handler = (request: SentRequest) => Reply | Promise<Reply>;

/** Replaces fetch with answers by "METHOD /path"; an unknown route answers 404 in the server's shape. */
export function fakeServer(routes: Record<string, Handler>) {
  const sent: SentRequest[] = [];
  vi.stubGlobal("fetch", async (input: string, init: RequestInit = {}) => {
    const method = (init.method ?? "GET").toUpperCase();
    const path = input.split("?")[0] ?? input;
    const request: SentRequest = {
      method,
      path,
      headers: new Headers(init.headers),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    };
    sent.push(request);
    const handler = routes[`${method} ${path}`];
    const reply = handler
      ? await handler(request)
      : { status: 404, body: { error: "not_found", message: `no route ${method} ${path}` } };
    return new Response(JSON.stringify(reply.body), {
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
