// The Kubernetes objects of a VM on KubeVirt + CDI, as pure functions of the VmSpec and the cluster's
// settings: a VirtualMachine (kubevirt.io/v1), the DataVolumes its disks are imported into, and the
// Secrets for what must not sit in the VM's spec. No I/O; the provider creates what this returns.
//
// Decisions, each checked against KubeVirt's and CDI's schemas and KubeVirt's admission rules:
//   - runStrategy, never the deprecated `running`;
//   - the image is imported by CDI: `source.registry` (docker://REPO:TAG) when the entry names a
//     containerDisk, else `source.http.url`. The sha256 of OS_IMAGE_SHA256 goes to `source.http.checksum`
//     ("sha256:HEX"), which CDI's DataVolume has but KubeVirt's VirtualMachine schema does not carry in
//     dataVolumeTemplates (a real API server would prune it): such an import is a DataVolume of its own,
//     created before the VM and then owned by it, so that the checksum is verified;
//   - BOOT_ORDER with "cdrom": the image is an installer ISO, imported and attached as a SATA cdrom, and
//     the root disk is a blank volume of the requested size; bootOrder follows BOOT_ORDER;
//   - ADDITIONAL_DISKS virtio-drivers: the virtio-win containerDisk as a SATA cdrom;
//   - firmware efi: secure boot only when FEATURES has smm (KubeVirt requires SMM for it), the EFI
//     variables persistent when it has tpm; bios is KubeVirt's default and is not written;
//   - FEATURES: acpi, apic, smm as features; hyperv as the enlightenments (and Hyper-V clock) of KubeVirt's
//     Windows preferences; tpm as a persistent `devices.tpm`;
//   - cloud-init: the entry's CLOUD_INIT merged with the request (mergeUserData); inline when it fits
//     KubeVirt's 2048-byte limit and holds no password, else in a Secret (`cloudInitNoCloud.secretRef`);
//   - SSH keys: in user-data, or (access-credentials) in a Secret that KubeVirt propagates through the
//     guest agent, or through cloud-init when the image has no agent;
//   - a guest-agent ping readiness probe when the image runs the agent;
//   - networks: the pod network with masquerade, or one Multus network with a bridge binding.
// Nothing is written empty: optional parts are left out rather than given "" or [].
import { stringify } from "yaml";
import { mergeUserData, UserDataError } from "../../../cloudinit/userdata.ts";
import { publicSpec, type VmImage, type VmSpec } from "../../model.ts";
import { VmError } from "../../provider.ts";
import type { KubevirtSettings } from "./settings.ts";

/** KubeVirt's admission limit for inline cloud-init user data. */
export const INLINE_USER_DATA_LIMIT = 2048;

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "osimg" } as const;
export const MANAGED_SELECTOR = "app.kubernetes.io/managed-by=osimg";
export const VM_LABEL = "osimg.io/vm";
export const IMAGE_LABEL = "osimg.io/image";
/** The VmSpec (without the password) the VM was made from, as JSON. */
export const SPEC_ANNOTATION = "osimg.io/spec";
export const OS_NAME_ANNOTATION = "osimg.io/os-name";

export const ROOT_DISK = "rootdisk";
export const INSTALLER_DISK = "installer";
export const CLOUD_INIT_DISK = "cloudinitdisk";
export const VIRTIO_DRIVERS_DISK = "virtio-drivers";

/** The Hyper-V enlightenments of KubeVirt's Windows preferences (common-instancetypes windows.*). */
export const HYPERV_ENLIGHTENMENTS = {
  frequencies: {},
  ipi: {},
  reenlightenment: {},
  relaxed: {},
  reset: {},
  runtime: {},
  spinlocks: { spinlocks: 8191 },
  synic: {},
  synictimer: { direct: {} },
  tlbflush: {},
  vapic: {},
  vpindex: {},
} as const;

