// A VM's status from what KubeVirt and CDI report: the VirtualMachine (printableStatus, ready, conditions),
// its VirtualMachineInstance (phase, node, interfaces, pause) and its DataVolumes (import phase and
// progress), mapped to the phases and conditions every provider shares. Pure.
import { Vm, type VmCondition, type VmPhase, type VmStatus } from "../../model.ts";
import { SPEC_ANNOTATION, VM_LABEL } from "./manifests.ts";

export interface KubeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

interface Metadata {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { uid: string }[];
}

export interface KubeVirtualMachine {
  metadata: Metadata;
  spec?: { runStrategy?: string; dataVolumeTemplates?: { metadata?: { name?: string } }[] };
  status?: {
    printableStatus?: string;
    ready?: boolean;
    created?: boolean;
    conditions?: KubeCondition[];
  };
}

export interface KubeVirtualMachineInstance {
  metadata: Metadata;
  status?: {
    phase?: string;
    nodeName?: string;
    conditions?: KubeCondition[];
    interfaces?: { name?: string; ipAddress?: string; ipAddresses?: string[] }[];
    phaseTransitionTimestamps?: { phase?: string; phaseTransitionTimestamp?: string }[];
  };
}

export interface KubeDataVolume {
  metadata: Metadata;
  spec?: { source?: Record<string, unknown> };
  status?: { phase?: string; progress?: string; restartCount?: number; conditions?: KubeCondition[] };
}

/** printableStatus values that mean the VM cannot run until someone acts. */
const FAILED_STATUSES = new Set([
  "CrashLoopBackOff",
  "FailedUnschedulable",
  "ErrorUnschedulable",
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrorPvcNotFound",
  "ErrorDataVolumeNotFound",
  "DataVolumeError",
]);

const isTrue = (conditions: KubeCondition[] | undefined, type: string) =>
  conditions?.some((c) => c.type === type && c.status === "True") ?? false;

/** The DataVolumes that import the image (not the blank root disk of an installer). */
function importing(dataVolumes: readonly KubeDataVolume[]): KubeDataVolume[] {
  return dataVolumes.filter((dv) => dv.spec?.source === undefined || !("blank" in dv.spec.source));
}

/** "33.33%" → 33.33; "N/A" and anything else → undefined. */
export function parseProgress(progress: string | undefined): number | undefined {
  const match = /^(\d+(?:\.\d+)?)%$/.exec(progress ?? "");
  if (!match) return undefined;
  return Math.min(100, Math.max(0, Number(match[1])));
}

export function phaseOf(
  vm: KubeVirtualMachine,
  vmi: KubeVirtualMachineInstance | undefined,
  dataVolumes: readonly KubeDataVolume[],
): VmPhase {
  const printable = vm.status?.printableStatus;
  const paused = isTrue(vmi?.status?.conditions, "Paused");
  if (dataVolumes.some((dv) => dv.status?.phase === "Failed")) return "Failed";
  if (vmi?.status?.phase === "Failed") return "Failed";
  if (printable && FAILED_STATUSES.has(printable)) return "Failed";
  switch (printable) {
    case "Stopped":
      return "Stopped";
    case "Provisioning":
    case "WaitingForVolumeBinding":
      return "Provisioning";
    case "Starting":
      return "Starting";
    case "Paused":
      return "Paused";
    case "Stopping":
    case "Terminating":
      return "Stopping";
    case "Running":
    case "Migrating":
      // The VM's status lags its instance's: a restart's new instance is not running yet.
      if (vmi?.status?.phase !== "Running") return "Starting";
      return paused ? "Paused" : vm.status?.ready ? "Ready" : "Running";
  }
  // No status yet (just created): what the imports and the run strategy say.
  const imported = new Set(
    dataVolumes.filter((dv) => dv.status?.phase === "Succeeded").map((dv) => dv.metadata.name),
  );
  const templates = (vm.spec?.dataVolumeTemplates ?? []).map((t) => t.metadata?.name);
  if (
    dataVolumes.some((dv) => dv.status?.phase !== "Succeeded") ||
    templates.some((name) => !imported.has(name))
  )
    return "Provisioning";
  const strategy = vm.spec?.runStrategy;
  if (!vmi && (strategy === "Halted" || strategy === "Manual")) return "Stopped";
  return "Starting";
}

