// A catalog entry as a VirtualMachineClusterPreference (instancetype.kubevirt.io/v1beta1): its minimums as
// `requirements` (so KubeVirt's own admission refuses a VM below them, whoever creates it), and its
// firmware, machine type, features and TPM as preferred values. Pure; `osimg catalog export
// --preferences` prints them, and VMs reference them when the preferences setting is on.
import type { CatalogEntry } from "../../../catalog/model.ts";
import {
  HYPERV_ENLIGHTENMENTS,
  HYPERV_TIMER,
  MANAGED_BY,
  OS_NAME_ANNOTATION,
  preferenceName,
  toYaml,
} from "./manifests.ts";

type Empty = Record<string, never>;

export interface VirtualMachineClusterPreference {
  apiVersion: "instancetype.kubevirt.io/v1beta1";
  kind: "VirtualMachineClusterPreference";
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    requirements?: { cpu?: { guest: number }; memory?: { guest: string } };
    firmware: { preferredUseBios: true } | { preferredEfi: { secureBoot: boolean; persistent?: true } };
    machine?: { preferredMachineType: string };
    features?: {
      preferredAcpi?: Empty;
      preferredApic?: Empty;
      preferredSmm?: Empty;
      preferredHyperv?: typeof HYPERV_ENLIGHTENMENTS;
    };
    clock?: { preferredClockOffset: { utc: Empty }; preferredTimer: typeof HYPERV_TIMER };
    devices?: { preferredTPM: { persistent: true } };
  };
}

export function buildPreference(entry: CatalogEntry): VirtualMachineClusterPreference {
  const s = entry.spec;
  const has = (f: (typeof s.features)[number]) => s.features.includes(f);
  const requirements: NonNullable<VirtualMachineClusterPreference["spec"]["requirements"]> = {};
  if (s.minVcpu !== undefined) requirements.cpu = { guest: s.minVcpu };
  if (s.minMemoryBytes !== undefined) requirements.memory = { guest: String(entry.values.MIN_MEMORY) };
  const spec: VirtualMachineClusterPreference["spec"] = {
    ...(Object.keys(requirements).length > 0 ? { requirements } : {}),
    firmware:
      s.firmware === "efi"
        ? { preferredEfi: { secureBoot: has("smm"), ...(has("tpm") ? { persistent: true as const } : {}) } }
        : { preferredUseBios: true },
  };
  if (s.machineType) spec.machine = { preferredMachineType: s.machineType };
  const features: NonNullable<VirtualMachineClusterPreference["spec"]["features"]> = {};
  if (has("acpi")) features.preferredAcpi = {};
  if (has("apic")) features.preferredApic = {};
  if (has("smm")) features.preferredSmm = {};
  if (has("hyperv")) {
    features.preferredHyperv = HYPERV_ENLIGHTENMENTS;
    spec.clock = { preferredClockOffset: { utc: {} }, preferredTimer: HYPERV_TIMER };
  }
  if (Object.keys(features).length > 0) spec.features = features;
  if (has("tpm")) spec.devices = { preferredTPM: { persistent: true } };
  return {
    apiVersion: "instancetype.kubevirt.io/v1beta1",
    kind: "VirtualMachineClusterPreference",
    metadata: {
      name: preferenceName(entry.id),
      labels: { ...MANAGED_BY },
      annotations: { [OS_NAME_ANNOTATION]: s.name as string },
    },
    spec,
  };
}

/** The preferences of every valid entry, as one YAML stream for `kubectl apply -f`. */
export function preferencesYaml(entries: readonly CatalogEntry[]): string {
  return entries
    .filter((e) => e.valid)
    .map((e) => `---\n${toYaml(buildPreference(e))}`)
    .join("");
}
