import { describe, expect, it } from "vitest";
import type { Finding } from "../src/catalog/findings.ts";
import { parseCatalog } from "../src/catalog/parse.ts";
import {
  BUILTIN_CATALOG_TEXT,
  catalogYaml,
  configMapYaml,
  fixture,
  positionOf,
  UBUNTU,
} from "./support/catalogs.ts";

const errors = (findings: Finding[]) => findings.filter((f) => f.severity === "error");
const warnings = (findings: Finding[]) => findings.filter((f) => f.severity === "warning");
const withEntry = (overrides: Record<string, string>, drop: string[] = []) => {
  const fields = { ...UBUNTU, ...overrides };
  for (const key of drop) delete fields[key];
  return catalogYaml([fields]);
};
const only = (findings: Finding[], code: string) => {
  const matching = findings.filter((f) => f.code === code);
  expect(matching, `expected one ${code} in ${JSON.stringify(findings, null, 2)}`).toHaveLength(1);
  return matching[0] as Finding;
};

describe("Kube-DC compatibility", () => {
  it.each([
    "kube-dc/os-images-configmap.yaml",
    "kube-dc/document-examples.yaml",
    "kube-dc/configmap-from-cluster.yaml",
  ])("%s lints clean", (name) => {
    const result = parseCatalog(fixture(name));
    expect(result.findings).toEqual([]);
    expect(result.entries.length).toBeGreaterThan(0);
  });

  it("the built-in catalog lints clean", () => {
    const result = parseCatalog(BUILTIN_CATALOG_TEXT);
    expect(result.findings).toEqual([]);
    expect(result.entries.length).toBeGreaterThanOrEqual(12);
  });

  it("keeps values exactly as written, in the order written, CLOUD_INIT as one string", () => {
    const result = parseCatalog(fixture("kube-dc/os-images-configmap.yaml"));
    expect(result.format).toBe("configmap");
    const values = result.entries[0]?.values;
    expect(Object.keys(values ?? {})).toEqual([
      "OS_NAME",
      "CLOUD_USER",
      "OS_IMAGE_URL",
      "MIN_MEMORY",
      "MIN_VCPU",
      "MIN_STORAGE",
      "FIRMWARE_TYPE",
      "MACHINE_TYPE",
      "FEATURES",
      "CLOUD_INIT",
    ]);
    expect(values?.MIN_MEMORY).toBe("1G");
    expect(values?.MIN_VCPU).toBe("1");
    expect(values?.CLOUD_INIT).toBe("#cloud-config\npackage_update: true\npackages:\n  - qemu-guest-agent\n");
  });

  it("parses values beside them: bytes, counts, enums, sets", () => {
    const spec = parseCatalog(fixture("kube-dc/document-examples.yaml")).entries[2]?.spec;
    expect(spec).toMatchObject({
      name: "Windows 11 Enterprise",
      cloudUser: "Administrator",
      minMemoryBytes: 8e9,
      minVcpu: 4,
      minStorageBytes: 60e9,
      firmware: "efi",
      machineType: "pc-q35-rhel8.6.0",
      features: ["hyperv", "acpi", "apic", "smm", "tpm"],
    });
  });

  it("reads every newer Kube-DC key", () => {
    const text = withEntry({
      MIN_MEMORY: "2Gi",
      OS_IMAGE_UPSTREAM: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
      OS_IMAGE_MIRROR_PATH: "ubuntu/noble.img",
      OS_IMAGE_SHA256: "A".repeat(64),
      OS_CONTAINERDISK_REPO: "quay.io/containerdisks/ubuntu",
      OS_CONTAINERDISK_TAG: "24.04",
      OS_FAMILY_ID: "ubuntu",
    }).concat("    OS_IMAGE_DISCOVERY:\n      type: http-index\n      pattern: noble-*.img\n");
    const result = parseCatalog(text);
    expect(result.findings).toEqual([]);
    expect(result.entries[0]?.spec).toMatchObject({
      upstreamUrl: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
      mirrorPath: "ubuntu/noble.img",
      sha256: "a".repeat(64),
      containerDisk: { repo: "quay.io/containerdisks/ubuntu", tag: "24.04" },
      familyId: "ubuntu",
      discovery: { type: "http-index", pattern: "noble-*.img" },
    });
  });

  it("keeps unknown keys in the served values and warns about them, suggesting the known one", () => {
    const text = withEntry({ MIN_MEMROY: "2G", X_CUSTOM: "kept" });
    const result = parseCatalog(text);
    expect(result.entries[0]?.values.X_CUSTOM).toBe("kept");
    expect(result.entries[0]?.values.MIN_MEMROY).toBe("2G");
    const typo = result.findings.find((f) => f.path === "images[0].MIN_MEMROY");
    expect(typo).toMatchObject({
      severity: "warning",
      code: "entry.unknown_field",
      ...positionOf(text, "MIN_MEMROY"),
    });
    expect(typo?.hint).toContain("MIN_MEMORY");
    expect(errors(result.findings)).toEqual([]);
  });
});

