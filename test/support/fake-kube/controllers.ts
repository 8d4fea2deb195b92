// Tiny stand-ins for KubeVirt's and CDI's controllers, so that clients see objects move through the phases
// a real cluster shows: a VirtualMachine's DataVolumes import (ImportScheduled → ImportInProgress with a
// progress percentage → Succeeded), then its VirtualMachineInstance goes Pending → Scheduling → Scheduled →
// Running, and the VM's printableStatus follows. One step per tick, every write through the Cluster (so it
// is validated against the schemas like any client's). Also the subresource actions start, stop, restart,
// pause and unpause, with virt-api's rules for each run strategy.
import { isDeepStrictEqual } from "node:util";
import type { Cluster } from "./cluster.ts";
import type { KubeObject, ResourceType } from "./resources.ts";
import { KubeError, notFound } from "./status.ts";
import { objectKey, type StoreEvent } from "./store.ts";

export interface ControllerOptions {
  /** Delay between two steps of one object; default 10 ms. */
  stepMs?: number;
  /** Progress updates of an import before it succeeds; default 3. */
  importSteps?: number;
}

type Json = Record<string, unknown>;
type Condition = {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
};

const VMI_PHASES = ["Pending", "Scheduling", "Scheduled", "Running"] as const;
export const NODE_NAME = "fake-node-1";

const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export type SubresourceAction = "start" | "stop" | "restart" | "pause" | "unpause";

export class KubeVirtControllers {
  readonly #cluster: Cluster;
  readonly #stepMs: number;
  readonly #importSteps: number;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #failingImports = new Map<string, string>();
  #unsubscribe: (() => void) | undefined;
  readonly vm: ResourceType;
  readonly vmi: ResourceType;
  readonly dv: ResourceType;

  constructor(cluster: Cluster, options: ControllerOptions = {}) {
    this.#cluster = cluster;
    this.#stepMs = options.stepMs ?? 10;
    this.#importSteps = options.importSteps ?? 3;
    this.vm = cluster.type("kubevirt.io", "v1", "virtualmachines");
    this.vmi = cluster.type("kubevirt.io", "v1", "virtualmachineinstances");
    this.dv = cluster.type("cdi.kubevirt.io", "v1beta1", "datavolumes");
  }

  start(): void {
    this.#unsubscribe = this.#cluster.store.subscribe((event) => this.#onEvent(event));
    for (const type of [this.vm, this.vmi, this.dv])
      for (const o of this.#cluster.list(type, undefined).items) this.#enqueue(type, o);
  }

  stop(): void {
    this.#unsubscribe?.();
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Makes a DataVolume's import fail (CDI retries: Running=False, reason Error, restartCount grows). */
  failImport(namespace: string, name: string, message: string): void {
    this.#failingImports.set(objectKey(namespace, name), message);
    this.#enqueue(this.dv, { metadata: { namespace, name } });
  }

  /** Runs a subresource action as virt-api does; throws a KubeError for requests it refuses. */
  act(
    kind: "virtualmachines" | "virtualmachineinstances",
    namespace: string,
    name: string,
    action: SubresourceAction,
  ): void {
    const type = kind === "virtualmachines" ? this.vm : this.vmi;
    const target = this.#cluster.store.get(`${type.group}/${type.version}/${type.resource}`, namespace, name);
    if (!target) throw notFound(type, name);
    if (action === "pause" || action === "unpause") {
      this.#pause(namespace, name, action === "pause");
      return;
    }
    if (kind !== "virtualmachines")
      throw new KubeError(
        404,
        "NotFound",
        `the server could not find the requested resource (${action} on virtualmachineinstances)`,
      );
    const vm = target;
    const spec = (vm.spec ?? {}) as Json;
    const strategy = runStrategy(spec);
    const vmi = this.#find(this.vmi, namespace, name);
    const conflictWith = (message: string) => new KubeError(409, "Conflict", message);
    if (action === "start") {
      if (vmi) throw conflictWith("VM is already running");
      if (strategy === "Always") throw conflictWith("Always does not support manual start requests");
      if (strategy === "Halted") {
        this.#setRunStrategy(vm, "Always");
        return;
      }
      this.#request(vm, [{ action: "Start" }]);
      return;
    }
    if (action === "stop") {
      if (strategy === "Halted" && !vmi) throw conflictWith("VM is not running");
      if (strategy === "Always" || strategy === "RerunOnFailure") {
        this.#setRunStrategy(vm, "Halted");
        return;
      }
      if (!vmi) throw conflictWith("VM is not running");
      this.#request(vm, [{ action: "Stop", uid: vmi.metadata.uid }]);
      return;
    }
    if (!vmi) throw conflictWith("VM is not running");
    if (strategy === "Halted") throw conflictWith("Halted does not support manual restart requests");
    this.#request(vm, [{ action: "Stop", uid: vmi.metadata.uid }, { action: "Start" }]);
  }

  #pause(namespace: string, name: string, pause: boolean): void {
    const vmi = this.#find(this.vmi, namespace, name);
    const status = (vmi?.status ?? {}) as Json;
    if (!vmi || status.phase !== "Running") throw new KubeError(409, "Conflict", "VMI is not running");
    const conditions = (status.conditions ?? []) as Condition[];
    const paused = conditions.some((c) => c.type === "Paused" && c.status === "True");
    if (pause && paused) throw new KubeError(409, "Conflict", "VMI is already paused");
    if (!pause && !paused) throw new KubeError(409, "Conflict", "VMI is not paused");
    const next = conditions.filter((c) => c.type !== "Paused");
    if (pause)
      next.push({
        type: "Paused",
        status: "True",
        reason: "PausedByUser",
        message: "VMI was paused by user",
        lastTransitionTime: now(),
      });
    this.#writeStatus(this.vmi, vmi, { ...status, conditions: next });
  }

  #setRunStrategy(vm: KubeObject, strategy: string): void {
    const spec: Json = { ...(vm.spec as Json), runStrategy: strategy };
    delete spec.running;
    this.#cluster.update(this.vm, vm.metadata.namespace, vm.metadata.name as string, { ...vm, spec });
  }

