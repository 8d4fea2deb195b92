// VMs on a Kubernetes cluster with KubeVirt and CDI, through the Kubernetes API (@kubernetes/client-node).
// The objects come from manifests.ts; this file only creates, reads, acts on and deletes them.
//
// Identity, a setting:
//   - "service-account": osimg acts as itself. Watches of osimg's VMs, their instances and DataVolumes
//     across the cluster keep a cache, so that reads cost no API call and "changed" events come from it.
//   - "caller": every call is made with the caller's own Kubernetes bearer token (kubernetes auth mode),
//     so that Kubernetes RBAC decides and osimg needs no rights over VMs at all. Reads go to the API;
//     "changed" events come from per-namespace watches opened with the subscriber's token.
//
// Ownership: everything osimg creates for a VM carries the labels app.kubernetes.io/managed-by=osimg and
// osimg.io/vm=NAME and is owned by the VirtualMachine (ownerReferences), so that deleting the VM (with
// osimg or kubectl) removes exactly those objects, through Kubernetes' garbage collector. Secrets are
// created after the VM, owned from the start, so osimg never needs to read or list Secrets. A DataVolume
// of its own (an import with a checksum) is created before the VM and then given its owner.
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import WebSocket, { type ClientOptions, createWebSocketStream } from "ws";
import { apiUrl, kubeFailure, kubeRequest, withBearerToken } from "../../../kube/client.ts";
import { ListWatch, type WatchEventType } from "../../../kube/list-watch.ts";
import type { Vm, VmAction, VmEvent, VmSpec } from "../../model.ts";
import {
  type CallIdentity,
  type ConsoleKind,
  notFound,
  type RenderedVm,
  VmError,
  type VmProvider,
  type VmProviderEvents,
} from "../../provider.ts";
import { eventFieldSelector, eventTargets, vmEventsOf } from "./events.ts";
import { buildManifests, MANAGED_SELECTOR, manifestsYaml, VM_LABEL, vmSelector } from "./manifests.ts";
import type { KubevirtSettings } from "./settings.ts";
import {
  type KubeDataVolume,
  type KubeVirtualMachine,
  type KubeVirtualMachineInstance,
  ownerVmName,
  recordedSpec,
  statusOf,
} from "./status.ts";

export type IdentityMode = "service-account" | "caller";

export interface KubevirtProviderOptions {
  kubeConfig: KubeConfig;
  settings: KubevirtSettings;
  logger: Logger;
  identity: IdentityMode;
  /** Watch tuning (tests): see ListWatchOptions. */
  watch?: {
    backoff?: { initialMs: number; maxMs: number };
    watchTimeoutSeconds?: number;
    idleTimeoutMs?: number;
  };
}

/** KubeVirt's console and VNC streams speak this WebSocket subprotocol (raw bytes in binary frames). */
export const STREAM_PROTOCOL = "plain.kubevirt.io";

const VM = { group: "kubevirt.io", version: "v1", plural: "virtualmachines" } as const;
const VMI = { group: "kubevirt.io", version: "v1", plural: "virtualmachineinstances" } as const;
const DV = { group: "cdi.kubevirt.io", version: "v1beta1", plural: "datavolumes" } as const;
type Resource = typeof VM | typeof VMI | typeof DV;

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
/** Clients kept per caller token; older ones are dropped first. */
const MAX_CALLER_CLIENTS = 256;

interface Clients {
  config: KubeConfig;
  custom: CustomObjectsApi;
  core: CoreV1Api;
}

type Metadata = KubeVirtualMachine["metadata"];
type Stored = { metadata: Metadata };

/** Objects of one kind by namespace and name, kept by a watch. */
class Index<T extends Stored> {
  readonly #byNamespace = new Map<string, Map<string, T>>();

  replace(items: readonly T[]): void {
    this.#byNamespace.clear();
    for (const item of items) this.put(item);
  }

  put(item: T): void {
    const ns = item.metadata.namespace as string;
    let names = this.#byNamespace.get(ns);
    if (!names) {
      names = new Map();
      this.#byNamespace.set(ns, names);
    }
    names.set(item.metadata.name as string, item);
  }