describe("validation rules", () => {
  it.each(["OS_NAME", "CLOUD_USER", "OS_IMAGE_URL"])("a missing %s is an error at the entry", (field) => {
    const text = withEntry({}, [field]);
    const f = only(parseCatalog(text).findings, "entry.missing");
    expect(f).toMatchObject({ severity: "error", path: `images[0].${field}`, line: 2, column: 5 });
  });

  it("a bad quantity points at its value with a fix", () => {
    const text = withEntry({ MIN_MEMORY: "8 GB" });
    const f = only(parseCatalog(text).findings, "quantity.invalid");
    expect(f).toMatchObject({
      severity: "error",
      path: "images[0].MIN_MEMORY",
      ...positionOf(text, '"8 GB"'),
    });
    expect(f.hint).toContain('"8G"');
  });

  it('"512m" (milli) is an error that explains m', () => {
    const f = only(parseCatalog(withEntry({ MIN_MEMORY: "512m" })).findings, "quantity.implausible");
    expect(f.hint).toContain("milli");
    expect(f.hint).toContain('"512M"');
  });

  it("a size without a unit is an error", () => {
    const f = only(parseCatalog(withEntry({ MIN_STORAGE: "20" })).findings, "quantity.implausible");
    expect(f.hint).toContain('"20G"');
  });

  it.each(["0", "-1", "1.5", "two", "1000"])("MIN_VCPU %j is an error", (vcpu) => {
    const f = only(parseCatalog(withEntry({ MIN_VCPU: vcpu })).findings, "vcpu.invalid");
    expect(f.path).toBe("images[0].MIN_VCPU");
  });

  it("FIRMWARE_TYPE uefi is an error that suggests efi", () => {
    const text = withEntry({ FIRMWARE_TYPE: "uefi" });
    const f = only(parseCatalog(text).findings, "firmware.invalid");
    expect(f).toMatchObject({ severity: "error", ...positionOf(text, '"uefi"') });
    expect(f.hint).toContain('"efi"');
  });

  it("an unknown feature is an error at its own column, with the closest feature", () => {
    const text = withEntry({ FEATURES: "acpi, tmp" });
    const f = only(parseCatalog(text).findings, "features.unknown");
    expect(f).toMatchObject({ severity: "error", ...positionOf(text, "tmp") });
    expect(f.hint).toContain('"tpm"');
  });

  it("duplicate and empty feature items are warnings", () => {
    const findings = parseCatalog(withEntry({ FEATURES: "acpi,acpi," })).findings;
    expect(findings.map((f) => f.code).sort()).toEqual(["features.duplicate", "features.empty"]);
  });

  it.each([
    "tpm",
    "smm",
    "smm,tpm",
  ])("FEATURES %s without efi is a warning that names Windows 11", (features) => {
    const f = only(
      parseCatalog(withEntry({ FEATURES: features, FIRMWARE_TYPE: "bios" })).findings,
      "features.needs_efi",
    );
    expect(f.severity).toBe("warning");
    expect(f.hint).toContain("Windows 11");
  });

  it.each(["q35", "pc-q35-rhel8.6.0", "pc-q35-9.2"])("MACHINE_TYPE %s is accepted", (machine) => {
    expect(parseCatalog(withEntry({ MACHINE_TYPE: machine })).findings).toEqual([]);
  });

  it("an i440fx machine is a warning (KubeVirt emulates q35 only)", () => {
    const f = only(parseCatalog(withEntry({ MACHINE_TYPE: "pc-i440fx-8.2" })).findings, "machine.i440fx");
    expect(f.severity).toBe("warning");
  });

  it.each(["virt", "q35 ", "microvm"])("MACHINE_TYPE %j is an error", (machine) => {
    only(parseCatalog(withEntry({ MACHINE_TYPE: machine })).findings, "machine.invalid");
  });

  it("an http URL is a warning, ftp and relative URLs are errors", () => {
    expect(
      only(parseCatalog(withEntry({ OS_IMAGE_URL: "http://mirror.local/u.img" })).findings, "url.insecure")
        .severity,
    ).toBe("warning");
    only(parseCatalog(withEntry({ OS_IMAGE_URL: "ftp://mirror.local/u.img" })).findings, "url.scheme");
    only(parseCatalog(withEntry({ OS_IMAGE_URL: "images/u.img" })).findings, "url.invalid");
  });

  it("CLOUD_INIT without #cloud-config is an error", () => {
    only(
      parseCatalog(withEntry({ CLOUD_INIT: "packages:\n  - qemu-guest-agent\n" })).findings,
      "cloud_init.header",
    );
  });

  it("a #! script is accepted as CLOUD_INIT", () => {
    expect(parseCatalog(withEntry({ CLOUD_INIT: "#!/bin/sh\necho hi\n" })).findings).toEqual([]);
  });

  it("CLOUD_INIT that is not YAML is an error at the line inside the block", () => {
    const text = withEntry({ CLOUD_INIT: "#cloud-config\npackages:\n  - qemu-guest-agent\n - broken\n" });
    const f = only(parseCatalog(text).findings, "cloud_init.yaml");
    expect(f.line).toBe(positionOf(text, " - broken").line);
  });

  it("a key set twice in CLOUD_INIT is a warning at the second one", () => {
    const text = withEntry({ CLOUD_INIT: "#cloud-config\npackages: [a]\nruncmd: [b]\npackages: [c]\n" });
    const f = only(parseCatalog(text).findings, "cloud_init.duplicate_key");
    expect(f).toMatchObject({ severity: "warning", ...positionOf(text, "packages: [c]") });
  });

  it("`images:` twice is an error", () => {
    only(parseCatalog(`${catalogYaml([UBUNTU])}images: []\n`).findings, "catalog.duplicate_images");
  });

  it("CLOUD_INIT that is not a mapping is an error", () => {
    only(
      parseCatalog(withEntry({ CLOUD_INIT: "#cloud-config\n- just a list\n" })).findings,
      "cloud_init.shape",
    );
  });

  it("CLOUD_INIT over 2048 bytes is a warning about the Secret", () => {
    const big = `#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: ${"x".repeat(2100)}\n`;
    const f = only(parseCatalog(withEntry({ CLOUD_INIT: big })).findings, "cloud_init.size");
    expect(f.severity).toBe("warning");
    expect(f.hint).toContain("Secret");
  });

  it("a duplicate OS_NAME is an error that names the first entry's line", () => {
    const text = catalogYaml([UBUNTU, { ...UBUNTU }]);
    const result = parseCatalog(text);
    const f = only(result.findings, "entry.duplicate_name");
    expect(f.path).toBe("images[1].OS_NAME");
    expect(f.message).toContain("line 2");
    expect(result.entries.map((e) => e.id)).toEqual(["ubuntu-24.04", "ubuntu-24.04-2"]);
  });

  it.each([
    ["abc", "sha256.invalid"],
    [`sha256:${"a".repeat(64)}`, "sha256.invalid"],
    ["a".repeat(128), "sha256.invalid"],
  ])("OS_IMAGE_SHA256 %j is an error", (sha, code) => {
    only(parseCatalog(withEntry({ OS_IMAGE_SHA256: sha })).findings, code);
  });

  it("BOOT_ORDER accepts cdrom, disk, network and refuses the rest", () => {
    expect(parseCatalog(withEntry({ BOOT_ORDER: "disk,network" })).entries[0]?.spec.bootOrder).toEqual([
      "disk",
      "network",
    ]);
    const text = withEntry({ BOOT_ORDER: "disk,usb" });
    expect(only(parseCatalog(text).findings, "boot_order.unknown")).toMatchObject(positionOf(text, "usb"));
  });

  it("unknown ADDITIONAL_DISKS are warnings", () => {
    expect(
      only(parseCatalog(withEntry({ ADDITIONAL_DISKS: "floppy" })).findings, "additional_disks.unknown")
        .severity,
    ).toBe("warning");
  });

  it("an unquoted number is accepted with a warning to quote it", () => {
    const result = parseCatalog(catalogYaml([UBUNTU]).replace('MIN_VCPU: "1"', "MIN_VCPU: 2"));
    expect(result.entries[0]?.values.MIN_VCPU).toBe(2);
    expect(result.entries[0]?.spec.minVcpu).toBe(2);
    expect(only(result.findings, "entry.not_quoted").hint).toContain('MIN_VCPU: "2"');
  });

  it("a list where a string belongs is an error with the comma-list form", () => {
    const text = catalogYaml([UBUNTU]).replace('FEATURES: "acpi"', "FEATURES:\n      - acpi\n      - smm");
    const f = only(parseCatalog(text).findings, "entry.not_string");
    expect(f.hint).toContain('"a,b"');
  });

  it("an invalid CLOUD_USER is an error", () => {
    only(parseCatalog(withEntry({ CLOUD_USER: "root user" })).findings, "cloud_user.invalid");
  });

  it("OS_CONTAINERDISK_TAG without a repository is a warning", () => {
    only(
      parseCatalog(withEntry({ OS_CONTAINERDISK_TAG: "24.04" })).findings,
      "containerdisk.tag_without_repo",
    );
  });

  it("an entry's validity reflects only its own errors", () => {
    const result = parseCatalog(catalogYaml([UBUNTU, { ...UBUNTU, OS_NAME: "Broken", MIN_MEMORY: "lots" }]));
    expect(result.entries.map((e) => e.valid)).toEqual([true, false]);
  });
});