  #request(vm: KubeObject, requests: Json[]): void {
    const status = (vm.status ?? {}) as Json;
    const pending = (status.stateChangeRequests ?? []) as Json[];
    this.#writeStatus(this.vm, vm, { ...status, stateChangeRequests: [...pending, ...requests] });
  }

  #onEvent(event: StoreEvent): void {
    const owner = event.object.metadata.ownerReferences?.find((r) => r.kind === "VirtualMachine");
    if (event.resource === typeKeyOf(this.vm)) {
      if (event.type !== "DELETED") this.#enqueue(this.vm, event.object);
    } else if (event.resource === typeKeyOf(this.vmi) || event.resource === typeKeyOf(this.dv)) {
      const type = event.resource === typeKeyOf(this.vmi) ? this.vmi : this.dv;
      if (event.type !== "DELETED") this.#enqueue(type, event.object);
      if (owner)
        this.#enqueue(this.vm, {
          metadata: { namespace: event.object.metadata.namespace, name: owner.name },
        });
      else if (type === this.dv) {
        // A DataVolume not (yet) owned: the VMs whose volumes name it.
        const namespace = event.object.metadata.namespace;
        for (const vm of this.#cluster.store.list(typeKeyOf(this.vm), namespace))
          if (standaloneDataVolumes((vm.spec ?? {}) as Json).includes(event.object.metadata.name as string))
            this.#enqueue(this.vm, vm);
      }
    }
  }

  #enqueue(type: ResourceType, object: Pick<KubeObject, "metadata">): void {
    const key = `${type.resource}:${objectKey(object.metadata.namespace, object.metadata.name as string)}`;
    if (this.#timers.has(key)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.#reconcile(type, object.metadata.namespace as string, object.metadata.name as string);
    }, this.#stepMs);
    timer.unref();
    this.#timers.set(key, timer);
  }

  #reconcile(type: ResourceType, namespace: string, name: string): void {
    const object = this.#find(type, namespace, name);
    if (!object) return;
    try {
      if (type === this.vm) this.#reconcileVm(object);
      else if (type === this.vmi) this.#reconcileVmi(object);
      else this.#reconcileDv(object);
    } catch (error) {
      // A write lost to a concurrent client write is retried on the next tick, like a controller's requeue.
      if (error instanceof KubeError && error.status.code === 409) this.#enqueue(type, object);
      else throw error;
    }
  }

  #find(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#cluster.store.get(typeKeyOf(type), namespace, name);
  }

  #writeStatus(type: ResourceType, object: KubeObject, status: Json): void {
    this.#cluster.update(
      type,
      object.metadata.namespace,
      object.metadata.name as string,
      { ...object, status },
      { subresource: "status" },
    );
  }

  #reconcileVm(vm: KubeObject): void {
    const namespace = vm.metadata.namespace as string;
    const name = vm.metadata.name as string;
    const spec = (vm.spec ?? {}) as Json;
    const status = { ...((vm.status ?? {}) as Json) };
    const owner = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      name,
      uid: vm.metadata.uid as string,
      controller: true,
      blockOwnerDeletion: true,
    };
    const templates = (spec.dataVolumeTemplates ?? []) as { metadata?: Json; spec: Json }[];
    let volumesReady = true;
    for (const template of templates) {
      const dvName = String(template.metadata?.name ?? "");
      const dv = this.#find(this.dv, namespace, dvName);
      if (!dv) {
        this.#cluster.create(this.dv, namespace, {
          metadata: { ...(template.metadata ?? {}), name: dvName, namespace, ownerReferences: [owner] },
          spec: template.spec,
        });
        volumesReady = false;
      } else if ((dv.status as Json | undefined)?.phase !== "Succeeded") volumesReady = false;
    }
    // DataVolumes of their own that the VM's volumes name: KubeVirt waits for them too.
    for (const dvName of standaloneDataVolumes(spec)) {
      const dv = this.#find(this.dv, namespace, dvName);
      if ((dv?.status as Json | undefined)?.phase !== "Succeeded") volumesReady = false;
    }

    let vmi = this.#find(this.vmi, namespace, name);
    // State change requests (start, stop, restart) are consumed one at a time, in order.
    const requests = [...((status.stateChangeRequests ?? []) as Json[])];
    let requested: "Start" | "Stop" | undefined;
    const head = requests[0];
    if (head?.action === "Stop") {
      if (vmi && (head.uid === undefined || head.uid === vmi.metadata.uid))
        this.#cluster.delete(this.vmi, namespace, name);
      vmi = undefined;
      requests.shift();
      requested = "Stop";
    } else if (head?.action === "Start" && !vmi) {
      requested = volumesReady ? "Start" : undefined;
      if (requested) requests.shift();
    } else if (head) requests.shift();

    const strategy = runStrategy(spec);
    const wanted =
      strategy === "Always" || strategy === "RerunOnFailure" || strategy === "Once"
        ? true
        : strategy === "Manual"
          ? requested === "Start" || (requested !== "Stop" && vmi !== undefined)
          : false;
    if (wanted && !vmi && volumesReady && requests.length === 0) {
      const template = (spec.template ?? {}) as { metadata?: Json; spec?: Json };
      vmi = this.#cluster.create(this.vmi, namespace, {
        metadata: { ...(template.metadata ?? {}), name, namespace, ownerReferences: [owner] },
        spec: template.spec ?? {},
      });
    } else if (!wanted && vmi) {
      this.#cluster.delete(this.vmi, namespace, name);
      vmi = undefined;
    }

    const vmiStatus = (vmi?.status ?? {}) as Json;
    const running = vmiStatus.phase === "Running";
    const paused = ((vmiStatus.conditions ?? []) as Condition[]).some(
      (c) => c.type === "Paused" && c.status === "True",
    );
    const printable = !vmi
      ? wanted
        ? volumesReady
          ? "Starting"
          : "Provisioning"
        : "Stopped"
      : running
        ? paused
          ? "Paused"
          : "Running"
        : "Starting";
    const ready = running && !paused;
    const next: Json = {
      ...status,
      printableStatus: printable,
      created: vmi !== undefined,
      ready,
      runStrategy: strategy,
      observedGeneration: vm.metadata.generation,
      desiredGeneration: vm.metadata.generation,
      conditions: mergeConditions(
        (status.conditions ?? []) as Condition[],
        [
          { type: "Ready", status: ready ? "True" : "False", reason: ready ? undefined : printable },
          ...(paused ? [{ type: "Paused", status: "True", reason: "PausedByUser" }] : []),
        ],
        ["Ready", "Paused"],
      ),
    };
    if (requests.length > 0) next.stateChangeRequests = requests;
    else delete next.stateChangeRequests;
    if (!isDeepStrictEqual(next, vm.status)) this.#writeStatus(this.vm, vm, next);
    if (requests.length > 0) this.#enqueue(this.vm, vm);
  }

  #reconcileVmi(vmi: KubeObject): void {
    const status = { ...((vmi.status ?? {}) as Json) };
    const index = VMI_PHASES.indexOf(status.phase as (typeof VMI_PHASES)[number]);
    if (index === VMI_PHASES.length - 1) return;
    const phase = VMI_PHASES[index + 1] as string;
    const transitions = [
      ...((status.phaseTransitionTimestamps ?? []) as Json[]),
      { phase, phaseTransitionTimestamp: now() },
    ];
    const next: Json = { ...status, phase, phaseTransitionTimestamps: transitions };
    if (phase === "Scheduled" || phase === "Running") next.nodeName = NODE_NAME;
    if (phase === "Running") {
      next.interfaces = [
        {
          name: "default",
          ipAddress: "10.244.0.17",
          ipAddresses: ["10.244.0.17"],
          mac: "52:54:00:aa:bb:cc",
          infoSource: "domain",
        },
      ];
      next.conditions = mergeConditions(
        (status.conditions ?? []) as Condition[],
        [{ type: "Ready", status: "True" }],
        ["Ready"],
      );
    }
    this.#writeStatus(this.vmi, vmi, next);
    if (phase !== "Running") this.#enqueue(this.vmi, vmi);
  }

  #reconcileDv(dv: KubeObject): void {
    const status = { ...((dv.status ?? {}) as Json) };
    const source = ((dv.spec as Json | undefined)?.source ?? {}) as Json;
    const failing = this.#failingImports.get(objectKey(dv.metadata.namespace, dv.metadata.name as string));
    const claimName = dv.metadata.name as string;
    const conditions = (
      bound: boolean,
      running: boolean,
      ready: boolean,
      reason?: string,
      message?: string,
    ) =>
      mergeConditions(
        (status.conditions ?? []) as Condition[],
        [
          { type: "Bound", status: bound ? "True" : "False", reason: bound ? "Bound" : "Pending" },
          {
            type: "Running",
            status: running ? "True" : "False",
            reason: reason ?? (running ? "Pod is running" : ""),
            message,
          },
          { type: "Ready", status: ready ? "True" : "False" },
        ],
        ["Bound", "Running", "Ready"],
      );
    let next: Json;
    const progress = parseFloat(String(status.progress ?? "0"));
    if (status.phase === "Succeeded") return;
    if (failing) {
      next = {
        ...status,
        phase: "ImportInProgress",
        progress: "N/A",
        restartCount: Number(status.restartCount ?? 0) + 1,
        conditions: conditions(true, false, false, "Error", failing),
      };
    } else if (source.blank !== undefined) {
      next = {
        ...status,
        claimName,
        phase: "Succeeded",
        progress: "100.0%",
        conditions: conditions(true, false, true, "Completed"),
      };
    } else if (source.upload !== undefined) {
      if (status.phase === "UploadReady") return;
      next = {
        ...status,
        claimName,
        phase: "UploadReady",
        progress: "N/A",
        conditions: conditions(true, true, false),
      };
    } else if (!status.phase) {
      next = { ...status, phase: "Pending", progress: "N/A", conditions: conditions(false, false, false) };
    } else if (status.phase === "Pending") {
      next = {
        ...status,
        claimName,
        phase: "ImportScheduled",
        progress: "N/A",
        conditions: conditions(true, false, false),
      };
    } else if (status.phase === "ImportScheduled") {
      next = {
        ...status,
        phase: "ImportInProgress",
        progress: "0.00%",
        conditions: conditions(true, true, false),
      };
    } else {
      // Progress advances by whole steps (0.00%, 33.33%, 66.67%, 100.0% for three).
      const step = 100 / this.#importSteps;
      const done = Number.isNaN(progress) ? 0 : Math.round(progress / step);
      const reached = Math.min(100, (done + 1) * step);
      next =
        reached >= 100
          ? {
              ...status,
              phase: "Succeeded",
              progress: "100.0%",
              conditions: conditions(true, false, true, "Completed"),
            }
          : {
              ...status,
              phase: "ImportInProgress",
              progress: `${reached.toFixed(2)}%`,
              conditions: conditions(true, true, false),
            };
    }
    this.#writeStatus(this.dv, dv, next);
    if (next.phase !== "Succeeded" && next.phase !== "UploadReady" && !failing) this.#enqueue(this.dv, dv);
  }
}