/** The clock those preferences pair with them: UTC, the Hyper-V reference timer, no HPET. */
export const HYPERV_TIMER = {
  hpet: { present: false },
  hyperv: {},
  pit: { tickPolicy: "delay" },
  rtc: { tickPolicy: "catchup" },
} as const;

export const READINESS_PROBE = {
  guestAgentPing: {},
  initialDelaySeconds: 20,
  periodSeconds: 10,
  failureThreshold: 10,
} as const;

type Labels = Record<string, string>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Record<string, string>;
}

export interface StorageSpec {
  resources: { requests: { storage: string } };
  storageClassName?: string;
}

export type DataVolumeSource =
  | { http: { url: string; checksum?: string } }
  | { registry: { url: string } }
  | { blank: Record<string, never> };

export interface DataVolumeSpec {
  source: DataVolumeSource;
  storage: StorageSpec;
}

export interface DataVolume {
  apiVersion: "cdi.kubevirt.io/v1beta1";
  kind: "DataVolume";
  metadata: ObjectMeta;
  spec: DataVolumeSpec;
}

export interface Secret {
  apiVersion: "v1";
  kind: "Secret";
  metadata: ObjectMeta;
  type: "Opaque";
  stringData: Record<string, string>;
}

export interface Disk {
  name: string;
  disk?: { bus: "virtio" | "sata" };
  cdrom?: { bus: "sata" };
  bootOrder?: number;
}

export type Volume =
  | { name: string; dataVolume: { name: string } }
  | { name: string; containerDisk: { image: string } }
  | {
      name: string;
      cloudInitNoCloud: { userData: string } | { secretRef: { name: string } };
    };

export interface Interface {
  name: string;
  masquerade?: Record<string, never>;
  bridge?: Record<string, never>;
  bootOrder?: number;
}

export type Network =
  | { name: string; pod: Record<string, never> }
  | { name: string; multus: { networkName: string; default: true } };

export interface AccessCredential {
  sshPublicKey: {
    source: { secret: { secretName: string } };
    propagationMethod: { qemuGuestAgent: { users: string[] } } | { noCloud: Record<string, never> };
  };
}

export interface Domain {
  cpu: { cores: number };
  memory: { guest: string };
  machine?: { type: string };
  firmware?: { bootloader: { efi: { secureBoot: boolean; persistent?: true } } };
  features?: {
    acpi?: Record<string, never>;
    apic?: Record<string, never>;
    smm?: Record<string, never>;
    hyperv?: typeof HYPERV_ENLIGHTENMENTS;
  };
  clock?: { utc: Record<string, never>; timer: typeof HYPERV_TIMER };
  devices: {
    disks: Disk[];
    interfaces: Interface[];
    tpm?: { persistent: true };
  };
}

export interface VirtualMachine {
  apiVersion: "kubevirt.io/v1";
  kind: "VirtualMachine";
  metadata: ObjectMeta & { namespace: string; labels: Labels; annotations: Record<string, string> };
  spec: {
    runStrategy: VmSpec["runStrategy"];
    preference?: { kind: "VirtualMachineClusterPreference"; name: string };
    dataVolumeTemplates?: { metadata: ObjectMeta; spec: DataVolumeSpec }[];
    template: {
      metadata: { labels: Labels };
      spec: {
        domain: Domain;
        networks: Network[];
        volumes: Volume[];
        accessCredentials?: AccessCredential[];
        readinessProbe?: typeof READINESS_PROBE;
      };
    };
  };
}

export interface KubevirtManifests {
  /** In the order they are created: Secrets, standalone DataVolumes, then the VM. */
  secrets: Secret[];
  dataVolumes: DataVolume[];
  virtualMachine: VirtualMachine;
  /** What a reader of the manifests should know (choices made, what the image lacks). */
  notes: string[];
}

/** The name of the VirtualMachineClusterPreference osimg renders for a catalog entry. */
export function preferenceName(entryId: string): string {
  return `osimg-${entryId}`.slice(0, 253).replace(/[-.]+$/, "");
}