  remove(namespace: string, name: string): void {
    this.#byNamespace.get(namespace)?.delete(name);
  }

  get(namespace: string, name: string): T | undefined {
    return this.#byNamespace.get(namespace)?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.#byNamespace.get(namespace)?.values() ?? [])];
    return [...this.#byNamespace.values()].flatMap((names) => [...names.values()]);
  }
}

const keyOf = (o: Stored) => `${o.metadata.namespace}/${o.metadata.name}`;

/** What a failed Kubernetes call means to the API's caller. */
function vmErrorOf(error: unknown, what: string): VmError {
  if (error instanceof VmError) return error;
  const failure = kubeFailure(error);
  const detail = `${what}: ${failure.message}`;
  switch (failure.code) {
    case 401:
    case 403:
      return new VmError(
        "forbidden",
        detail,
        "the Kubernetes identity osimg acts as lacks the RBAC rights (see docs/kubernetes.md)",
      );
    case 404:
      return new VmError("not_found", detail);
    case 409:
      return new VmError("conflict", detail);
    case 400:
    case 422:
      return new VmError("invalid", detail);
    default:
      return new VmError(
        "unavailable",
        detail,
        failure.code === undefined ? "is the Kubernetes API server reachable?" : undefined,
      );
  }
}

const isNotFound = (error: unknown) => kubeFailure(error).code === 404;

export class KubevirtProvider extends EventEmitter<VmProviderEvents> implements VmProvider {
  readonly name = "kubevirt";
  readonly #options: KubevirtProviderOptions;
  readonly #own: Clients;
  readonly #callers = new Map<string, Clients>();
  /** The cache of the service-account mode. */
  readonly #vms = new Index<KubeVirtualMachine>();
  readonly #vmis = new Index<KubeVirtualMachineInstance>();
  readonly #dvs = new Index<KubeDataVolume>();
  readonly #watches: ListWatch<Stored>[] = [];
  /** Parsed osimg.io/spec annotations, by VM object (a changed VM is a new object). */
  readonly #specs = new WeakMap<object, Vm["spec"] | null>();
  /** Watches of the caller mode: one set per namespace and token, shared by its subscribers. */
  readonly #subscriptions = new Map<string, { count: number; watches: ListWatch<Stored>[] }>();

  constructor(options: KubevirtProviderOptions) {
    super();
    this.#options = options;
    this.#own = clientsFor(options.kubeConfig);
  }

  get identity(): IdentityMode {
    return this.#options.identity;
  }