function condition(c: KubeCondition, fallbackTime: string): VmCondition {
  const status = c.status === "True" || c.status === "False" ? c.status : "Unknown";
  return {
    type: c.type,
    status,
    reason: c.reason || (status === "True" ? c.type : `Not${c.type}`),
    ...(c.message ? { message: c.message } : {}),
    lastTransitionTime: c.lastTransitionTime ?? fallbackTime,
  };
}

/** The VmSpec recorded on the VirtualMachine; undefined when the VM was not made by osimg. */
export function recordedSpec(vm: KubeVirtualMachine): Vm["spec"] | undefined {
  const text = vm.metadata.annotations?.[SPEC_ANNOTATION];
  if (!text) return undefined;
  try {
    const parsed = Vm.shape.spec.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function statusOf(
  vm: KubeVirtualMachine,
  vmi: KubeVirtualMachineInstance | undefined,
  dataVolumes: readonly KubeDataVolume[],
): VmStatus {
  const created = vm.metadata.creationTimestamp ?? new Date(0).toISOString();
  const phase = phaseOf(vm, vmi, dataVolumes);
  const conditions = (vm.status?.conditions ?? []).map((c) => condition(c, created));
  const notes: string[] = [];
  let importProgress: number | undefined;
  for (const dv of importing(dataVolumes)) {
    const name = dv.metadata.name ?? "";
    const dvPhase = dv.status?.phase ?? "Pending";
    const running = dv.status?.conditions?.find((c) => c.type === "Running");
    const failing = running?.status === "False" && running.reason === "Error";
    conditions.push({
      type: "ImageImported",
      status: dvPhase === "Succeeded" ? "True" : "False",
      reason: failing ? "ImportFailing" : dvPhase,
      message: failing
        ? `DataVolume ${name}: ${running.message ?? "the import fails"} (attempt ${(dv.status?.restartCount ?? 0) + 1}; CDI retries)`
        : `DataVolume ${name}: ${dvPhase}${dv.status?.progress && dv.status.progress !== "N/A" ? ` ${dv.status.progress}` : ""}`,
      lastTransitionTime: running?.lastTransitionTime ?? created,
    });
    if (failing) notes.push(`importing the image fails: ${running.message ?? `see DataVolume ${name}`}`);
    if (dvPhase !== "Succeeded") {
      const progress = parseProgress(dv.status?.progress) ?? 0;
      importProgress = Math.min(importProgress ?? 100, progress);
    }
  }
  const base = `/api/v1/namespaces/${vm.metadata.namespace}/vms/${vm.metadata.name}`;
  const startedAt = vmi?.status?.phaseTransitionTimestamps?.find(
    (t) => t.phase === "Running",
  )?.phaseTransitionTimestamp;
  const ready =
    phase === "Ready" ? conditions.find((c) => c.type === "Ready" && c.status === "True") : undefined;
  const readyAt = ready?.lastTransitionTime;
  const vmiCreated = vmi?.metadata.creationTimestamp;
  return {
    phase,
    conditions,
    ipAddresses: [
      ...new Set(
        (vmi?.status?.interfaces ?? []).flatMap((i) => i.ipAddresses ?? (i.ipAddress ? [i.ipAddress] : [])),
      ),
    ],
    ...(phase === "Provisioning" && importProgress !== undefined ? { importProgress } : {}),
    runtime: vmi?.status?.nodeName ? `KubeVirt, node ${vmi.status.nodeName}` : "KubeVirt",
    notes,
    consoles: { serial: `${base}/console`, vnc: `${base}/vnc` },
    ...(startedAt ? { startedAt } : {}),
    ...(readyAt ? { readyAt } : {}),
    ...(readyAt && vmiCreated
      ? { timeToReadyMs: Math.max(0, Date.parse(readyAt) - Date.parse(vmiCreated)) }
      : {}),
  };
}

/** The VM a DataVolume or instance belongs to. */
export function ownerVmName(object: { metadata: Metadata }): string | undefined {
  return object.metadata.labels?.[VM_LABEL];
}