describe("document shape", () => {
  it("a YAML syntax error is a finding with a position, never an exception", () => {
    const text = 'images:\n  - OS_NAME: "Ubuntu\n    CLOUD_USER: ubuntu\n';
    const result = parseCatalog(text);
    expect(errors(result.findings).length).toBeGreaterThan(0);
    expect(errors(result.findings)[0]?.code).toMatch(/^yaml\./);
  });

  it("wrong indentation is reported at its line", () => {
    const text = catalogYaml([UBUNTU]).replace('    CLOUD_USER: "ubuntu"', '   CLOUD_USER: "ubuntu"');
    const result = parseCatalog(text);
    expect(errors(result.findings)[0]?.line).toBe(positionOf(text, 'CLOUD_USER: "ubuntu"').line);
  });

  it.each([
    ["", "catalog.empty"],
    ["# only a comment\n", "catalog.empty"],
    ["images: 3\n", "catalog.images_shape"],
    ["entries: []\n", "catalog.no_images"],
    ["- OS_NAME: x\n", "catalog.shape"],
    ["images:\n  - just a string\n", "entry.shape"],
  ])("%j gives %s", (text, code) => {
    const result = parseCatalog(text);
    expect(result.findings.map((f) => f.code)).toContain(code);
    expect(result.entries).toEqual([]);
  });

  it("an empty images list is a warning, not an error", () => {
    expect(warnings(parseCatalog("images: []\n").findings)).toEqual([]);
    expect(parseCatalog("images:\n").findings.map((f) => f.code)).toEqual(["catalog.no_entries"]);
  });

  it("a ConfigMap without images.yaml names the key it found instead", () => {
    const text = configMapYaml(catalogYaml([UBUNTU])).replace("images.yaml: |", "image.yaml: |");
    const f = only(parseCatalog(text).findings, "configmap.no_key");
    expect(f.hint).toContain('"image.yaml"');
  });

  it("a ConfigMap whose images.yaml is a mapping (the | was forgotten) says how to fix it", () => {
    const text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  images.yaml:\n    images: []\n";
    const f = only(parseCatalog(text).findings, "configmap.not_string");
    expect(f.hint).toContain("images.yaml: |");
  });

  it("duplicate keys in an entry are reported", () => {
    const text = catalogYaml([UBUNTU]).replace(
      '    MIN_VCPU: "1"\n',
      '    MIN_VCPU: "1"\n    MIN_VCPU: "2"\n',
    );
    const f = only(parseCatalog(text).findings, "entry.duplicate_key");
    expect(f).toMatchObject({
      severity: "error",
      path: "images[0].MIN_VCPU",
      ...positionOf(text, 'MIN_VCPU: "2"'),
    });
    expect(f.message).toContain("first at line");
  });

  it("an extra YAML document is ignored with a warning", () => {
    const text = `${catalogYaml([UBUNTU])}---\nother: true\n`;
    expect(only(parseCatalog(text).findings, "catalog.extra_document").severity).toBe("warning");
  });
});

