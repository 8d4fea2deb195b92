// The guest requirements of KubeVirt's common-instancetypes preferences (VirtualMachineClusterPreference
// spec.requirements), by preference name. An entry whose OS_FAMILY_ID names one of them and asks for less
// would create VMs that KubeVirt's admission refuses when the preference is used.

import { parseQuantity } from "../units/quantity.ts";
import requirements from "./kubevirt-preferences.json" with { type: "json" };

export interface GuestRequirements {
  cpu?: number;
  memoryBytes?: number;
  memory?: string;
}

const TABLE = requirements as Record<string, { cpu?: number; memory?: string }>;

export function preferenceRequirements(name: string): GuestRequirements | undefined {
  const found = TABLE[name];
  if (!found) return undefined;
  const memory = found.memory ? parseQuantity(found.memory) : undefined;
  return {
    cpu: found.cpu,
    memory: found.memory,
    memoryBytes: memory?.ok ? memory.quantity.value : undefined,
  };
}

export const PREFERENCE_NAMES: readonly string[] = Object.keys(TABLE);
