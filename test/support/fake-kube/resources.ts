// The resource types the fake serves: what a kube-apiserver learns from its built-in registry and from
// CRDs. Each type says how its objects behave (namespaced, status subresource, CRD update semantics) and
// which Swagger definition validates them.

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

export interface ResourceType {
  /** "" for the core group. */
  group: string;
  version: string;
  /** The plural name in URLs. */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Spec and status are written separately: the main endpoint keeps status, /status keeps the rest. */
  statusSubresource: boolean;
  /** Served from a CRD: updates need a resourceVersion, spec changes bump metadata.generation. */
  custom: boolean;
  /** The definition that validates every object of this type, in one of the reference documents. */
  schema?: { document: "kubevirt" | "cdi"; definition: string };
}

export const apiVersionOf = (t: Pick<ResourceType, "group" | "version">) =>
  t.group === "" ? t.version : `${t.group}/${t.version}`;

export const typeKey = (t: Pick<ResourceType, "group" | "version" | "resource">) =>
  `${t.group}/${t.version}/${t.resource}`;

const core = (resource: string, kind: string, extra: Partial<ResourceType> = {}): ResourceType => ({
  group: "",
  version: "v1",
  resource,
  singular: kind.toLowerCase(),
  kind,
  namespaced: true,
  statusSubresource: false,
  custom: false,
  ...extra,
});

const kubevirt = (
  group: string,
  version: string,
  resource: string,
  kind: string,
  extra: Partial<ResourceType> = {},
): ResourceType => ({
  group,
  version,
  resource,
  singular: kind.toLowerCase(),
  kind,
  namespaced: true,
  statusSubresource: true,
  custom: true,
  ...extra,
});

export const BUILTIN_TYPES: readonly ResourceType[] = [
  core("namespaces", "Namespace", { namespaced: false, statusSubresource: true, shortNames: ["ns"] }),
  core("configmaps", "ConfigMap", { shortNames: ["cm"] }),
  core("secrets", "Secret"),
  core("events", "Event", { shortNames: ["ev"] }),
  core("pods", "Pod", { statusSubresource: true, shortNames: ["po"] }),
  core("serviceaccounts", "ServiceAccount", { shortNames: ["sa"] }),
  core("persistentvolumeclaims", "PersistentVolumeClaim", { statusSubresource: true, shortNames: ["pvc"] }),
  {
    ...core("jobs", "Job", { statusSubresource: true }),
    group: "batch",
  },
  kubevirt("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", {
    shortNames: ["vm", "vms"],
    schema: { document: "kubevirt", definition: "v1.VirtualMachine" },
  }),
  kubevirt("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", {
    shortNames: ["vmi", "vmis"],
    schema: { document: "kubevirt", definition: "v1.VirtualMachineInstance" },
  }),
  kubevirt("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", {
    shortNames: ["dv", "dvs"],
    schema: { document: "cdi", definition: "v1beta1.DataVolume" },
  }),
  kubevirt(
    "instancetype.kubevirt.io",
    "v1beta1",
    "virtualmachineclusterpreferences",
    "VirtualMachineClusterPreference",
    {
      namespaced: false,
      statusSubresource: false,
      shortNames: ["vmcp", "vmcps"],
      schema: { document: "kubevirt", definition: "v1beta1.VirtualMachineClusterPreference" },
    },
  ),
  kubevirt("instancetype.kubevirt.io", "v1beta1", "virtualmachinepreferences", "VirtualMachinePreference", {
    statusSubresource: false,
    shortNames: ["vmpref", "vmprefs", "vmp", "vmps"],
    schema: { document: "kubevirt", definition: "v1beta1.VirtualMachinePreference" },
  }),
];

/** Groups served without resources of their own: KubeVirt's aggregated subresource API. */
export const SUBRESOURCE_GROUP = { group: "subresources.kubevirt.io", version: "v1" } as const;
