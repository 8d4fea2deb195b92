// Helpers for tests against the fake Kubernetes API server through the real client library.
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import { expect } from "vitest";
import { type KubeFailure, kubeFailure } from "../../../src/kube/client.ts";

/** Awaits a rejected client call and returns what the server answered. */
export async function failureOf(call: Promise<unknown>): Promise<KubeFailure & { body: unknown }> {
  try {
    await call;
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    return { ...kubeFailure(error), body: typeof body === "string" ? JSON.parse(body) : body };
  }
  throw new Error("expected the call to fail");
}

export async function expectFailure(call: Promise<unknown>, code: number, reason?: string) {
  const failure = await failureOf(call);
  expect(failure.code, failure.message).toBe(code);
  if (reason) expect(failure.reason).toBe(reason);
  return failure;
}

export interface WatchEvent {
  type: string;
  object: {
    metadata?: { name?: string; resourceVersion?: string; [key: string]: unknown };
    [key: string]: unknown;
  };
}

export interface OpenWatch {
  events: WatchEvent[];
  /** Resolves with the error the watch ended with (null when the server ended it cleanly). */
  done: Promise<unknown>;
  abort(): void;
}

/** Opens a watch with the library's Watch and collects its events. */
export async function openWatch(
  config: KubeConfig,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
): Promise<OpenWatch> {
  const events: WatchEvent[] = [];
  let resolveDone: (error: unknown) => void = () => {};
  const done = new Promise<unknown>((resolve) => {
    resolveDone = resolve;
  });
  const controller = await new Watch(config).watch(
    path,
    query,
    (type, object) => events.push({ type, object }),
    (error) => resolveDone(error ?? null),
  );
  return { events, done, abort: () => controller.abort() };
}