  /** Service-account mode: lists (and then watches) osimg's VMs, instances and DataVolumes cluster-wide. */
  async start(): Promise<void> {
    if (this.#options.identity !== "service-account") return;
    const watches = [
      this.#cacheWatch(VM, this.#vms),
      this.#cacheWatch(VMI, this.#vmis),
      this.#cacheWatch(DV, this.#dvs),
    ];
    this.#watches.push(...watches);
    await Promise.all(watches.map((w) => w.start()));
  }

  async close(): Promise<void> {
    const all = [...this.#watches, ...[...this.#subscriptions.values()].flatMap((s) => s.watches)];
    this.#subscriptions.clear();
    await Promise.all(all.map((w) => w.stop()));
  }

  async render(spec: VmSpec): Promise<RenderedVm> {
    // The password never leaves the server, not even in a dry run.
    const shown = spec.password === undefined ? spec : { ...spec, password: "<redacted>" };
    return { format: "yaml", text: manifestsYaml(buildManifests(shown, this.#options.settings)) };
  }

  async create(spec: VmSpec, identity?: CallIdentity): Promise<Vm> {
    const { custom, core } = this.#clients(identity);
    const manifests = buildManifests(spec, this.#options.settings);
    const { namespace, name } = spec;
    const ownDataVolumes: string[] = [];
    const removeDataVolumes = () =>
      Promise.all(
        ownDataVolumes.map((dv) =>
          custom.deleteNamespacedCustomObject({ ...DV, namespace, name: dv }).catch(() => undefined),
        ),
      );
    try {
      for (const dv of manifests.dataVolumes) {
        await custom.createNamespacedCustomObject({ ...DV, namespace, body: dv });
        ownDataVolumes.push(dv.metadata.name);
      }
    } catch (error) {
      await removeDataVolumes();
      throw this.#createError(error, "DataVolume", spec);
    }
    let vm: KubeVirtualMachine;
    try {
      vm = await custom.createNamespacedCustomObject({ ...VM, namespace, body: manifests.virtualMachine });
    } catch (error) {
      await removeDataVolumes();
      throw this.#createError(error, "VirtualMachine", spec);
    }
    const ownerReferences = [
      { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name, uid: vm.metadata.uid as string },
    ];
    try {
      for (const secret of manifests.secrets)
        await core.createNamespacedSecret({
          namespace,
          body: { ...secret, metadata: { ...secret.metadata, ownerReferences } },
        });
      for (const dv of ownDataVolumes)
        await custom.patchNamespacedCustomObject(
          { ...DV, namespace, name: dv, body: { metadata: { ownerReferences } } },
          MERGE_PATCH,
        );
    } catch (error) {
      // Undone: the VM (what it owns goes with it) and the DataVolumes not owned yet.
      await custom
        .deleteNamespacedCustomObject({ ...VM, namespace, name, propagationPolicy: "Background" })
        .catch(() => undefined);
      await removeDataVolumes();
      throw this.#createError(error, "Secret", spec);
    }
    if (this.#options.identity === "service-account") this.#vms.put(vm);
    this.emit("changed", { namespace, name, deleted: false });
    // Just created: no status yet, its disks still to be imported.
    return this.#view(vm, undefined, manifests.dataVolumes) as Vm;
  }

  async get(namespace: string, name: string, identity?: CallIdentity): Promise<Vm | undefined> {
    if (this.#options.identity === "service-account") {
      const vm = this.#vms.get(namespace, name);
      if (!vm) return undefined;
      return this.#view(vm, this.#vmis.get(namespace, name), this.#dataVolumesOf(namespace, name));
    }
    return this.#read(this.#clients(identity), namespace, name);
  }

  async list(namespace?: string, identity?: CallIdentity): Promise<Vm[]> {
    let vms: KubeVirtualMachine[];
    let vmis: Map<string, KubeVirtualMachineInstance>;
    let dvs: KubeDataVolume[];
    if (this.#options.identity === "service-account") {
      vms = this.#vms.list(namespace);
      vmis = new Map(this.#vmis.list(namespace).map((o) => [keyOf(o), o]));
      dvs = this.#dvs.list(namespace);
    } else {
      const { custom } = this.#clients(identity);
      const listOf = <T>(resource: Resource): Promise<T[]> =>
        (namespace === undefined
          ? custom.listClusterCustomObject({ ...resource, labelSelector: MANAGED_SELECTOR })
          : custom.listNamespacedCustomObject({ ...resource, namespace, labelSelector: MANAGED_SELECTOR })
        ).then(
          (list: { items: T[] }) => list.items,
          (error: unknown) => {
            throw vmErrorOf(error, `cannot list ${resource.plural}${namespace ? ` in ${namespace}` : ""}`);
          },
        );
      const [a, b, c] = await Promise.all([
        listOf<KubeVirtualMachine>(VM),
        listOf<KubeVirtualMachineInstance>(VMI),
        listOf<KubeDataVolume>(DV),
      ]);
      vms = a;
      vmis = new Map(b.map((o) => [keyOf(o), o]));
      dvs = c;
    }
    const byVm = new Map<string, KubeDataVolume[]>();
    for (const dv of dvs) {
      const key = `${dv.metadata.namespace}/${ownerVmName(dv)}`;
      byVm.set(key, [...(byVm.get(key) ?? []), dv]);
    }
    return vms
      .map((vm) => this.#view(vm, vmis.get(keyOf(vm)), byVm.get(keyOf(vm)) ?? []))
      .filter((v): v is Vm => v !== undefined)
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }

  async act(namespace: string, name: string, action: VmAction, identity?: CallIdentity): Promise<Vm> {
    const clients = this.#clients(identity);
    // start, stop and restart are asked of the VM; pause and unpause of its running instance.
    const kind = action === "pause" || action === "unpause" ? "virtualmachineinstances" : "virtualmachines";
    const path = `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(namespace)}/${kind}/${encodeURIComponent(name)}/${action}`;
    try {
      await kubeRequest(clients.config, "PUT", path, {});
    } catch (error) {
      throw vmErrorOf(error, `cannot ${action} VM "${name}"`);
    }
    const vm = await this.#read(clients, namespace, name);
    if (!vm) throw notFound(namespace, name);
    return vm;
  }

  /**
   * The Kubernetes Events of the VM, its instance and its disks (DataVolumes, PVCs): one list per name
   * with a field selector, as the caller in caller mode (who then needs to list Events).
   */
  async events(namespace: string, name: string, identity?: CallIdentity): Promise<VmEvent[]> {
    const clients = this.#clients(identity);
    let vm: KubeVirtualMachine | undefined;
    let dataVolumes: KubeDataVolume[];
    if (this.#options.identity === "service-account") {
      vm = this.#vms.get(namespace, name);
      dataVolumes = this.#dataVolumesOf(namespace, name);
    } else {
      vm = await this.#readVm(clients.custom, namespace, name);
      dataVolumes = vm
        ? ((await clients.custom
            .listNamespacedCustomObject({ ...DV, namespace, labelSelector: vmSelector(name) })
            .then(
              (l: { items: KubeDataVolume[] }) => l.items,
              (error: unknown) => {
                throw vmErrorOf(error, `cannot list the DataVolumes of VM "${name}"`);
              },
            )) as KubeDataVolume[])
        : [];
    }
    // Only osimg's VMs are shown (the cache holds them by label; the spec annotation makes them osimg's).
    if (!vm || !recordedSpec(vm)) throw notFound(namespace, name);
    const listed = await Promise.all(
      eventTargets(vm, dataVolumes).map(async (target) => {
        try {
          const list = await clients.core.listNamespacedEvent({
            namespace,
            fieldSelector: eventFieldSelector(target),
          });
          return { target, events: list.items };
        } catch (error) {
          throw vmErrorOf(error, `cannot list the events of VM "${name}"`);
        }
      }),
    );
    return vmEventsOf(namespace, name, listed);
  }

  async delete(namespace: string, name: string, identity?: CallIdentity): Promise<void> {
    const { custom } = this.#clients(identity);
    const vm = await this.#readVm(custom, namespace, name);
    if (!vm) throw notFound(namespace, name);
    try {
      await custom.deleteNamespacedCustomObject({ ...VM, namespace, name, propagationPolicy: "Background" });
    } catch (error) {
      if (!isNotFound(error)) throw vmErrorOf(error, `cannot delete VM "${name}"`);
    }
    // DataVolumes of a create that stopped before they were owned; owned ones go with the VM.
    const left = (await custom
      .listNamespacedCustomObject({ ...DV, namespace, labelSelector: vmSelector(name) })
      .then((l: { items: KubeDataVolume[] }) => l.items)
      .catch(() => [])) as KubeDataVolume[];
    for (const dv of left) {
      const owners = dv.metadata.ownerReferences ?? [];
      if (owners.length > 0 && !owners.some((o) => o.uid === vm.metadata.uid)) continue;
      await custom
        .deleteNamespacedCustomObject({ ...DV, namespace, name: dv.metadata.name as string })
        .catch(() => undefined);
    }
    if (this.#options.identity === "service-account") this.#vms.remove(namespace, name);
    this.emit("changed", { namespace, name, deleted: true });
  }

  async openConsole(
    namespace: string,
    name: string,
    kind: ConsoleKind,
    identity?: CallIdentity,
  ): Promise<Duplex> {
    const clients = this.#clients(identity);
    const vmi = (await clients.custom
      .getNamespacedCustomObject({ ...VMI, namespace, name })
      .catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw vmErrorOf(error, `cannot read the instance of VM "${name}"`);
      })) as KubeVirtualMachineInstance | undefined;
    if (vmi?.status?.phase !== "Running")
      throw new VmError("conflict", `VM "${name}" is not running`, "start it first");
    const sub = kind === "vnc" ? "vnc" : "console";
    const url = apiUrl(
      clients.config,
      `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(namespace)}/virtualmachineinstances/${encodeURIComponent(name)}/${sub}`,
      true,
    );
    const options: ClientOptions = {};
    await clients.config.applyToHTTPSOptions(options);
    const socket = new WebSocket(url, [STREAM_PROTOCOL], options);
    // The stream first: what the VM prints right after the upgrade (a login prompt) is buffered, not lost.
    const stream = createWebSocketStream(socket);
    // Failures before the open are reported by the rejection below; the caller listens from then on.
    stream.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("unexpected-response", (_request, response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          reject(
            vmErrorOf(
              { code: response.statusCode, body: Buffer.concat(chunks).toString("utf8") },
              `cannot open the ${sub} of VM "${name}"`,
            ),
          ),
        );
      });
      socket.once("error", (error) => reject(vmErrorOf(error, `cannot open the ${sub} of VM "${name}"`)));
    });
    return stream;
  }

  /** Caller mode: watches of one namespace with the subscriber's token, shared by equal subscribers. */
  subscribe(namespace: string, identity?: CallIdentity): () => void {
    if (this.#options.identity !== "caller" || !identity?.bearerToken) return () => {};
    const key = `${namespace}\u0000${identity.bearerToken}`;
    let subscription = this.#subscriptions.get(key);
    if (!subscription) {
      const { config, custom } = this.#clients(identity);
      const watches = [VM, VMI, DV].map(
        (resource) =>
          new ListWatch<Stored>({
            kubeConfig: config,
            logger: this.#options.logger,
            what: `${resource.plural} in ${namespace} (caller)`,
            path: `/apis/${resource.group}/${resource.version}/namespaces/${encodeURIComponent(namespace)}/${resource.plural}`,
            labelSelector: MANAGED_SELECTOR,
            list: () =>
              custom.listNamespacedCustomObject({ ...resource, namespace, labelSelector: MANAGED_SELECTOR }),
            onList: () => {},
            onEvent: (type, object) => this.#changed(resource, type, object),
            ...this.#options.watch,
          }),
      );
      subscription = { count: 0, watches };
      this.#subscriptions.set(key, subscription);
      for (const w of watches) void w.start();
    }
    subscription.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const current = this.#subscriptions.get(key);
      if (!current || --current.count > 0) return;
      this.#subscriptions.delete(key);
      for (const w of current.watches) void w.stop();
    };
  }

  // --- internals ---------------------------------------------------------------------------------------

  #clients(identity: CallIdentity | undefined): Clients {
    if (this.#options.identity === "service-account") return this.#own;
    const token = identity?.bearerToken;
    if (!token)
      throw new VmError(
        "forbidden",
        "VMs are created as the caller (identity: caller), and this request carries no Kubernetes token",
        "run osimg serve with --auth kubernetes and send your Kubernetes bearer token",
      );
    let clients = this.#callers.get(token);
    if (!clients) {
      clients = clientsFor(withBearerToken(this.#options.kubeConfig, token));
      if (this.#callers.size >= MAX_CALLER_CLIENTS) {
        const oldest = this.#callers.keys().next().value as string;
        this.#callers.delete(oldest);
      }
      this.#callers.set(token, clients);
    }
    return clients;
  }

  #createError(error: unknown, kind: string, spec: VmSpec): VmError {
    const failure = kubeFailure(error);
    if (failure.code === 409 && failure.reason === "AlreadyExists") {
      if (kind === "VirtualMachine")
        return new VmError("exists", `VM "${spec.name}" already exists in namespace "${spec.namespace}"`);
      return new VmError(
        "exists",
        `a ${kind} named like VM "${spec.name}"'s already exists in namespace "${spec.namespace}": ${failure.message}`,
        "osimg does not replace objects it did not create: choose another VM name, or delete that object",
      );
    }
    return vmErrorOf(error, `cannot create the ${kind} of VM "${spec.name}"`);
  }

  async #readVm(
    custom: CustomObjectsApi,
    namespace: string,
    name: string,
  ): Promise<KubeVirtualMachine | undefined> {
    try {
      const vm = (await custom.getNamespacedCustomObject({ ...VM, namespace, name })) as KubeVirtualMachine;
      // A VM osimg did not make is not osimg's to show or delete.
      return recordedSpec(vm) ? vm : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw vmErrorOf(error, `cannot read VM "${name}"`);
    }
  }

  /** A VM read from the API (not the cache): the VM, its instance and its DataVolumes. */
  async #read(clients: Clients, namespace: string, name: string): Promise<Vm | undefined> {
    const vm = await this.#readVm(clients.custom, namespace, name);
    if (!vm) return undefined;
    const [vmi, dvs] = await Promise.all([
      clients.custom.getNamespacedCustomObject({ ...VMI, namespace, name }).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw vmErrorOf(error, `cannot read the instance of VM "${name}"`);
      }) as Promise<KubeVirtualMachineInstance | undefined>,
      clients.custom.listNamespacedCustomObject({ ...DV, namespace, labelSelector: vmSelector(name) }).then(
        (l: { items: KubeDataVolume[] }) => l.items,
        (error: unknown) => {
          throw vmErrorOf(error, `cannot list the DataVolumes of VM "${name}"`);
        },
      ) as Promise<KubeDataVolume[]>,
    ]);
    return this.#view(vm, vmi, dvs);
  }

  #dataVolumesOf(namespace: string, name: string): KubeDataVolume[] {
    return this.#dvs.list(namespace).filter((dv) => ownerVmName(dv) === name);
  }

  #view(
    vm: KubeVirtualMachine,
    vmi: KubeVirtualMachineInstance | undefined,
    dataVolumes: readonly KubeDataVolume[],
  ): Vm | undefined {
    let spec = this.#specs.get(vm);
    if (spec === undefined) {
      spec = recordedSpec(vm) ?? null;
      this.#specs.set(vm, spec);
    }
    if (spec === null) return undefined;
    return {
      namespace: vm.metadata.namespace as string,
      name: vm.metadata.name as string,
      provider: this.name,
      createdAt: vm.metadata.creationTimestamp ?? new Date(0).toISOString(),
      spec,
      status: statusOf(vm, vmi, dataVolumes),
    };
  }