describe("positions inside a ConfigMap's images.yaml string", () => {
  it("point at the line of the file the user edits (block literal)", () => {
    const text = configMapYaml(
      catalogYaml([UBUNTU, { ...UBUNTU, OS_NAME: "Broken", MIN_MEMORY: "8 GB", FEATURES: "acpi,tmp" }]),
    );
    const result = parseCatalog(text);
    expect(only(result.findings, "quantity.invalid")).toMatchObject({
      path: "images[1].MIN_MEMORY",
      ...positionOf(text, '"8 GB"'),
    });
    expect(only(result.findings, "features.unknown")).toMatchObject(positionOf(text, "tmp"));
  });

  it("point at the line of the file inside CLOUD_INIT inside the ConfigMap", () => {
    const text = configMapYaml(
      catalogYaml([{ ...UBUNTU, CLOUD_INIT: "#cloud-config\npackages:\n  - a\n - broken\n" }]),
    );
    const f = only(parseCatalog(text).findings, "cloud_init.yaml");
    expect(f.line).toBe(positionOf(text, " - broken").line);
  });

  it("point into a JSON manifest's escaped string (kubectl get -o json)", () => {
    const images = catalogYaml([{ ...UBUNTU, FIRMWARE_TYPE: "uefi" }]);
    const text = JSON.stringify(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "images-configmap" },
        data: { "images.yaml": images },
      },
      null,
      2,
    );
    const f = only(parseCatalog(text).findings, "firmware.invalid");
    const line = text.split("\n").findIndex((l) => l.includes("images.yaml")) + 1;
    expect(f.line).toBe(line);
    expect(text.slice(text.indexOf('\\"uefi'), text.indexOf('\\"uefi') + 6)).toBe('\\"uefi');
    const lineText = text.split("\n")[line - 1] as string;
    expect(
      lineText.slice(f.column - 1).startsWith('\\"uefi') || lineText.slice(f.column - 1).startsWith('"uefi'),
    ).toBe(true);
  });
});
