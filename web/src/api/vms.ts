// VMs as the UI reads and drives them: the list and each VM with its events (refetched when the server's
// event stream says one changed), create (with a dry run for the Review step), lifecycle actions, delete,
// the rendered manifest, and the console WebSocket URLs.
import { queryOptions, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import type { Vm, VmAction, VmCreateRequest, VmEvent } from "../../../src/vms/model.ts";
import { consoleProtocols } from "../auth/session.ts";
import { followEvents, requestJson, socketUrl } from "./http.ts";

export type { Vm, VmAction, VmCreateRequest, VmEvent };

export interface Rendered {
  format: "yaml" | "argv";
  text: string;
}

const enc = encodeURIComponent;
const vmsPath = (namespace: string) => `/api/v1/namespaces/${enc(namespace)}/vms`;
const vmPath = (namespace: string, name: string) => `${vmsPath(namespace)}/${enc(name)}`;

export const vmsKey = (namespace: string) => ["vms", namespace] as const;
export const vmKey = (namespace: string, name: string) => ["vms", namespace, name] as const;
/** A VM's events (what happened to it), not the stream of changes that useVmEvents follows. */
export const eventsOfVmKey = (namespace: string, name: string) =>
  [...vmKey(namespace, name), "events"] as const;

/** While the event stream is down, the list is polled this often instead. */
const FALLBACK_POLL_MS = 5000;

export function vmsQuery(namespace: string, live = true) {
  return queryOptions({
    queryKey: vmsKey(namespace),
    queryFn: async ({ signal }) => (await requestJson<{ items: Vm[] }>(vmsPath(namespace), { signal })).items,
    refetchInterval: live ? false : FALLBACK_POLL_MS,
  });
}

export function vmQuery(namespace: string, name: string, live = true) {
  return queryOptions({
    queryKey: vmKey(namespace, name),
    queryFn: ({ signal }) => requestJson<Vm>(vmPath(namespace, name), { signal }),
    refetchInterval: live ? false : FALLBACK_POLL_MS,
  });
}

/** What happened to a VM, oldest first (as the server answers). Refetched when the VM changes. */
export function eventsOfVmQuery(namespace: string, name: string, live = true) {
  return queryOptions({
    queryKey: eventsOfVmKey(namespace, name),
    queryFn: async ({ signal }) =>
      (await requestJson<{ items: VmEvent[] }>(`${vmPath(namespace, name)}/events`, { signal })).items,
    refetchInterval: live ? false : FALLBACK_POLL_MS,
  });
}

export function manifestQuery(namespace: string, name: string) {
  return queryOptions({
    queryKey: [...vmKey(namespace, name), "manifest"],
    queryFn: ({ signal }) => requestJson<Rendered>(`${vmPath(namespace, name)}/manifest`, { signal }),
    staleTime: Number.POSITIVE_INFINITY,
  });
}

/** What the server would create (?dryRun=true): nothing is created. 422 names each refused field. */
export async function previewVm(namespace: string, request: VmCreateRequest): Promise<Rendered> {
  const answer = await requestJson<{ rendered: Rendered }>(`${vmsPath(namespace)}?dryRun=true`, {
    method: "POST",
    body: JSON.stringify(request),
  });
  return answer.rendered;
}

export function createVm(namespace: string, request: VmCreateRequest): Promise<Vm> {
  return requestJson<Vm>(vmsPath(namespace), { method: "POST", body: JSON.stringify(request) });
}

export function actOnVm(namespace: string, name: string, action: VmAction): Promise<Vm> {
  return requestJson<Vm>(`${vmPath(namespace, name)}/${action}`, { method: "POST" });
}

export function deleteVm(namespace: string, name: string): Promise<void> {
  return requestJson<void>(vmPath(namespace, name), { method: "DELETE" });
}

export interface ConsoleSocket {
  url: string;
  /** WebSocket subprotocols, which carry the session's credentials (browsers send no headers). */
  protocols: string[];
}

/** Where a VM's serial console or VNC display is, and how to open it (new WebSocket(url, protocols)). */
export function consoleSocket(namespace: string, name: string, kind: "serial" | "vnc"): ConsoleSocket {
  return {
    url: socketUrl(`${vmPath(namespace, name)}/${kind === "serial" ? "console" : "vnc"}`),
    protocols: consoleProtocols(),
  };
}

/** The list with a VM put in (or replaced), in the server's order (by name). */
export function withVm(list: readonly Vm[] | undefined, vm: Vm): Vm[] {
  const others = (list ?? []).filter((v) => v.name !== vm.name);
  return [...others, vm].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Runs `task` after `poke`, coalescing: pokes during a run cause exactly one more run after it, so the
 * last change is always fetched and a burst of changes (import progress) never piles up requests.
 */
export class Coalescer {
  readonly #task: () => Promise<void>;
  readonly #delayMs: number;
  #dirty = false;
  #running = false;
  #stopped = false;

  constructor(task: () => Promise<void>, delayMs = 30) {
    this.#task = task;
    this.#delayMs = delayMs;
  }

  poke(): void {
    this.#dirty = true;
    if (!this.#running) void this.#run();
  }

  stop(): void {
    this.#stopped = true;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#dirty && !this.#stopped) {
        // A short wait gathers a burst of events into one fetch.
        await new Promise((r) => setTimeout(r, this.#delayMs));
        this.#dirty = false;
        await this.#task().catch(() => {});
      }
    } finally {
      this.#running = false;
    }
  }
}

/**
 * Follows the namespace's VM events while mounted: each change refetches the list and the changed VMs
 * (with their events, where shown); a (re)connection refetches everything (changes may have been
 * missed). Returns whether the stream is connected (when it is not, the queries poll instead).
 */
export function useVmEvents(namespace: string): boolean {
  const client = useQueryClient();
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    const changed = new Set<string>();
    let everything = false;
    const refresh = new Coalescer(async () => {
      const names = [...changed];
      const all = everything;
      changed.clear();
      everything = false;
      if (all) {
        await client.invalidateQueries({ queryKey: vmsKey(namespace) });
        return;
      }
      await Promise.all([
        client.invalidateQueries({ queryKey: vmsKey(namespace), exact: true }),
        ...names.flatMap((name) => [
          client.invalidateQueries({ queryKey: vmKey(namespace, name), exact: true }),
          // A change of a VM is (or comes with) an event: its list is fetched again where it is shown.
          client.invalidateQueries({ queryKey: eventsOfVmKey(namespace, name), exact: true }),
        ]),
      ]);
    });
    const stop = followEvents(`/api/v1/namespaces/${enc(namespace)}/vm-events`, {
      onOpen: () => {
        setConnected(true);
        everything = true;
        refresh.poke();
      },
      onDisconnect: () => setConnected(false),
      onEvent: (event) => {
        if (event.event !== "vm") return;
        try {
          changed.add((JSON.parse(event.data) as { name: string }).name);
        } catch {
          everything = true;
        }
        refresh.poke();
      },
    });
    return () => {
      stop();
      refresh.stop();
      setConnected(false);
    };
  }, [client, namespace]);
  return connected;
}
