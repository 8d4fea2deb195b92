// The KubeVirt commands that need no server: `osimg vm render` (manifests of a VM, offline) and
// `osimg catalog export` (preferences; the catalog as Kube-DC's ConfigMap), run as the real CLI.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { buildCatalog } from "../src/catalog/catalog.ts";
import { BUILTIN_CATALOG_TEXT, catalogYaml, fixture, UBUNTU } from "./support/catalogs.ts";
import { validateAgainst } from "./support/fake-kube/schema.ts";
import { SSH_KEY } from "./support/fake-kube/vm-specs.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "osimg-kubevirt-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function osimg(args: string[], input?: string) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", input });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from YAML, checked field by field below
type Doc = Record<string, any>;
const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Doc);

describe("osimg vm render", { timeout: 120_000 }, () => {
  it("prints the manifests of a VM from a catalog file, with the settings given", () => {
    const catalog = join(dir, "images.yaml");
    writeFileSync(catalog, fixture("kube-dc/document-examples.yaml"));
    const { code, stdout, stderr } = osimg(
      [
        "vm",
        "render",
        "--catalog",
        catalog,
        "--image",
        "Fedora 40",
        "--name",
        "f40",
        "--namespace",
        "shop",
        "--cpu",
        "2",
        "--memory",
        "4Gi",
        "--network",
        "kube-dc",
        "--storage-class",
        "fast-ssd",
        "--ssh-key",
        SSH_KEY,
        "--password-stdin",
      ],
      "hunter2-pass\n",
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const objects = docs(stdout);
    expect(objects.map((o) => o.kind)).toEqual(["Secret", "VirtualMachine"]);
    const [secret, vm] = objects as [Doc, Doc];
    expect(secret.stringData.userdata).toContain("hunter2-pass");
    expect(vm.metadata).toMatchObject({ name: "f40", namespace: "shop" });
    expect(vm.spec.template.spec.domain).toMatchObject({ cpu: { cores: 2 }, memory: { guest: "4Gi" } });
    expect(vm.spec.template.spec.networks).toEqual([
      { name: "vpc_net_0", multus: { networkName: "default/ovn-shop", default: true } },
    ]);
    expect(vm.spec.dataVolumeTemplates[0].spec.storage.storageClassName).toBe("fast-ssd");
    expect(validateAgainst("kubevirt", "v1.VirtualMachine", vm)).toEqual([]);
  });

  it("defaults to the built-in catalog, and names what is wrong with a request", () => {
    const ok = osimg(["vm", "render", "--image", "Debian 12", "--name", "db", "-n", "default"]);
    expect(ok.code).toBe(0);
    expect(docs(ok.stdout).map((o) => o.kind)).toEqual(["VirtualMachine"]);
    const small = osimg(["vm", "render", "--image", "Debian 12", "--name", "db", "--memory", "512Mi"]);
    expect(small.code).toBe(1);
    expect(small.stderr).toContain(
      'error: memory: 512Mi is below the minimum 1G of "Debian 12" (minimum 1G)',
    );
    const unknown = osimg(["vm", "render", "--image", "Debain 12", "--name", "db"]);
    expect(unknown.stderr).toContain('no OS image "Debain 12" in the catalog');
    expect(unknown.stderr).toContain('did you mean "Debian 12"?');
    const badFlag = osimg(["vm", "render", "--image", "Debian 12", "--name", "db", "--network", "weird"]);
    expect(badFlag.code).not.toBe(0);
    expect(badFlag.stderr).toMatch(/expected pod, kube-dc, or multus/);
  });
});

describe("osimg catalog export", { timeout: 120_000 }, () => {
  it("--preferences prints a VirtualMachineClusterPreference per entry, or writes them to a file", () => {
    const { code, stdout } = osimg(["catalog", "export", "--preferences"]);
    expect(code).toBe(0);
    const preferences = docs(stdout);
    const entries = buildCatalog(BUILTIN_CATALOG_TEXT, { kind: "file", location: "x" }).entries;
    expect(preferences.map((p) => p.metadata.annotations["osimg.io/os-name"])).toEqual(
      entries.map((e) => e.spec.name),
    );
    for (const p of preferences)
      expect(validateAgainst("kubevirt", "v1beta1.VirtualMachineClusterPreference", p)).toEqual([]);
    const out = join(dir, "preferences.yaml");
    expect(osimg(["catalog", "export", "--preferences", out]).code).toBe(0);
    expect(readFileSync(out, "utf8")).toBe(stdout);
  });

  it("--configmap writes the catalog as Kube-DC's ConfigMap, byte for byte", () => {
    const catalog = join(dir, "team.yaml");
    const text = catalogYaml([UBUNTU, { ...UBUNTU, OS_NAME: "Ubuntu 24.04 (2)" }]);
    writeFileSync(catalog, text);
    const { code, stdout } = osimg(["catalog", "export", catalog, "--configmap", "kube-dc/images-configmap"]);
    expect(code).toBe(0);
    const configMap = parse(stdout) as { metadata: Record<string, string>; data: Record<string, string> };
    expect(configMap.metadata).toEqual({ name: "images-configmap", namespace: "kube-dc" });
    expect(configMap.data["images.yaml"]).toBe(text);
  });

  it("refuses a catalog with errors, and a command without a format", () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, catalogYaml([{ ...UBUNTU, MIN_MEMORY: "lots" }]));
    const refused = osimg(["catalog", "export", broken, "--preferences"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/broken\.yaml:\d+:\d+: error: MIN_MEMORY/);
    expect(refused.stdout).toBe("");
    const neither = osimg(["catalog", "export"]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain("give one of --preferences [out] or --configmap NAMESPACE/NAME");
  });
});