const typeKeyOf = (t: ResourceType) => `${t.group}/${t.version}/${t.resource}`;

/** DataVolumes a VM's volumes name that its dataVolumeTemplates do not create. */
function standaloneDataVolumes(spec: Json): string[] {
  const templated = new Set(
    ((spec.dataVolumeTemplates ?? []) as { metadata?: Json }[]).map((t) => String(t.metadata?.name ?? "")),
  );
  const volumes = ((((spec.template ?? {}) as Json).spec ?? {}) as Json).volumes as
    | { dataVolume?: { name?: string } }[]
    | undefined;
  return (volumes ?? [])
    .map((v) => v.dataVolume?.name)
    .filter((n): n is string => n !== undefined && !templated.has(n));
}

function runStrategy(spec: Json): string {
  if (typeof spec.runStrategy === "string") return spec.runStrategy;
  if (spec.running === true) return "Always";
  return "Halted";
}

/** Replaces the managed condition types, keeping lastTransitionTime when a condition's status is unchanged. */
function mergeConditions(current: Condition[], wanted: Condition[], managed: string[]): Condition[] {
  const kept = current.filter((c) => !managed.includes(c.type));
  const next = wanted.map((w) => {
    const before = current.find((c) => c.type === w.type);
    const condition: Condition = { type: w.type, status: w.status };
    if (w.reason) condition.reason = w.reason;
    if (w.message) condition.message = w.message;
    condition.lastTransitionTime =
      before && before.status === w.status ? (before.lastTransitionTime ?? now()) : now();
    return condition;
  });
  return [...kept, ...next];
}