  #cacheWatch<T extends Stored>(resource: Resource, index: Index<T>): ListWatch<Stored> {
    const { custom } = this.#own;
    return new ListWatch<Stored>({
      kubeConfig: this.#options.kubeConfig,
      logger: this.#options.logger,
      what: `${resource.plural} labelled ${MANAGED_SELECTOR}`,
      path: `/apis/${resource.group}/${resource.version}/${resource.plural}`,
      labelSelector: MANAGED_SELECTOR,
      list: () => custom.listClusterCustomObject({ ...resource, labelSelector: MANAGED_SELECTOR }),
      onList: (items) => {
        const before = new Set(index.list().map(keyOf));
        index.replace(items as T[]);
        for (const item of items) {
          before.delete(keyOf(item));
          this.#changed(resource, "MODIFIED", item);
        }
        for (const key of before) {
          const [namespace, name] = key.split("/") as [string, string];
          this.#changed(resource, "DELETED", { metadata: { namespace, name, labels: { [VM_LABEL]: name } } });
        }
      },
      onEvent: (type, object) => {
        if (type === "DELETED")
          index.remove(object.metadata.namespace as string, object.metadata.name as string);
        else index.put(object as T);
        this.#changed(resource, type, object);
      },
      ...this.#options.watch,
    });
  }

  /** A change of a VM, its instance or one of its DataVolumes, as a "changed" event of the VM. */
  #changed(resource: Resource, type: WatchEventType, object: Stored): void {
    const namespace = object.metadata.namespace as string;
    const name = resource === DV ? ownerVmName(object) : object.metadata.name;
    if (!name) return;
    this.emit("changed", { namespace, name, deleted: resource === VM && type === "DELETED" });
  }
}

function clientsFor(config: KubeConfig): Clients {
  return { config, custom: config.makeApiClient(CustomObjectsApi), core: config.makeApiClient(CoreV1Api) };
}
