// KubeVirt manifests from catalog entries: every entry of every test catalog with every combination of
// the cluster settings and the request variants, validated against KubeVirt's and CDI's schemas and
// KubeVirt's admission rules (the fake API server's validators, in-process); a covering set of them is
// also sent through the real client to the fake API server (dry run). Then the decisions one by one.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { INLINE_USER_DATA_LIMIT } from "../src/catalog/fields.ts";
import {
  buildManifests,
  HYPERV_ENLIGHTENMENTS,
  HYPERV_TIMER,
  type KubevirtManifests,
  manifestObjects,
  manifestsYaml,
  preferenceName,
  vmLabels,
} from "../src/vms/providers/kubevirt/manifests.ts";
import { buildPreference, preferencesYaml } from "../src/vms/providers/kubevirt/preferences.ts";
import {
  DEFAULT_SETTINGS,
  KUBE_DC_NETWORK,
  type KubevirtSettings,
  parseNetwork,
} from "../src/vms/providers/kubevirt/settings.ts";
import { admitPreference, admitVirtualMachine } from "./support/fake-kube/admission.ts";
import { FakeKube } from "./support/fake-kube/index.ts";
import { REFERENCE_DIR, validateAgainst } from "./support/fake-kube/schema.ts";
import {
  entriesOf,
  LARGE_USER_DATA,
  REQUEST_VARIANTS,
  type RequestVariant,
  SSH_KEY,
  specFor,
  TEST_CATALOGS,
} from "./support/fake-kube/vm-specs.ts";

const NS = "tenant-a";

/** Every combination of the settings that change what is generated. */
function settingsCombinations(): KubevirtSettings[] {
  const all: KubevirtSettings[] = [];
  for (const network of [{ kind: "pod" as const }, KUBE_DC_NETWORK])
    for (const sshKeys of ["cloud-init", "access-credentials"] as const)
      for (const preferences of [false, true])
        for (const guestAgent of ["auto", "never"] as const)
          for (const storageClass of [undefined, "fast-ssd"])
            all.push({
              ...DEFAULT_SETTINGS,
              network,
              sshKeys,
              preferences,
              guestAgent,
              ...(storageClass ? { storageClass } : {}),
            });
  return all;
}

const describeSettings = (s: KubevirtSettings) =>
  `${s.network.kind}/${s.sshKeys}/${s.preferences ? "preferences" : "explicit"}/agent-${s.guestAgent}/${s.storageClass ?? "default-class"}`;

const ALL_ENTRIES = Object.entries(TEST_CATALOGS).flatMap(([name, text]) =>
  entriesOf(text, name).map((entry) => ({ catalog: name, entry })),
);

/** `{}` is how KubeVirt turns a feature on; anywhere else an empty value is a bug. */
const PRESENCE_FLAGS = new Set([
  "acpi",
  "apic",
  "smm",
  "pod",
  "masquerade",
  "bridge",
  "blank",
  "guestAgentPing",
  "noCloud",
  "utc",
  "hyperv",
  "direct",
  "preferredAcpi",
  "preferredApic",
  "preferredSmm",
  ...Object.keys(HYPERV_ENLIGHTENMENTS),
]);

function emptyFields(value: unknown, path = ""): string[] {
  if (value === undefined || value === null || value === "") return [path];
  if (Array.isArray(value))
    return value.length === 0 ? [path] : value.flatMap((v, i) => emptyFields(v, `${path}[${i}]`));
  if (typeof value !== "object") return [];
  const entries = Object.entries(value);
  if (entries.length === 0) return PRESENCE_FLAGS.has(path.split(".").at(-1) ?? "") ? [] : [path];
  return entries.flatMap(([k, v]) => emptyFields(v, path ? `${path}.${k}` : k));
}

/** What the fake API server checks of each object, without HTTP. */
function problemsOf(manifests: KubevirtManifests, preferences: Map<string, unknown>): string[] {
  const vm = manifests.virtualMachine as unknown as Record<string, unknown>;
  const causes = [
    ...validateAgainst("kubevirt", "v1.VirtualMachine", vm),
    ...admitVirtualMachine(vm, { vmStateStorageClass: "local-path" }),
    ...manifests.dataVolumes.flatMap((dv) => validateAgainst("cdi", "v1beta1.DataVolume", dv)),
  ];
  const preference = manifests.virtualMachine.spec.preference;
  if (preference)
    causes.push(
      ...admitPreference(
        vm,
        preference.name,
        preferences.get(preference.name) as Record<string, unknown> | undefined,
      ),
    );
  const empty = manifestObjects(manifests).flatMap((o) =>
    emptyFields(o).map((p) => ({ field: `${o.kind}.${p}`, message: "empty" })),
  );
  return [...causes, ...empty].map((c) => `${c.field}: ${c.message}`);
}

