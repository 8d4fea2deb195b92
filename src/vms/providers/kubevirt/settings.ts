// How VMs are made on a cluster: the choices a cluster operator makes once (storage class, network, how
// SSH keys reach the guest, preferences, the virtio-win image), with the flags of `osimg serve` and
// `osimg vm render` that set them.
import { type Command, InvalidArgumentError } from "commander";
import { parseQuantity } from "../../../units/quantity.ts";

export interface PodNetwork {
  kind: "pod";
}

/** A Multus network attached as the VM's only (default) network, with a bridge binding. */
export interface MultusNetwork {
  kind: "multus";
  /** The network's name inside the VM spec, e.g. Kube-DC's "vpc_net_0". */
  name: string;
  /** The NetworkAttachmentDefinition, NAMESPACE/NAME; "{namespace}" is replaced by the VM's namespace. */
  networkName: string;
}

export type SshKeyDelivery = "cloud-init" | "access-credentials";
export type GuestAgentMode = "auto" | "always" | "never";

export interface KubevirtSettings {
  /** The storage class of the VM's disks; default: the cluster's default class. */
  storageClass?: string;
  network: PodNetwork | MultusNetwork;
  /** cloud-init writes the keys into user-data; access-credentials keeps them in a Secret that KubeVirt propagates. */
  sshKeys: SshKeyDelivery;
  /** Reference the entry's VirtualMachineClusterPreference (osimg catalog export --preferences). */
  preferences: boolean;
  /** Whether the image runs the QEMU guest agent: auto reads the user-data (qemu-guest-agent installed). */
  guestAgent: GuestAgentMode;
  /** The containerDisk with the virtio-win drivers, for ADDITIONAL_DISKS virtio-drivers. */
  virtioWinImage: string;
  /** The size of the volume an installer ISO (BOOT_ORDER with cdrom) is imported into. */
  installerMediaSize: string;
}

export const DEFAULT_VIRTIO_WIN_IMAGE = "quay.io/kubevirt/virtio-container-disk:v1.5.0";

export const DEFAULT_SETTINGS: KubevirtSettings = {
  network: { kind: "pod" },
  sshKeys: "cloud-init",
  preferences: false,
  guestAgent: "auto",
  virtioWinImage: DEFAULT_VIRTIO_WIN_IMAGE,
  installerMediaSize: "10Gi",
};

/** Kube-DC's project network: the VPC subnet of the project's namespace, through Kube-OVN. */
export const KUBE_DC_NETWORK: MultusNetwork = {
  kind: "multus",
  name: "vpc_net_0",
  networkName: "default/ovn-{namespace}",
};

const NETWORK_NAME = /^[a-zA-Z0-9]([-_a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$/;
const ATTACHMENT = /^[a-z0-9{}]([-a-z0-9.{}]*[a-z0-9}])?\/[a-z0-9{}]([-a-z0-9.{}]*[a-z0-9}])?$/;

/** --network: "pod", "kube-dc", or "multus:NAME=NAMESPACE/ATTACHMENT" ("{namespace}" allowed). */
export function parseNetwork(text: string): PodNetwork | MultusNetwork {
  if (text === "pod") return { kind: "pod" };
  if (text === "kube-dc") return KUBE_DC_NETWORK;
  const multus = /^multus:([^=]+)=(.+)$/.exec(text);
  if (multus) {
    const [, name, networkName] = multus as unknown as [string, string, string];
    if (!NETWORK_NAME.test(name))
      throw new Error(
        `--network "${text}": "${name}" is not a network name (letters, digits, '-' and '_', at most 63)`,
      );
    if (!ATTACHMENT.test(networkName))
      throw new Error(
        `--network "${text}": "${networkName}" is not NAMESPACE/NAME of a NetworkAttachmentDefinition`,
      );
    return { kind: "multus", name, networkName };
  }
  throw new Error(
    `--network "${text}": expected pod, kube-dc, or multus:NAME=NAMESPACE/ATTACHMENT (such as multus:vpc_net_0=default/ovn-{namespace})`,
  );
}

function choice<T extends string>(flag: string, values: readonly T[]) {
  return (text: string): T => {
    if ((values as readonly string[]).includes(text)) return text as T;
    throw new InvalidArgumentError(`${flag} is one of ${values.join(", ")}`);
  };
}

function asArgument<T>(parse: (text: string) => T) {
  return (text: string): T => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

function quantity(flag: string) {
  return (text: string): string => {
    const parsed = parseQuantity(text);
    if (!parsed.ok) throw new InvalidArgumentError(`${flag} "${text}": ${parsed.message}`);
    return text;
  };
}

/** Adds the flags that set KubevirtSettings (shared by `osimg serve` and `osimg vm render`). */
export function addKubevirtOptions(command: Command): Command {
  return command
    .option("--storage-class <name>", "storage class of the VMs' disks (default: the cluster's default)")
    .option(
      "--network <network>",
      "pod (masquerade), kube-dc (vpc_net_0 → default/ovn-<namespace>), or multus:NAME=NS/ATTACHMENT",
      asArgument(parseNetwork),
    )
    .option(
      "--ssh-keys <delivery>",
      "cloud-init (in user-data) or access-credentials (a Secret KubeVirt propagates)",
      choice("--ssh-keys", ["cloud-init", "access-credentials"] as const),
    )
    .option("--preferences", "VMs reference the entry's VirtualMachineClusterPreference")
    .option(
      "--guest-agent <mode>",
      "auto (from the user-data), always or never: readiness probe and key propagation",
      choice("--guest-agent", ["auto", "always", "never"] as const),
    )
    .option("--virtio-win-image <image>", `virtio-win drivers containerDisk (${DEFAULT_VIRTIO_WIN_IMAGE})`)
    .option(
      "--installer-media-size <quantity>",
      "volume size for installer ISOs",
      quantity("--installer-media-size"),
    );
}

export interface KubevirtFlags {
  storageClass?: string;
  network?: PodNetwork | MultusNetwork;
  sshKeys?: SshKeyDelivery;
  preferences?: boolean;
  guestAgent?: GuestAgentMode;
  virtioWinImage?: string;
  installerMediaSize?: string;
}

export function settingsFromFlags(flags: KubevirtFlags): KubevirtSettings {
  return {
    ...DEFAULT_SETTINGS,
    ...(flags.storageClass ? { storageClass: flags.storageClass } : {}),
    ...(flags.network ? { network: flags.network } : {}),
    ...(flags.sshKeys ? { sshKeys: flags.sshKeys } : {}),
    ...(flags.preferences ? { preferences: true } : {}),
    ...(flags.guestAgent ? { guestAgent: flags.guestAgent } : {}),
    ...(flags.virtioWinImage ? { virtioWinImage: flags.virtioWinImage } : {}),
    ...(flags.installerMediaSize ? { installerMediaSize: flags.installerMediaSize } : {}),
  };
}
