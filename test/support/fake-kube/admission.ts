// KubeVirt's admission rules that the schema cannot express, as its validating webhooks apply them to
// VirtualMachines (on spec.template.spec) and VirtualMachineInstances (on spec). Pure: object in, field
// errors out. The rules are those listed in shared/reference/README.md, from KubeVirt's admitters.
import { parseQuantity } from "../../../src/units/quantity.ts";
import type { StatusCause } from "./status.ts";

export const CLOUD_INIT_INLINE_LIMIT = 2048;
export const RUN_STRATEGIES = ["Always", "RerunOnFailure", "Manual", "Halted", "Once"] as const;
export const MIN_SPINLOCKS = 4096;

export interface AdmissionOptions {
  /** KubeVirt's `vmStateStorageClass`: a persistent TPM or EFI store needs one; undefined means none set. */
  vmStateStorageClass?: string;
}

type Json = Record<string, unknown>;

const obj = (value: unknown): Json | undefined =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : undefined;
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

const invalid = (field: string, value: unknown, message: string): StatusCause => ({
  reason: "FieldValueInvalid",
  field,
  message: `Invalid value: ${JSON.stringify(value)}: ${message}`,
});

/** A Hyper-V feature is on when present and not `enabled: false`. */
const enabled = (feature: unknown): boolean => obj(feature) !== undefined && obj(feature)?.enabled !== false;

export function admitVirtualMachine(vm: Json, options: AdmissionOptions = {}): StatusCause[] {
  const spec = obj(vm.spec) ?? {};
  const causes: StatusCause[] = [];
  if (spec.runStrategy !== undefined) {
    if (!RUN_STRATEGIES.includes(spec.runStrategy as (typeof RUN_STRATEGIES)[number])) {
      causes.push({
        reason: "FieldValueNotSupported",
        field: "spec.runStrategy",
        message: `Unsupported value: ${JSON.stringify(spec.runStrategy)}: supported values: ${RUN_STRATEGIES.map((s) => `"${s}"`).join(", ")}`,
      });
    }
    if (spec.running !== undefined) {
      causes.push(
        invalid(
          "spec.running",
          spec.running,
          "Running and RunStrategy are mutually exclusive; use runStrategy",
        ),
      );
    }
  }
  const template = obj(obj(spec.template)?.spec);
  if (template) causes.push(...admitInstanceSpec(template, "spec.template.spec", options));
  return causes;
}

export function admitVirtualMachineInstance(vmi: Json, options: AdmissionOptions = {}): StatusCause[] {
  return admitInstanceSpec(obj(vmi.spec) ?? {}, "spec", options);
}

function admitInstanceSpec(spec: Json, path: string, options: AdmissionOptions): StatusCause[] {
  return [...cloudInitLimits(spec, path), ...firmwareRules(spec, path, options), ...hypervRules(spec, path)];
}

function cloudInitLimits(spec: Json, path: string): StatusCause[] {
  const causes: StatusCause[] = [];
  list(spec.volumes).forEach((volume, index) => {
    for (const source of ["cloudInitNoCloud", "cloudInitConfigDrive"]) {
      const data = obj(obj(volume)?.[source]);
      if (!data) continue;
      const base = `${path}.volumes[${index}].${source}`;
      for (const key of ["userData", "networkData"]) {
        const inline = inlineData(data, key);
        if (inline && inline.bytes > CLOUD_INIT_INLINE_LIMIT) {
          const bytes = inline.bytes;
          causes.push({
            reason: "FieldValueTooLong",
            field: `${base}.${inline.field}`,
            message: `Too long: ${key} size ${bytes} bytes exceeds the ${CLOUD_INIT_INLINE_LIMIT} byte limit; use ${key}SecretRef`,
          });
        }
      }
    }
  });
  return causes;
}

/** Inline cloud-init data, plain or base64, with its (decoded) size. */
function inlineData(data: Json, key: string): { field: string; bytes: number } | undefined {
  const plain = data[key];
  if (typeof plain === "string") return { field: key, bytes: Buffer.byteLength(plain, "utf8") };
  const encoded = data[`${key}Base64`];
  if (typeof encoded === "string")
    return { field: `${key}Base64`, bytes: Buffer.from(encoded, "base64").length };
  return undefined;
}

