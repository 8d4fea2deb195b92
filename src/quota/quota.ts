// Project quotas, pure: the quota file's model (per project, and a default for projects not named), a
// project's usage from its VMs, and what a new VM would exceed. Every VM counts, whatever its phase: a
// stopped VM keeps its disk and can be started again at any time.
//
//   # quotas.yaml
//   default: { vms: 10, cpu: 16, memory: 32Gi, storage: 500G }
//   projects:
//     demo: { vms: 2, memory: 8Gi }     # fields not given come from default
import { parseDocument } from "yaml";
import { z } from "zod";
import { formatBytes, parseQuantity } from "../units/quantity.ts";
import { isDns1123Label } from "../util/names.ts";
import type { Vm } from "../vms/model.ts";

const Count = z.number().int().nonnegative();
const QuantityText = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .superRefine((text, ctx) => {
    const parsed = parseQuantity(text);
    if (!parsed.ok)
      ctx.addIssue({ code: "custom", message: `${parsed.message}${parsed.hint ? ` (${parsed.hint})` : ""}` });
  });

export const QuotaLimitsInput = z.strictObject({
  vms: Count.optional(),
  cpu: Count.optional(),
  memory: QuantityText.optional(),
  storage: QuantityText.optional(),
});

export const QuotaFileInput = z.strictObject({
  default: QuotaLimitsInput.optional(),
  projects: z.record(z.string(), QuotaLimitsInput).default({}),
});

export const RESOURCES = ["vms", "cpu", "memory", "storage"] as const;
export type QuotaResource = (typeof RESOURCES)[number];

/** Limits of one project; an absent field is unlimited. Quantities as written, and in bytes. */
export interface QuotaLimits {
  vms?: number;
  cpu?: number;
  memory?: string;
  storage?: string;
}

export interface QuotaConfig {
  default?: QuotaLimits;
  projects: Record<string, QuotaLimits>;
}

export interface Usage {
  vms: number;
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
}

export interface Demand {
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
}

export interface Exceeded {
  resource: QuotaResource;
  limit: string;
  used: string;
  requested: string;
}

export class QuotaConfigError extends Error {
  override name = "QuotaConfigError";
}

/** Parses the quota file; errors name the file, line:column and field. */
export function parseQuotaConfig(text: string, location: string): QuotaConfig {
  const doc = parseDocument(text, { keepSourceTokens: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e?.linePos?.[0];
    throw new QuotaConfigError(
      `${location}:${pos?.line ?? 1}:${pos?.col ?? 1}: ${e?.message.split("\n")[0]}`,
    );
  }
  const parsed = QuotaFileInput.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path ?? [];
    const node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
    const offset = node?.range?.[0];
    const where = offset === undefined ? "" : `:${lineCol(text, offset)}`;
    throw new QuotaConfigError(
      `${location}${where}: ${path.join(".") || "(top)"}: ${issue?.message}; fields: ${RESOURCES.join(", ")} (e.g. memory: 8Gi)`,
    );
  }
  for (const name of Object.keys(parsed.data.projects))
    if (!isDns1123Label(name))
      throw new QuotaConfigError(
        `${location}: projects.${name}: a project is a namespace name (DNS-1123 label)`,
      );
  return parsed.data as QuotaConfig;
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
}

/** A project's limits: its own fields over the default's. Undefined: no quota at all. */
export function limitsFor(config: QuotaConfig, namespace: string): QuotaLimits | undefined {
  const own = config.projects[namespace];
  if (!own && !config.default) return undefined;
  return { ...config.default, ...own };
}

export function usageOf(vms: readonly Pick<Vm, "spec">[]): Usage {
  return vms.reduce<Usage>(
    (u, vm) => ({
      vms: u.vms + 1,
      cpu: u.cpu + vm.spec.cpu,
      memoryBytes: u.memoryBytes + vm.spec.memoryBytes,
      storageBytes: u.storageBytes + vm.spec.storageBytes,
    }),
    { vms: 0, cpu: 0, memoryBytes: 0, storageBytes: 0 },
  );
}

export function addDemand(usage: Usage, demand: Demand): Usage {
  return {
    vms: usage.vms + 1,
    cpu: usage.cpu + demand.cpu,
    memoryBytes: usage.memoryBytes + demand.memoryBytes,
    storageBytes: usage.storageBytes + demand.storageBytes,
  };
}

const bytesOf = (text: string) => {
  const parsed = parseQuantity(text);
  return parsed.ok ? parsed.quantity.value : 0;
};

/** What one more VM of `demand` would exceed, with the limit, the usage and the request of each. */
export function exceeded(limits: QuotaLimits, usage: Usage, demand: Demand): Exceeded[] {
  const out: Exceeded[] = [];
  if (limits.vms !== undefined && usage.vms + 1 > limits.vms)
    out.push({ resource: "vms", limit: String(limits.vms), used: String(usage.vms), requested: "1" });
  if (limits.cpu !== undefined && usage.cpu + demand.cpu > limits.cpu)
    out.push({
      resource: "cpu",
      limit: String(limits.cpu),
      used: String(usage.cpu),
      requested: String(demand.cpu),
    });
  for (const [resource, used, requested] of [
    ["memory", usage.memoryBytes, demand.memoryBytes],
    ["storage", usage.storageBytes, demand.storageBytes],
  ] as const) {
    const limit = limits[resource];
    if (limit !== undefined && used + requested > bytesOf(limit))
      out.push({ resource, limit, used: formatBytes(used), requested: formatBytes(requested) });
  }
  return out;
}

/** The limits with byte values, for the quota endpoint and the UI. */
export function describeLimits(
  limits: QuotaLimits,
): QuotaLimits & { memoryBytes?: number; storageBytes?: number } {
  return {
    ...limits,
    ...(limits.memory !== undefined ? { memoryBytes: bytesOf(limits.memory) } : {}),
    ...(limits.storage !== undefined ? { storageBytes: bytesOf(limits.storage) } : {}),
  };
}
