// A VM's Kubernetes Events (core/v1) as osimg's VM events: those about the VirtualMachine, its instance
// (the VirtualMachineInstance of the same name) and its disks: the DataVolumes osimg created and the PVCs
// CDI creates for them (named like their DataVolume). Pure: the provider lists, this file selects and maps.
import type { CoreV1Event } from "@kubernetes/client-node";
import type { VmEvent } from "../../model.ts";
import type { KubeDataVolume, KubeVirtualMachine } from "./status.ts";

/** One name to list Events for (a field selector on involvedObject.name), and the kinds that count. */
export interface EventTarget {
  name: string;
  kinds: readonly string[];
}

const VM_KINDS = ["VirtualMachine", "VirtualMachineInstance"] as const;
const DISK_KINDS = ["DataVolume", "PersistentVolumeClaim"] as const;

/** The volumes of a VM's template, as far as naming its disks goes. */
interface TemplateVolumes {
  spec?: {
    template?: {
      spec?: {
        volumes?: { dataVolume?: { name?: string }; persistentVolumeClaim?: { claimName?: string } }[];
      };
    };
  };
}

/** What a VM's Events are about: the VM and its instance, then each disk (DataVolume and its PVC). */
export function eventTargets(vm: KubeVirtualMachine, dataVolumes: readonly KubeDataVolume[]): EventTarget[] {
  const name = vm.metadata.name as string;
  const disks = new Set<string>();
  for (const dv of dataVolumes) if (dv.metadata.name) disks.add(dv.metadata.name);
  for (const template of vm.spec?.dataVolumeTemplates ?? [])
    if (template.metadata?.name) disks.add(template.metadata.name);
  for (const volume of (vm as TemplateVolumes).spec?.template?.spec?.volumes ?? []) {
    const disk = volume.dataVolume?.name ?? volume.persistentVolumeClaim?.claimName;
    if (disk) disks.add(disk);
  }
  disks.delete(name);
  return [{ name, kinds: VM_KINDS }, ...[...disks].sort().map((disk) => ({ name: disk, kinds: DISK_KINDS }))];
}

/** The field selector that lists a target's Events (kube-apiserver supports it for core/v1 Events). */
export const eventFieldSelector = (target: EventTarget) => `involvedObject.name=${target.name}`;

/** The client library gives Dates; raw JSON gives strings. */
function iso(value: Date | string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

export function vmEventOf(event: CoreV1Event, vmName: string): VmEvent {
  const last =
    iso(event.lastTimestamp) ??
    iso(event.series?.lastObservedTime) ??
    iso(event.eventTime) ??
    iso(event.firstTimestamp) ??
    iso(event.metadata?.creationTimestamp) ??
    new Date(0).toISOString();
  const first = iso(event.firstTimestamp) ?? iso(event.eventTime);
  const kind = event.involvedObject.kind ?? "";
  const objectName = event.involvedObject.name ?? "";
  return {
    time: last,
    ...(first && first < last ? { firstTime: first } : {}),
    type: event.type === "Warning" ? "Warning" : "Normal",
    reason: event.reason ?? "",
    message: event.message ?? "",
    count: Math.max(1, event.count ?? event.series?.count ?? 1),
    source: event.reportingComponent || event.source?.component || kind || "kubernetes",
    ...(kind === "VirtualMachine" && objectName === vmName ? {} : { object: { kind, name: objectName } }),
  };
}

/** As many as the local provider keeps per VM: the newest. */
export const MAX_VM_EVENTS = 200;

/**
 * The Events of a VM, oldest first (the newest MAX_VM_EVENTS), from what was listed for each target:
 * only those about the target's kinds in the VM's namespace (an unrelated Pod or ConfigMap may share a
 * name).
 */
export function vmEventsOf(
  namespace: string,
  vmName: string,
  listed: readonly { target: EventTarget; events: readonly CoreV1Event[] }[],
): VmEvent[] {
  const seen = new Set<string>();
  const events: VmEvent[] = [];
  for (const { target, events: items } of listed) {
    for (const event of items) {
      const involved = event.involvedObject;
      if (involved.name !== target.name || !target.kinds.includes(involved.kind ?? "")) continue;
      if ((involved.namespace ?? event.metadata?.namespace ?? namespace) !== namespace) continue;
      const id = event.metadata?.uid ?? event.metadata?.name;
      if (id !== undefined) {
        if (seen.has(id)) continue;
        seen.add(id);
      }
      events.push(vmEventOf(event, vmName));
    }
  }
  const since = (e: VmEvent) => e.firstTime ?? e.time;
  events.sort((a, b) => a.time.localeCompare(b.time) || since(a).localeCompare(since(b)));
  return events.slice(-MAX_VM_EVENTS);
}