describe("every entry × every settings combination × every request variant", { timeout: 120_000 }, () => {
  for (const { catalog, entry } of ALL_ENTRIES) {
    it(`${catalog}: ${entry.spec.name}`, () => {
      // The cluster has the preferences of the catalog being served.
      const preferences = new Map<string, unknown>(
        ALL_ENTRIES.filter((e) => e.catalog === catalog).map((e) => [
          preferenceName(e.entry.id),
          buildPreference(e.entry),
        ]),
      );
      let generated = 0;
      for (const settings of settingsCombinations()) {
        for (const variant of REQUEST_VARIANTS) {
          const spec = specFor(entry, "vm-1", NS, variant);
          const where = `${describeSettings(settings)} + ${variant.label}`;
          const manifests = buildManifests(spec, settings);
          expect(problemsOf(manifests, preferences), where).toEqual([]);
          generated++;
        }
      }
      expect(generated).toBeGreaterThan(0);
    });
  }

  it("covers every kind of entry: bios, efi with and without secure boot, tpm, hyperv, installers, checksums, containerDisks", () => {
    const images = ALL_ENTRIES.map(({ entry }) => entry.spec);
    expect(images.some((s) => s.firmware === "bios")).toBe(true);
    expect(images.some((s) => s.firmware === "efi" && s.features.includes("smm"))).toBe(true);
    expect(images.some((s) => s.firmware === "efi" && !s.features.includes("smm"))).toBe(true);
    expect(images.some((s) => s.features.includes("tpm") && s.features.includes("hyperv"))).toBe(true);
    expect(images.some((s) => s.bootOrder.includes("cdrom"))).toBe(true);
    expect(images.some((s) => s.bootOrder.includes("network"))).toBe(true);
    expect(images.some((s) => s.sha256 && !s.containerDisk)).toBe(true);
    expect(images.some((s) => s.containerDisk)).toBe(true);
    expect(ALL_ENTRIES.length).toBeGreaterThanOrEqual(20);
  });
});