export const dataVolumeName = (vm: string, disk: typeof ROOT_DISK | typeof INSTALLER_DISK) => `${vm}-${disk}`;
export const userDataSecretName = (vm: string) => `${vm}-cloudinit`;
export const sshKeysSecretName = (vm: string) => `${vm}-ssh-keys`;

/** The labels of everything osimg creates for a VM: how it finds (and deletes) exactly those objects. */
export function vmLabels(spec: Pick<VmSpec, "name" | "image">): Labels {
  return { ...MANAGED_BY, [VM_LABEL]: spec.name, [IMAGE_LABEL]: spec.image.entryId };
}

export function vmSelector(name: string): string {
  return `${MANAGED_SELECTOR},${VM_LABEL}=${name}`;
}

/** Where the image comes from, for CDI. */
function importSource(image: VmImage): DataVolumeSource {
  if (image.containerDisk) {
    const repo = image.containerDisk.repo.replace(/^docker:\/\//, "");
    return { registry: { url: `docker://${repo}:${image.containerDisk.tag ?? "latest"}` } };
  }
  return {
    http: { url: image.url, ...(image.sha256 ? { checksum: `sha256:${image.sha256.toLowerCase()}` } : {}) },
  };
}

function storage(size: string, settings: KubevirtSettings): StorageSpec {
  return {
    resources: { requests: { storage: size } },
    ...(settings.storageClass ? { storageClassName: settings.storageClass } : {}),
  };
}

/** The user-data for the guest; undefined fields of the request are not merged. */
function userData(spec: VmSpec, sshKeysInUserData: boolean): string {
  const sshKeys = sshKeysInUserData ? spec.sshKeys : [];
  const nothingToMerge =
    spec.image.cloudInit === undefined &&
    sshKeys.length === 0 &&
    spec.password === undefined &&
    spec.userData === undefined;
  // Still a NoCloud disk: cloud images wait for a datasource, and KubeVirt's meta-data names the host.
  if (nothingToMerge) return "#cloud-config\n";
  try {
    return mergeUserData(spec.image.cloudInit, {
      cloudUser: spec.image.cloudUser,
      sshKeys,
      password: spec.password,
      userData: spec.userData,
    }).text;
  } catch (error) {
    if (error instanceof UserDataError) throw new VmError("invalid", error.message, error.hint);
    throw error;
  }
}

export function hasGuestAgent(text: string, settings: KubevirtSettings): boolean {
  if (settings.guestAgent !== "auto") return settings.guestAgent === "always";
  return /\bqemu-guest-agent\b/.test(text);
}

function domainOf(spec: VmSpec, settings: KubevirtSettings, disks: Disk[], interfaces: Interface[]): Domain {
  const { image } = spec;
  const has = (f: VmImage["features"][number]) => image.features.includes(f);
  const base = { cpu: { cores: spec.cpu }, memory: { guest: spec.memory } };
  // With preferences on, machine type, firmware, features and the TPM come from the preference.
  if (settings.preferences) return { ...base, devices: { disks, interfaces } };
  const features: NonNullable<Domain["features"]> = {};
  if (has("acpi")) features.acpi = {};
  if (has("apic")) features.apic = {};
  if (has("smm")) features.smm = {};
  if (has("hyperv")) features.hyperv = HYPERV_ENLIGHTENMENTS;
  return {
    ...base,
    ...(image.machineType ? { machine: { type: image.machineType } } : {}),
    ...(image.firmware === "efi"
      ? {
          firmware: {
            bootloader: {
              efi: { secureBoot: has("smm"), ...(has("tpm") ? { persistent: true as const } : {}) },
            },
          },
        }
      : {}),
    ...(Object.keys(features).length > 0 ? { features } : {}),
    ...(has("hyperv") ? { clock: { utc: {}, timer: HYPERV_TIMER } } : {}),
    devices: { disks, interfaces, ...(has("tpm") ? { tpm: { persistent: true as const } } : {}) },
  };
}

function networkOf(
  spec: VmSpec,
  settings: KubevirtSettings,
): { networks: Network[]; interfaces: Interface[] } {
  const network = settings.network;
  if (network.kind === "pod")
    return {
      networks: [{ name: "default", pod: {} }],
      interfaces: [{ name: "default", masquerade: {} }],
    };
  return {
    networks: [
      {
        name: network.name,
        multus: { networkName: network.networkName.replaceAll("{namespace}", spec.namespace), default: true },
      },
    ],
    interfaces: [{ name: network.name, bridge: {} }],
  };
}

export function buildManifests(spec: VmSpec, settings: KubevirtSettings): KubevirtManifests {
  const { image, name, namespace } = spec;
  const labels = vmLabels(spec);
  const notes: string[] = [];
  const secrets: Secret[] = [];
  const dataVolumes: DataVolume[] = [];
  const templates: { metadata: ObjectMeta; spec: DataVolumeSpec }[] = [];
  const meta = (objectName: string): ObjectMeta => ({ name: objectName, namespace, labels: { ...labels } });

  // Disks: the image (root disk, or installer cdrom with a blank root disk), then drivers.
  const installer = image.bootOrder.includes("cdrom");
  const imageVolume = installer ? INSTALLER_DISK : ROOT_DISK;
  const imported: DataVolumeSpec = {
    source: importSource(image),
    storage: storage(installer ? settings.installerMediaSize : spec.storage, settings),
  };
  const imageDv = dataVolumeName(name, imageVolume);
  if ("http" in imported.source && imported.source.http.checksum) {
    dataVolumes.push({
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: meta(imageDv),
      spec: imported,
    });
    notes.push(
      `the image is imported by DataVolume ${imageDv}, which CDI checks against OS_IMAGE_SHA256 (a VirtualMachine's dataVolumeTemplates cannot carry the checksum)`,
    );
  } else templates.push({ metadata: { name: imageDv, labels: { ...labels } }, spec: imported });
  if (image.containerDisk && image.sha256)
    notes.push("OS_IMAGE_SHA256 is the checksum of OS_IMAGE_URL; the containerDisk is pulled by its tag");

  const disks: Disk[] = [];
  const volumes: Volume[] = [];
  if (installer) {
    const root = dataVolumeName(name, ROOT_DISK);
    templates.push({
      metadata: { name: root, labels: { ...labels } },
      spec: { source: { blank: {} }, storage: storage(spec.storage, settings) },
    });
    disks.push({ name: ROOT_DISK, disk: { bus: "virtio" } });
    volumes.push({ name: ROOT_DISK, dataVolume: { name: root } });
    disks.push({ name: INSTALLER_DISK, cdrom: { bus: "sata" } });
    volumes.push({ name: INSTALLER_DISK, dataVolume: { name: imageDv } });
    notes.push(
      "BOOT_ORDER lists cdrom: the image is attached as an installer cdrom, the root disk starts blank",
    );
  } else {
    disks.push({ name: ROOT_DISK, disk: { bus: "virtio" } });
    volumes.push({ name: ROOT_DISK, dataVolume: { name: imageDv } });
  }

  // cloud-init, and SSH keys either in it or in a Secret KubeVirt propagates.
  const accessCredentials = settings.sshKeys === "access-credentials" && spec.sshKeys.length > 0;
  const text = userData(spec, !accessCredentials);
  const agent = hasGuestAgent(text, settings);
  const inline = spec.password === undefined && Buffer.byteLength(text, "utf8") <= INLINE_USER_DATA_LIMIT;
  if (inline) {
    volumes.push({ name: CLOUD_INIT_DISK, cloudInitNoCloud: { userData: text } });
  } else {
    const secret = userDataSecretName(name);
    secrets.push({
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta(secret),
      type: "Opaque",
      stringData: { userdata: text },
    });
    volumes.push({ name: CLOUD_INIT_DISK, cloudInitNoCloud: { secretRef: { name: secret } } });
    notes.push(
      spec.password !== undefined
        ? `the user-data holds the password, so it is kept in Secret ${secret}`
        : `the user-data is ${Buffer.byteLength(text, "utf8")} bytes, more than KubeVirt's inline limit of ${INLINE_USER_DATA_LIMIT}: it is kept in Secret ${secret}`,
    );
  }
  disks.push({ name: CLOUD_INIT_DISK, disk: { bus: "virtio" } });

  if (image.additionalDisks.includes("virtio-drivers")) {
    disks.push({ name: VIRTIO_DRIVERS_DISK, cdrom: { bus: "sata" } });
    volumes.push({ name: VIRTIO_DRIVERS_DISK, containerDisk: { image: settings.virtioWinImage } });
  }

  const { networks, interfaces } = networkOf(spec, settings);
  // BOOT_ORDER: 1, 2, 3 in the order written; devices it does not name are not booted from.
  image.bootOrder.forEach((device, index) => {
    const order = index + 1;
    if (device === "disk") (disks.find((d) => d.name === ROOT_DISK) as Disk).bootOrder = order;
    else if (device === "cdrom") (disks.find((d) => d.name === INSTALLER_DISK) as Disk).bootOrder = order;
    else (interfaces[0] as Interface).bootOrder = order;
  });

  const credentials: AccessCredential[] = [];
  if (accessCredentials) {
    const secret = sshKeysSecretName(name);
    secrets.push({
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta(secret),
      type: "Opaque",
      stringData: Object.fromEntries(spec.sshKeys.map((key, i) => [`key${i + 1}`, key.trim()])),
    });
    credentials.push({
      sshPublicKey: {
        source: { secret: { secretName: secret } },
        propagationMethod: agent ? { qemuGuestAgent: { users: [image.cloudUser] } } : { noCloud: {} },
      },
    });
    if (!agent)
      notes.push(
        "the image runs no guest agent: SSH keys are propagated through cloud-init, once, at first boot",
      );
  }
  if (!agent) notes.push("no readiness probe: the image runs no QEMU guest agent");

  const annotations = {
    [OS_NAME_ANNOTATION]: image.osName,
    [SPEC_ANNOTATION]: JSON.stringify(publicSpec(spec)),
  };
  const virtualMachine: VirtualMachine = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace, labels: { ...labels }, annotations },
    spec: {
      runStrategy: spec.runStrategy,
      ...(settings.preferences
        ? {
            preference: {
              kind: "VirtualMachineClusterPreference" as const,
              name: preferenceName(image.entryId),
            },
          }
        : {}),
      ...(templates.length > 0 ? { dataVolumeTemplates: templates } : {}),
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          domain: domainOf(spec, settings, disks, interfaces),
          networks,
          volumes,
          ...(credentials.length > 0 ? { accessCredentials: credentials } : {}),
          ...(agent ? { readinessProbe: READINESS_PROBE } : {}),
        },
      },
    },
  };
  return { secrets, dataVolumes, virtualMachine, notes };
}

/** Every object in creation order. */
export function manifestObjects(manifests: KubevirtManifests): (Secret | DataVolume | VirtualMachine)[] {
  return [...manifests.secrets, ...manifests.dataVolumes, manifests.virtualMachine];
}

/** The manifests as one YAML stream (`kubectl apply -f` reads it), the notes as leading comments. */
export function manifestsYaml(manifests: KubevirtManifests): string {
  const head = manifests.notes.map((n) => `# ${n}\n`).join("");
  const docs = manifestObjects(manifests).map((o) => toYaml(o));
  return `${head}${docs.map((d) => `---\n${d}`).join("")}`;
}

/** One object as a YAML document: no line folding, no anchors for repeated values. */
export function toYaml(object: unknown): string {
  return stringify(object, { lineWidth: 0, aliasDuplicateObjects: false });
}
