// The VM model shared by every provider (local QEMU, KubeVirt): what a user asks for, what osimg resolves
// it to against the catalog entry, and the status a provider reports.
import { z } from "zod";
import { BOOT_DEVICES, FEATURES, FIRMWARES } from "../catalog/fields.ts";

export const RUN_STRATEGIES = ["Always", "RerunOnFailure", "Manual", "Halted", "Once"] as const;
export type RunStrategy = (typeof RUN_STRATEGIES)[number];

/** POST /api/v1/namespaces/{ns}/vms: sizes default to the entry's minimums, like the Create VM dialog. */
export const VmCreateRequest = z.object({
  name: z.string().describe("the VM's name, a DNS-1123 label"),
  image: z.string().describe("the catalog entry's OS_NAME (or its id)"),
  cpu: z.number().int().optional().describe("vCPUs; default: the entry's MIN_VCPU, else 1"),
  memory: z
    .string()
    .optional()
    .describe('memory as a quantity ("2G", "2Gi"); default: the entry\'s MIN_MEMORY, else 1Gi'),
  storage: z
    .string()
    .optional()
    .describe("root disk size; default: the entry's MIN_STORAGE, else the image's size"),
  sshKeys: z.array(z.string()).max(32).default([]),
  password: z.string().max(256).optional().describe("a password for CLOUD_USER; never returned by the API"),
  cloudInit: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe(
      "the VM's cloud-init in place of the entry's CLOUD_INIT (the Create VM dialog's editor, prefilled with it); default: the entry's",
    ),
  userData: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe("#cloud-config merged over the entry's CLOUD_INIT (or over cloudInit when given)"),
  runStrategy: z.enum(RUN_STRATEGIES).default("Always"),
});
export type VmCreateRequest = z.input<typeof VmCreateRequest>;

/** The catalog entry's part of a VM: enough to create it without the catalog (which may change later). */
export const VmImage = z.object({
  entryId: z.string(),
  osName: z.string(),
  url: z.string(),
  sha256: z.string().optional(),
  containerDisk: z.object({ repo: z.string(), tag: z.string().optional() }).optional(),
  cloudUser: z.string(),
  cloudInit: z.string().optional(),
  firmware: z.enum(FIRMWARES),
  machineType: z.string().optional(),
  features: z.array(z.enum(FEATURES)),
  bootOrder: z.array(z.enum(BOOT_DEVICES)),
  additionalDisks: z.array(z.string()),
});
export type VmImage = z.infer<typeof VmImage>;

/** A validated request, resolved against its entry: what providers create. */
export const VmSpec = z.object({
  namespace: z.string(),
  name: z.string(),
  image: VmImage,
  cpu: z.number().int().positive(),
  memory: z.string(),
  memoryBytes: z.number().int().positive(),
  storage: z.string(),
  storageBytes: z.number().int().positive(),
  sshKeys: z.array(z.string()),
  /** Kept by the provider as a secret (0600 file, Secret); never in API responses. */
  password: z.string().optional(),
  userData: z.string().optional(),
  runStrategy: z.enum(RUN_STRATEGIES),
});
export type VmSpec = z.infer<typeof VmSpec>;

export const VM_PHASES = [
  "Provisioning",
  "Starting",
  "Running",
  "Ready",
  "Paused",
  "Stopping",
  "Stopped",
  "Failed",
] as const;
export type VmPhase = (typeof VM_PHASES)[number];

export const VmCondition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string().optional(),
  lastTransitionTime: z.string(),
});
export type VmCondition = z.infer<typeof VmCondition>;

export const VmStatus = z.object({
  phase: z.enum(VM_PHASES),
  conditions: z.array(VmCondition),
  ipAddresses: z.array(z.string()),
  /** Percent of the root disk imported or pulled, while that is under way. */
  importProgress: z.number().min(0).max(100).optional(),
  /** What the provider runs the VM on (e.g. "qemu tcg, machine q35"), and notes such as a mapped machine type. */
  runtime: z.string().optional(),
  notes: z.array(z.string()),
  consoles: z.object({ serial: z.string(), vnc: z.string() }),
  ssh: z.object({ host: z.string(), port: z.number(), user: z.string() }).optional(),
  startedAt: z.string().optional(),
  readyAt: z.string().optional(),
  timeToReadyMs: z.number().optional(),
});
export type VmStatus = z.infer<typeof VmStatus>;

export const Vm = z.object({
  namespace: z.string(),
  name: z.string(),
  provider: z.string(),
  createdAt: z.string(),
  spec: VmSpec.omit({ password: true }).extend({ hasPassword: z.boolean() }),
  status: VmStatus,
});
export type Vm = z.infer<typeof Vm>;

export const VM_EVENT_TYPES = ["Normal", "Warning"] as const;
export type VmEventType = (typeof VM_EVENT_TYPES)[number];

/**
 * Something that happened to a VM, like a Kubernetes Event: a phase or condition change, a requested
 * action, a failure. The same event happening again right after itself is one event with a higher count.
 */
export const VmEvent = z.object({
  time: z.string().describe("when it last happened (ISO 8601)"),
  firstTime: z.string().optional().describe("when the first of `count` repeats happened, if earlier"),
  type: z.enum(VM_EVENT_TYPES).describe("Warning for failures, else Normal"),
  reason: z.string().describe('a short CamelCase word, e.g. "Ready", "ImagePullFailed"'),
  message: z.string(),
  count: z.number().int().positive().describe("how many times in a row it happened"),
  source: z
    .string()
    .describe(
      'who reported it: "osimg-qemu", or the Kubernetes component (e.g. "virtualmachine-controller")',
    ),
  object: z
    .object({ kind: z.string(), name: z.string() })
    .optional()
    .describe("what it is about when not the VM itself (KubeVirt: its instance, a DataVolume, a PVC)"),
});
export type VmEvent = z.infer<typeof VmEvent>;

export const VM_ACTIONS = ["start", "stop", "restart", "pause", "unpause"] as const;
export type VmAction = (typeof VM_ACTIONS)[number];

/** Which actions make sense in a phase (the UI disables the others; the API refuses them with 409). */
export function allowedActions(phase: VmPhase): VmAction[] {
  switch (phase) {
    case "Stopped":
    case "Failed":
      return ["start"];
    case "Paused":
      return ["unpause", "stop"];
    case "Running":
    case "Ready":
      return ["stop", "restart", "pause"];
    case "Starting":
    case "Provisioning":
      return ["stop"];
    case "Stopping":
      return [];
  }
}

export function publicSpec(spec: VmSpec): Vm["spec"] {
  const { password, ...rest } = spec;
  return { ...rest, hasPassword: password !== undefined };
}