describe("through the real client to the fake API server", { timeout: 300_000 }, () => {
  let fake: FakeKube;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;

  beforeAll(async () => {
    fake = await FakeKube.start({ namespaces: ["default", NS] });
    fake.controllers.stop();
    const config = fake.kubeConfig();
    custom = config.makeApiClient(CustomObjectsApi);
    core = config.makeApiClient(CoreV1Api);
  });

  const PREFERENCES = {
    group: "instancetype.kubevirt.io",
    version: "v1beta1",
    plural: "virtualmachineclusterpreferences",
  } as const;

  /** Creates or replaces a preference: entries of the same OS in two catalogs share its name. */
  async function applyPreference(preference: ReturnType<typeof buildPreference>): Promise<void> {
    try {
      const current = (await custom.getClusterCustomObject({
        ...PREFERENCES,
        name: preference.metadata.name,
      })) as { metadata: { resourceVersion: string } };
      await custom.replaceClusterCustomObject({
        ...PREFERENCES,
        name: preference.metadata.name,
        body: {
          ...preference,
          metadata: { ...preference.metadata, resourceVersion: current.metadata.resourceVersion },
        },
      });
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
      await custom.createClusterCustomObject({ ...PREFERENCES, body: preference });
    }
  }

  afterAll(async () => {
    await fake.close();
  });

  async function dryRunCreate(manifests: KubevirtManifests): Promise<void> {
    for (const secret of manifests.secrets)
      await core.createNamespacedSecret({ namespace: NS, body: secret, dryRun: "All" });
    for (const dv of manifests.dataVolumes)
      await custom.createNamespacedCustomObject({
        group: "cdi.kubevirt.io",
        version: "v1beta1",
        plural: "datavolumes",
        namespace: NS,
        body: dv,
        dryRun: "All",
      });
    await custom.createNamespacedCustomObject({
      group: "kubevirt.io",
      version: "v1",
      plural: "virtualmachines",
      namespace: NS,
      body: manifests.virtualMachine,
      dryRun: "All",
    });
  }

  it("accepts a covering set for every entry: each settings value and each request variant at least once", async () => {
    const combinations = settingsCombinations();
    let sent = 0;
    for (const { catalog, entry } of ALL_ENTRIES) {
      // Eight steps of stride 7 through the 32 combinations (nested in the order network, SSH keys,
      // preferences, agent, storage class) give each entry every value of every setting; i % 5 gives
      // it every request variant.
      for (let i = 0; i < REQUEST_VARIANTS.length + 3; i++) {
        const settings = combinations[(i * 7 + entry.index * 5) % combinations.length] as KubevirtSettings;
        const variant = REQUEST_VARIANTS[i % REQUEST_VARIANTS.length] as RequestVariant;
        const spec = specFor(entry, `vm-${i}`, NS, variant);
        if (settings.preferences) await applyPreference(buildPreference(entry));
        const manifests = buildManifests(spec, settings);
        await dryRunCreate(manifests).catch((error: { body?: unknown }) => {
          throw new Error(
            `${catalog}: ${entry.spec.name} (${describeSettings(settings)} + ${variant.label}): ${String(error.body)}`,
          );
        });
        sent++;
      }
    }
    expect(sent).toBeGreaterThan(ALL_ENTRIES.length * 4);
  });

  it("is refused by KubeVirt's admission below the preference's requirements", async () => {
    const windows = ALL_ENTRIES.find(({ entry }) => entry.spec.name === "Windows 11 Enterprise")?.entry;
    if (!windows) throw new Error("the built-in catalog has Windows 11 Enterprise");
    await applyPreference(buildPreference(windows));
    const spec = { ...specFor(windows, "too-small", NS), cpu: 1, memory: "1Gi", memoryBytes: 2 ** 30 };
    const manifests = buildManifests(spec, { ...DEFAULT_SETTINGS, preferences: true });
    const error = (await dryRunCreate(manifests).catch((e: unknown) => e)) as {
      code?: number;
      body?: string;
    };
    expect(error.code).toBe(422);
    expect(String(error.body)).toMatch(/insufficient CPU resources of 1 vCPU.*preference requires 4 vCPU/);
    expect(String(error.body)).toMatch(/insufficient Memory resources of 1Gi.*preference requires 8G/);
  });
});

