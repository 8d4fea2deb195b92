// The NoCloud seed of a VM: user-data, meta-data and (when asked) network-config, and the ISO 9660 volume
// labelled "cidata" that carries them. cloud-init finds the volume by its label, reads the three files, and
// runs once per instance-id: a new instance-id makes it provision again.
import { stringify } from "yaml";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { buildIso, type IsoFile } from "./iso9660.ts";
import { type MergedUserData, mergeUserData, UserDataError, type UserDataRequest } from "./userdata.ts";

export const NOCLOUD_LABEL = "cidata";

/** A cloud-init network-config (version 1 or 2 of the netplan-like format), written as YAML. */
export type NetworkConfig = { version: 1 | 2 } & Record<string, unknown>;

export interface NoCloudInput extends UserDataRequest {
  /** The catalog entry's CLOUD_INIT, when it has one. */
  catalogCloudInit?: string | undefined;
  /** Changes whenever the VM is provisioned anew (e.g. a UUID per VM). */
  instanceId: string;
  /** The guest's host name (a DNS-1123 label), from the VM name. */
  hostname: string;
  networkConfig?: NetworkConfig | undefined;
}

export interface NoCloudSeed {
  userData: string;
  metaData: string;
  networkConfig?: string;
  format: MergedUserData["format"];
  warnings: string[];
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** meta-data: the instance id and the host name. */
export function metaData(instanceId: string, hostname: string): string {
  if (instanceId.trim() === "" || /[\r\n]/.test(instanceId))
    throw new UserDataError("instanceId", "must be one non-empty line");
  if (!LABEL.test(hostname))
    throw new UserDataError(
      "hostname",
      `"${hostname}" is not a DNS-1123 label`,
      "use lower-case letters, digits and -, at most 63 characters",
    );
  return stringify({ "instance-id": instanceId, "local-hostname": hostname });
}

/**
 * DHCP on the guest's NIC. cloud-init does this by itself when no network-config is given; use this when
 * the image's own default is different, or with a MAC address to pin the configuration to one NIC.
 */
export function dhcpNetworkConfig(macAddress?: string): NetworkConfig {
  const match = macAddress ? { macaddress: macAddress.toLowerCase() } : { name: "e*" };
  return { version: 2, ethernets: { nic0: { match, dhcp4: true, dhcp6: false } } };
}

export function buildNoCloudSeed(input: NoCloudInput): NoCloudSeed {
  const merged = mergeUserData(input.catalogCloudInit, input);
  const seed: NoCloudSeed = {
    userData: merged.text,
    metaData: metaData(input.instanceId, input.hostname),
    format: merged.format,
    warnings: merged.warnings,
  };
  if (input.networkConfig) seed.networkConfig = stringify(input.networkConfig);
  return seed;
}

export function seedFiles(seed: NoCloudSeed): IsoFile[] {
  const files: IsoFile[] = [
    { path: "user-data", data: seed.userData },
    { path: "meta-data", data: seed.metaData },
  ];
  if (seed.networkConfig !== undefined) files.push({ path: "network-config", data: seed.networkConfig });
  return files;
}

/** The seed as ISO bytes (volume id "cidata", Joliet and Rock Ridge names). */
export function noCloudIso(seed: NoCloudSeed, date?: Date): Buffer {
  return buildIso({ volumeId: NOCLOUD_LABEL, files: seedFiles(seed), ...(date ? { date } : {}) });
}

/** Writes the seed ISO to `path` atomically (a reader never sees half an ISO). */
export async function writeNoCloudIso(path: string, seed: NoCloudSeed, date?: Date): Promise<void> {
  await writeFileAtomic(path, noCloudIso(seed, date), 0o644);
}
