// VmSpecs for KubeVirt tests: every entry of the catalogs osimg is tested against (the built-in one, the
// Kube-DC document's examples, the ConfigMaps from a cluster, and entries with the newer Kube-DC keys),
// at its minimums, with the request variants the provider must handle.
import { parse } from "yaml";
import { buildCatalog } from "../../../src/catalog/catalog.ts";
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import type { RunStrategy, VmSpec } from "../../../src/vms/model.ts";
import { imageOf } from "../../../src/vms/request.ts";
import { BUILTIN_CATALOG_TEXT, catalogYaml, fixture, UBUNTU } from "../catalogs.ts";

export const SSH_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5LWZvci1vc2ltZy10ZXN0cy0xMjM0NTY3 tester@osimg";

/** Entries with the keys newer Kube-DC versions added: a checksum, a containerDisk, PXE boot. */
export const NEWER_KEYS_CATALOG = catalogYaml([
  {
    ...UBUNTU,
    OS_NAME: "Ubuntu 24.04 verified",
    OS_IMAGE_SHA256: "5f2c2b1e0d6a8a1f3c4b9e7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f",
    OS_FAMILY_ID: "ubuntu",
  },
  {
    ...UBUNTU,
    OS_NAME: "Fedora containerDisk",
    CLOUD_USER: "fedora",
    OS_CONTAINERDISK_REPO: "quay.io/containerdisks/fedora",
    OS_CONTAINERDISK_TAG: "42",
  },
  {
    ...UBUNTU,
    OS_NAME: "PXE then disk",
    FIRMWARE_TYPE: "efi",
    FEATURES: "acpi,apic",
    BOOT_ORDER: "network,disk",
  },
  {
    OS_NAME: "Windows installer verified",
    CLOUD_USER: "Administrator",
    OS_IMAGE_URL: "https://images.example.com/windows/server-2025.iso",
    OS_IMAGE_SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    MIN_MEMORY: "4Gi",
    MIN_VCPU: "2",
    MIN_STORAGE: "64Gi",
    FIRMWARE_TYPE: "efi",
    MACHINE_TYPE: "q35",
    FEATURES: "hyperv,acpi,apic,tpm",
    BOOT_ORDER: "cdrom,disk",
    ADDITIONAL_DISKS: "virtio-drivers",
  },
]);

const configMapText = (name: string) =>
  (parse(fixture(name)) as { data: Record<string, string> }).data["images.yaml"] as string;

/** Every catalog the KubeVirt tests generate manifests for, by name. */
export const TEST_CATALOGS: Record<string, string> = {
  "catalog/images.yaml": BUILTIN_CATALOG_TEXT,
  "kube-dc/document-examples.yaml": fixture("kube-dc/document-examples.yaml"),
  "kube-dc/os-images-configmap.yaml": configMapText("kube-dc/os-images-configmap.yaml"),
  "kube-dc/configmap-from-cluster.yaml": configMapText("kube-dc/configmap-from-cluster.yaml"),
  "newer keys": NEWER_KEYS_CATALOG,
};

export function entriesOf(text: string, location = "test"): CatalogEntry[] {
  const catalog = buildCatalog(text, { kind: "file", location });
  const broken = catalog.findings.filter((f) => f.severity === "error");
  if (broken.length > 0) throw new Error(`${location}: ${broken.map((f) => f.message).join("; ")}`);
  return catalog.entries;
}

export interface RequestVariant {
  label: string;
  sshKeys?: string[];
  password?: string;
  userData?: string;
  runStrategy?: RunStrategy;
}

/** A #cloud-config larger than KubeVirt's inline limit once merged. */
export const LARGE_USER_DATA = `#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: |\n${"      osimg test line that makes the user-data larger than two kilobytes\n".repeat(40)}`;

export const REQUEST_VARIANTS: readonly RequestVariant[] = [
  { label: "defaults" },
  { label: "ssh key", sshKeys: [SSH_KEY], runStrategy: "RerunOnFailure" },
  { label: "password", password: "s3cret-pass", runStrategy: "Manual" },
  { label: "large user-data", userData: LARGE_USER_DATA, runStrategy: "Halted" },
  {
    label: "everything",
    sshKeys: [SSH_KEY],
    password: "s3cret-pass",
    userData: "#cloud-config\npackages:\n  - htop\n",
    runStrategy: "Once",
  },
];

/** The VmSpec of a request at the entry's minimums (what the Create VM dialog proposes). */
export function specFor(
  entry: CatalogEntry,
  name: string,
  namespace: string,
  variant: RequestVariant = { label: "defaults" },
): VmSpec {
  const s = entry.spec;
  const memory = s.minMemoryBytes !== undefined ? String(entry.values.MIN_MEMORY) : "1Gi";
  const storage = s.minStorageBytes !== undefined ? String(entry.values.MIN_STORAGE) : "10Gi";
  return {
    namespace,
    name,
    image: imageOf(entry),
    cpu: s.minVcpu ?? 1,
    memory,
    memoryBytes: s.minMemoryBytes ?? 2 ** 30,
    storage,
    storageBytes: s.minStorageBytes ?? 10 * 2 ** 30,
    sshKeys: variant.sshKeys ?? [],
    password: variant.password,
    userData: variant.userData,
    runStrategy: variant.runStrategy ?? "Always",
  };
}
