// Quotas enforced at VM create, atomically per project: "usage from the provider's list + check +
// provider.create" runs one at a time per project, so two concurrent creates cannot both pass a quota
// that only one fits. VMs just created are counted until the provider's list shows them (a provider that
// lists from a watch cache may lag behind its own create). The limits come from a YAML file (re-read when
// it changes) or, on Kubernetes, a ConfigMap's data["quotas.yaml"] (read at most every few seconds).
import { readFile, stat } from "node:fs/promises";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeFailure, type ObjectRef } from "../kube/client.ts";
import { ApiError } from "../server/errors.ts";
import type { CallIdentity, VmProvider } from "../vms/provider.ts";
import {
  addDemand,
  type Demand,
  exceeded,
  limitsFor,
  parseQuotaConfig,
  type QuotaConfig,
  type QuotaLimits,
  type Usage,
  usageOf,
} from "./quota.ts";

export interface QuotaSource {
  /** Where the limits come from, for messages. */
  readonly location: string;
  config(): Promise<QuotaConfig>;
}

export const QUOTA_KEY = "quotas.yaml";

/** The quota file; a missing file is "no quotas"; a broken edit keeps the last good limits (logged). */
export class QuotaFile implements QuotaSource {
  readonly location: string;
  readonly #logger: Logger | undefined;
  #loaded: { mtimeMs: number; config: QuotaConfig } | undefined;

  constructor(path: string, logger?: Logger) {
    this.location = path;
    this.#logger = logger;
  }

  async config(): Promise<QuotaConfig> {
    const s = await stat(this.location).catch(() => undefined);
    if (!s) return { projects: {} };
    if (this.#loaded?.mtimeMs === s.mtimeMs) return this.#loaded.config;
    try {
      const config = parseQuotaConfig(await readFile(this.location, "utf8"), this.location);
      this.#loaded = { mtimeMs: s.mtimeMs, config };
      return config;
    } catch (error) {
      if (!this.#loaded) throw error;
      this.#logger?.error({ path: this.location }, `${(error as Error).message}; the last good quotas stay`);
      this.#loaded = { ...this.#loaded, mtimeMs: s.mtimeMs };
      return this.#loaded.config;
    }
  }
}

export class QuotaConfigMap implements QuotaSource {
  readonly location: string;
  readonly #core: CoreV1Api;
  readonly #ref: ObjectRef;
  readonly #ttlMs: number;
  #cached: { at: number; config: QuotaConfig } | undefined;

  constructor(kubeConfig: KubeConfig, ref: ObjectRef, ttlMs = 5000) {
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#ref = ref;
    this.#ttlMs = ttlMs;
    this.location = `configmap ${ref.namespace}/${ref.name} (data["${QUOTA_KEY}"])`;
  }

  async config(): Promise<QuotaConfig> {
    if (this.#cached && Date.now() - this.#cached.at < this.#ttlMs) return this.#cached.config;
    let text: string | undefined;
    try {
      const cm = await this.#core.readNamespacedConfigMap(this.#ref);
      text = cm.data?.[QUOTA_KEY];
    } catch (error) {
      const failure = kubeFailure(error);
      if (failure.code !== 404) {
        if (this.#cached) return this.#cached.config; // the API is away: the last limits hold
        throw new ApiError(503, "quota_unavailable", `quotas cannot be read: ${failure.message}`);
      }
    }
    const config = text === undefined ? { projects: {} } : parseQuotaConfig(text, this.location);
    this.#cached = { at: Date.now(), config };
    return config;
  }
}

const PENDING_MS = 60_000;

export interface ProjectQuota {
  namespace: string;
  source: string;
  limits: QuotaLimits | undefined;
  usage: Usage;
}

export class QuotaGuard {
  readonly source: QuotaSource;
  readonly #provider: Pick<VmProvider, "list">;
  readonly #locks = new Map<string, Promise<unknown>>();
  /** namespace → name → what a VM created here asked, until the provider's list shows it. */
  readonly #pending = new Map<string, Map<string, { demand: Demand; at: number }>>();

  constructor(source: QuotaSource, provider: Pick<VmProvider, "list">) {
    this.source = source;
    this.#provider = provider;
  }

  /** `identity`: the caller's, when the provider lists VMs as the caller (token pass-through). */
  async status(namespace: string, identity?: CallIdentity): Promise<ProjectQuota> {
    const limits = limitsFor(await this.source.config(), namespace);
    return { namespace, source: this.source.location, limits, usage: await this.#usage(namespace, identity) };
  }

  /** Runs `create` when one more VM of `demand` fits the project's quota; otherwise a 403 naming it. */
  admit<T extends { name: string }>(
    namespace: string,
    name: string,
    demand: Demand,
    create: () => Promise<T>,
    identity?: CallIdentity,
  ): Promise<T> {
    return this.#serialized(namespace, async () => {
      const limits = limitsFor(await this.source.config(), namespace);
      if (limits) {
        const usage = await this.#usage(namespace, identity);
        const over = exceeded(limits, usage, demand);
        if (over.length > 0) {
          const error = new ApiError(
            403,
            "quota_exceeded",
            `the quota of project ${namespace} does not allow this VM: ${over
              .map((o) => `${o.resource} ${o.used} used + ${o.requested} requested > ${o.limit}`)
              .join("; ")}`,
            {
              details: over.map((o) => ({
                field: `quota.${o.resource}`,
                message: `limit ${o.limit}, used ${o.used}, requested ${o.requested}`,
              })),
              hint: "delete VMs you no longer need, ask for smaller sizes, or ask an admin to raise the quota",
            },
          );
          throw error;
        }
      }
      const vm = await create();
      const pending = this.#pending.get(namespace) ?? new Map();
      pending.set(name, { demand, at: Date.now() });
      this.#pending.set(namespace, pending);
      return vm;
    });
  }

  async #usage(namespace: string, identity?: CallIdentity): Promise<Usage> {
    const vms = await this.#provider.list(namespace, identity);
    let usage = usageOf(vms);
    const pending = this.#pending.get(namespace);
    if (pending) {
      const listed = new Set(vms.map((v) => v.name));
      for (const [name, p] of pending) {
        if (listed.has(name) || Date.now() - p.at > PENDING_MS) pending.delete(name);
        else usage = addDemand(usage, p.demand);
      }
    }
    return usage;
  }

  #serialized<T>(namespace: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(namespace) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.catch(() => undefined);
    this.#locks.set(namespace, settled);
    void settled.then(() => {
      if (this.#locks.get(namespace) === settled) this.#locks.delete(namespace);
    });
    return run;
  }
}