describe("decisions", () => {
  const builtin = entriesOf(TEST_CATALOGS["catalog/images.yaml"] as string);
  const newer = entriesOf(TEST_CATALOGS["newer keys"] as string);
  const byName = (entries: typeof builtin, name: string) => {
    const found = entries.find((e) => e.spec.name === name);
    if (!found) throw new Error(`no entry ${name}`);
    return found;
  };
  const ubuntu = byName(builtin, "Ubuntu 24.04");
  const windows = byName(builtin, "Windows Server 2022");
  const template = (m: KubevirtManifests) => m.virtualMachine.spec.template.spec;

  it("uses runStrategy, never running, and labels everything it makes", () => {
    for (const runStrategy of ["Always", "RerunOnFailure", "Manual", "Halted", "Once"] as const) {
      const m = buildManifests({ ...specFor(ubuntu, "web", NS), runStrategy }, DEFAULT_SETTINGS);
      expect(m.virtualMachine.spec.runStrategy).toBe(runStrategy);
      expect("running" in m.virtualMachine.spec).toBe(false);
    }
    const m = buildManifests(specFor(ubuntu, "web", NS, { label: "pw", password: "x1" }), DEFAULT_SETTINGS);
    const labels = vmLabels(specFor(ubuntu, "web", NS));
    for (const object of manifestObjects(m)) expect(object.metadata.labels).toEqual(labels);
    for (const t of m.virtualMachine.spec.dataVolumeTemplates ?? [])
      expect(t.metadata.labels).toEqual(labels);
    expect(m.virtualMachine.spec.template.metadata.labels).toEqual(labels);
  });

  it("imports over HTTP into a volume of the requested size, in the configured storage class", () => {
    const spec = { ...specFor(ubuntu, "web", NS), storage: "40Gi", storageBytes: 40 * 2 ** 30 };
    const m = buildManifests(spec, { ...DEFAULT_SETTINGS, storageClass: "fast-ssd" });
    expect(m.dataVolumes).toEqual([]);
    expect(m.virtualMachine.spec.dataVolumeTemplates).toEqual([
      {
        metadata: { name: "web-rootdisk", labels: vmLabels(spec) },
        spec: {
          source: { http: { url: ubuntu.spec.imageUrl } },
          storage: { resources: { requests: { storage: "40Gi" } }, storageClassName: "fast-ssd" },
        },
      },
    ]);
    expect(template(m).volumes[0]).toEqual({ name: "rootdisk", dataVolume: { name: "web-rootdisk" } });
  });

  it("verifies OS_IMAGE_SHA256 through a DataVolume of its own, since dataVolumeTemplates cannot carry the checksum", () => {
    const verified = byName(newer, "Ubuntu 24.04 verified");
    const m = buildManifests(specFor(verified, "web", NS), DEFAULT_SETTINGS);
    expect(m.dataVolumes).toHaveLength(1);
    expect(m.dataVolumes[0]?.spec.source).toEqual({
      http: { url: verified.spec.imageUrl, checksum: `sha256:${verified.spec.sha256}` },
    });
    expect(m.virtualMachine.spec.dataVolumeTemplates).toBeUndefined();
    expect(template(m).volumes[0]).toEqual({ name: "rootdisk", dataVolume: { name: "web-rootdisk" } });
    // The facts behind the choice: CDI's DataVolume has the field, KubeVirt's copy of its schema does not.
    expect(validateAgainst("cdi", "v1beta1.DataVolume", m.dataVolumes[0])).toEqual([]);
    const asTemplate = {
      ...m.virtualMachine,
      spec: {
        ...m.virtualMachine.spec,
        dataVolumeTemplates: [{ metadata: { name: "x" }, spec: m.dataVolumes[0]?.spec }],
      },
    };
    expect(validateAgainst("kubevirt", "v1.VirtualMachine", asTemplate).map((c) => c.field)).toContain(
      "spec.dataVolumeTemplates[0].spec.source.http.checksum",
    );
  });

  it("pulls a containerDisk entry from its registry", () => {
    const fedora = byName(newer, "Fedora containerDisk");
    const m = buildManifests(specFor(fedora, "f", NS), DEFAULT_SETTINGS);
    expect(m.virtualMachine.spec.dataVolumeTemplates?.[0]?.spec.source).toEqual({
      registry: { url: "docker://quay.io/containerdisks/fedora:42" },
    });
  });

  it("maps firmware and features: bios by default, secure boot only with smm, persistent EFI with a TPM", () => {
    expect(
      template(buildManifests(specFor(ubuntu, "u", NS), DEFAULT_SETTINGS)).domain.firmware,
    ).toBeUndefined();
    const pxe = buildManifests(specFor(byName(newer, "PXE then disk"), "p", NS), DEFAULT_SETTINGS);
    expect(template(pxe).domain.firmware).toEqual({ bootloader: { efi: { secureBoot: false } } });
    expect(template(pxe).domain.features).toEqual({ acpi: {}, apic: {} });
    const win = template(buildManifests(specFor(windows, "w", NS), DEFAULT_SETTINGS)).domain;
    expect(win.firmware).toEqual({ bootloader: { efi: { secureBoot: true, persistent: true } } });
    expect(win.machine).toEqual({ type: "q35" });
    expect(win.features?.smm).toEqual({});
    expect(win.devices.tpm).toEqual({ persistent: true });
    const noSmm = template(
      buildManifests(specFor(byName(newer, "Windows installer verified"), "w", NS), DEFAULT_SETTINGS),
    ).domain;
    expect(noSmm.firmware).toEqual({ bootloader: { efi: { secureBoot: false, persistent: true } } });
  });

  it("uses the Hyper-V enlightenments and clock of KubeVirt's Windows preferences", () => {
    const reference = parseAllDocuments(
      readFileSync(join(REFERENCE_DIR, "common-clusterpreferences.yaml"), "utf8"),
    ).map((d) => d.toJS()) as { metadata: { name: string }; spec: Record<string, Record<string, unknown>> }[];
    const win2k22 = reference.find((p) => p.metadata.name === "windows.2k22");
    expect(win2k22?.spec.features?.preferredHyperv).toEqual(HYPERV_ENLIGHTENMENTS);
    expect(win2k22?.spec.clock?.preferredTimer).toEqual(HYPERV_TIMER);
    const domain = template(buildManifests(specFor(windows, "w", NS), DEFAULT_SETTINGS)).domain;
    expect(domain.features?.hyperv).toEqual(HYPERV_ENLIGHTENMENTS);
    expect(domain.clock).toEqual({ utc: {}, timer: HYPERV_TIMER });
  });

  it("attaches an installer ISO as a cdrom beside a blank root disk, boots in BOOT_ORDER, adds the virtio-win drivers", () => {
    const m = buildManifests(specFor(windows, "w", NS), DEFAULT_SETTINGS);
    const t = template(m);
    expect(t.domain.devices.disks).toEqual([
      { name: "rootdisk", disk: { bus: "virtio" }, bootOrder: 2 },
      { name: "installer", cdrom: { bus: "sata" }, bootOrder: 1 },
      { name: "cloudinitdisk", disk: { bus: "virtio" } },
      { name: "virtio-drivers", cdrom: { bus: "sata" } },
    ]);
    expect(m.virtualMachine.spec.dataVolumeTemplates?.map((d) => [d.metadata.name, d.spec.source])).toEqual([
      ["w-installer", { http: { url: windows.spec.imageUrl } }],
      ["w-rootdisk", { blank: {} }],
    ]);
    expect(t.volumes).toContainEqual({
      name: "virtio-drivers",
      containerDisk: { image: DEFAULT_SETTINGS.virtioWinImage },
    });
    const pxe = template(buildManifests(specFor(byName(newer, "PXE then disk"), "p", NS), DEFAULT_SETTINGS));
    expect(pxe.domain.devices.interfaces[0]?.bootOrder).toBe(1);
    expect(pxe.domain.devices.disks.find((d) => d.name === "rootdisk")?.bootOrder).toBe(2);
    const plain = template(buildManifests(specFor(ubuntu, "u", NS), DEFAULT_SETTINGS));
    expect(plain.domain.devices.disks.every((d) => d.bootOrder === undefined)).toBe(true);
  });

  it("keeps cloud-init inline up to 2048 bytes, else in a Secret; a password always in a Secret", () => {
    const small = buildManifests(specFor(ubuntu, "u", NS), DEFAULT_SETTINGS);
    const inline = template(small).volumes.find((v) => v.name === "cloudinitdisk");
    expect(inline).toMatchObject({
      cloudInitNoCloud: { userData: expect.stringContaining("qemu-guest-agent") },
    });
    expect(small.secrets).toEqual([]);

    const large = buildManifests(
      specFor(ubuntu, "u", NS, { label: "large", userData: LARGE_USER_DATA }),
      DEFAULT_SETTINGS,
    );
    expect(large.secrets).toHaveLength(1);
    expect(Buffer.byteLength(large.secrets[0]?.stringData.userdata ?? "")).toBeGreaterThan(
      INLINE_USER_DATA_LIMIT,
    );
    expect(template(large).volumes).toContainEqual({
      name: "cloudinitdisk",
      cloudInitNoCloud: { secretRef: { name: "u-cloudinit" } },
    });

    const withPassword = buildManifests(
      specFor(ubuntu, "u", NS, { label: "pw", password: "pa55word" }),
      DEFAULT_SETTINGS,
    );
    expect(withPassword.secrets[0]?.stringData.userdata).toContain("pa55word");
    expect(JSON.stringify(withPassword.virtualMachine)).not.toContain("pa55word");
  });

  it("delivers SSH keys in user-data, or through accessCredentials by the guest agent (cloud-init without one)", () => {
    const variant = { label: "key", sshKeys: [SSH_KEY] };
    const inUserData = buildManifests(specFor(ubuntu, "u", NS, variant), DEFAULT_SETTINGS);
    expect(JSON.stringify(template(inUserData).volumes)).toContain("ssh-ed25519");
    expect(template(inUserData).accessCredentials).toBeUndefined();

    const settings = { ...DEFAULT_SETTINGS, sshKeys: "access-credentials" as const };
    const agent = buildManifests(specFor(ubuntu, "u", NS, variant), settings);
    expect(JSON.stringify(template(agent).volumes)).not.toContain("ssh-ed25519");
    expect(agent.secrets.find((s) => s.metadata.name === "u-ssh-keys")?.stringData).toEqual({
      key1: SSH_KEY,
    });
    expect(template(agent).accessCredentials).toEqual([
      {
        sshPublicKey: {
          source: { secret: { secretName: "u-ssh-keys" } },
          propagationMethod: { qemuGuestAgent: { users: ["ubuntu"] } },
        },
      },
    ]);
    expect(template(agent).readinessProbe).toMatchObject({ guestAgentPing: {} });

    const cirros = byName(builtin, "CirrOS 0.6.3");
    const noAgent = buildManifests(specFor(cirros, "c", NS, variant), settings);
    expect(template(noAgent).accessCredentials?.[0]?.sshPublicKey.propagationMethod).toEqual({ noCloud: {} });
    expect(template(noAgent).readinessProbe).toBeUndefined();
    expect(noAgent.notes.join("\n")).toMatch(/no guest agent/);
  });

  it("uses the pod network with masquerade, or a Multus network such as Kube-DC's VPC", () => {
    const pod = template(buildManifests(specFor(ubuntu, "u", NS), DEFAULT_SETTINGS));
    expect(pod.networks).toEqual([{ name: "default", pod: {} }]);
    expect(pod.domain.devices.interfaces).toEqual([{ name: "default", masquerade: {} }]);
    const kubeDc = template(
      buildManifests(specFor(ubuntu, "u", "shop-prod"), {
        ...DEFAULT_SETTINGS,
        network: parseNetwork("kube-dc"),
      }),
    );
    expect(kubeDc.networks).toEqual([
      { name: "vpc_net_0", multus: { networkName: "default/ovn-shop-prod", default: true } },
    ]);
    expect(kubeDc.domain.devices.interfaces).toEqual([{ name: "vpc_net_0", bridge: {} }]);
    expect(parseNetwork("multus:net1=infra/{namespace}-vlan")).toEqual({
      kind: "multus",
      name: "net1",
      networkName: "infra/{namespace}-vlan",
    });
    expect(() => parseNetwork("multus:bad name=x/y")).toThrow(/not a network name/);
    expect(() => parseNetwork("calico")).toThrow(/expected pod, kube-dc, or multus/);
  });

  it("references the entry's preference when that mode is on, leaving firmware and features to it", () => {
    const m = buildManifests(specFor(windows, "w", NS), { ...DEFAULT_SETTINGS, preferences: true });
    expect(m.virtualMachine.spec.preference).toEqual({
      kind: "VirtualMachineClusterPreference",
      name: "osimg-windows-server-2022",
    });
    const domain = template(m).domain;
    expect(domain.firmware).toBeUndefined();
    expect(domain.features).toBeUndefined();
    expect(domain.devices.tpm).toBeUndefined();
    expect(domain.cpu).toEqual({ cores: 2 });
    expect(domain.memory).toEqual({ guest: "4G" });
  });

  it("renders each entry as a VirtualMachineClusterPreference that KubeVirt's schema accepts", () => {
    const win = buildPreference(windows);
    expect(win.metadata.name).toBe("osimg-windows-server-2022");
    expect(win.spec).toEqual({
      requirements: { cpu: { guest: 2 }, memory: { guest: "4G" } },
      firmware: { preferredEfi: { secureBoot: true, persistent: true } },
      machine: { preferredMachineType: "q35" },
      features: {
        preferredAcpi: {},
        preferredApic: {},
        preferredSmm: {},
        preferredHyperv: HYPERV_ENLIGHTENMENTS,
      },
      clock: { preferredClockOffset: { utc: {} }, preferredTimer: HYPERV_TIMER },
      devices: { preferredTPM: { persistent: true } },
    });
    expect(buildPreference(ubuntu).spec.firmware).toEqual({ preferredUseBios: true });
    const docs = parseAllDocuments(preferencesYaml(builtin)).map((d) => d.toJS());
    expect(docs).toHaveLength(builtin.length);
    for (const doc of docs) {
      expect(validateAgainst("kubevirt", "v1beta1.VirtualMachineClusterPreference", doc)).toEqual([]);
      expect(emptyFields(doc)).toEqual([]);
    }
  });

  it("renders YAML that reads back as the same objects, notes as comments", () => {
    const m = buildManifests(
      specFor(byName(newer, "Ubuntu 24.04 verified"), "web", NS, { label: "pw", password: "p4ss" }),
      DEFAULT_SETTINGS,
    );
    const text = manifestsYaml(m);
    expect(text.startsWith("# ")).toBe(true);
    expect(parseAllDocuments(text).map((d) => d.toJS())).toEqual(manifestObjects(m));
    expect(text).not.toMatch(/&a\d|\*a\d/);
    expect(parse(text.split("---\n").at(-1) as string).kind).toBe("VirtualMachine");
  });
});