function firmwareRules(spec: Json, path: string, options: AdmissionOptions): StatusCause[] {
  const causes: StatusCause[] = [];
  const domain = obj(spec.domain) ?? {};
  const efi = obj(obj(obj(domain.firmware)?.bootloader)?.efi);
  const smm = obj(obj(domain.features)?.smm);
  // secureBoot defaults to true when the EFI bootloader is chosen.
  if (efi && efi.secureBoot !== false && (!smm || smm.enabled === false)) {
    causes.push(
      invalid(
        `${path}.domain.firmware.bootloader.efi.secureBoot`,
        efi.secureBoot ?? true,
        `EFI secure boot requires SMM: set ${path}.domain.features.smm: {} or secureBoot: false`,
      ),
    );
  }
  const tpm = obj(obj(domain.devices)?.tpm);
  const persistentState = [
    ["devices.tpm.persistent", tpm?.persistent === true],
    ["firmware.bootloader.efi.persistent", efi?.persistent === true],
  ] as const;
  for (const [field, persistent] of persistentState) {
    if (persistent && !options.vmStateStorageClass) {
      causes.push(
        invalid(
          `${path}.domain.${field}`,
          true,
          "persistent VM state needs a storage class: set vmStateStorageClass in the KubeVirt configuration",
        ),
      );
    }
  }
  return causes;
}

/** Feature → the features it needs, from KubeVirt's Hyper-V dependency checks. */
const HYPERV_DEPENDENCIES: readonly [string, string][] = [
  ["reset", "synic"],
  ["tlbflush", "vpindex"],
  ["ipi", "vpindex"],
  ["evmcs", "vapic"],
];

function hypervRules(spec: Json, path: string): StatusCause[] {
  const hyperv = obj(obj(obj(spec.domain)?.features)?.hyperv);
  if (!hyperv) return [];
  const base = `${path}.domain.features.hyperv`;
  const causes: StatusCause[] = [];
  const spinlocks = obj(hyperv.spinlocks);
  if (
    enabled(spinlocks) &&
    spinlocks?.spinlocks !== undefined &&
    Number(spinlocks.spinlocks) < MIN_SPINLOCKS
  ) {
    causes.push(
      invalid(
        `${base}.spinlocks.spinlocks`,
        spinlocks.spinlocks,
        `spinlocks retries must be at least ${MIN_SPINLOCKS}`,
      ),
    );
  }
  for (const [feature, needs] of HYPERV_DEPENDENCIES) {
    if (enabled(hyperv[feature]) && !enabled(hyperv[needs])) {
      causes.push(
        invalid(
          `${base}.${feature}`,
          hyperv[feature],
          `"${feature}" requires "${needs}" to be enabled: add ${base}.${needs}: {}`,
        ),
      );
    }
  }
  return causes;
}

/** The preference a VirtualMachine references (spec.preference), when it names a cluster-wide one. */
export function referencedClusterPreference(vm: Json): string | undefined {
  const preference = obj(obj(vm.spec)?.preference);
  if (!preference || typeof preference.name !== "string") return undefined;
  const kind = String(preference.kind ?? "VirtualMachineClusterPreference").toLowerCase();
  return kind === "virtualmachineclusterpreference" || kind === "virtualmachineclusterpreferences"
    ? preference.name
    : undefined;
}

const quantityBytes = (value: unknown): number | undefined => {
  const parsed = parseQuantity(String(value));
  return parsed.ok ? parsed.quantity.value : undefined;
};

/**
 * KubeVirt's check of a VM against its preference's spec.requirements (pkg/instancetype/preference/
 * requirements): the guest's vCPUs (sockets × cores × threads) and memory must reach them. `preference`
 * undefined: the referenced preference does not exist.
 */
export function admitPreference(vm: Json, name: string, preference: Json | undefined): StatusCause[] {
  if (!preference)
    return [
      invalid(
        "spec.preference.name",
        name,
        `failure to find preference: virtualmachineclusterpreferences.instancetype.kubevirt.io "${name}" not found`,
      ),
    ];
  const requirements = obj(obj(preference.spec)?.requirements);
  if (!requirements) return [];
  const domain = obj(obj(obj(obj(vm.spec)?.template)?.spec)?.domain) ?? {};
  const causes: StatusCause[] = [];
  const cpu = obj(domain.cpu) ?? {};
  const vcpus = ["sockets", "cores", "threads"].reduce((n, k) => n * (Number(cpu[k] ?? 1) || 1), 1);
  const neededCpu = Number(obj(requirements.cpu)?.guest ?? 0);
  if (vcpus < neededCpu)
    causes.push(
      invalid(
        "spec.template.spec.domain.cpu",
        vcpus,
        `failure checking preference requirements: insufficient CPU resources of ${vcpus} vCPU provided by VirtualMachine spec, preference requires ${neededCpu} vCPU`,
      ),
    );
  const neededMemory = obj(requirements.memory)?.guest;
  const guest = obj(domain.memory)?.guest;
  const have = guest === undefined ? 0 : (quantityBytes(guest) ?? 0);
  const need = neededMemory === undefined ? 0 : (quantityBytes(neededMemory) ?? 0);
  if (have < need)
    causes.push(
      invalid(
        "spec.template.spec.domain.memory.guest",
        guest,
        `failure checking preference requirements: insufficient Memory resources of ${String(guest)} provided by VirtualMachine spec, preference requires ${String(neededMemory)}`,
      ),
    );
  return causes;
}
