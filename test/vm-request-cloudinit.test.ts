// The Create VM dialog's cloud-init editor is prefilled with the entry's CLOUD_INIT and sends its text as
// `cloudInit`, which replaces the entry's for this VM (Kube-DC's dialog does the same); `userData` is still
// merged over it. Without the field the entry's CLOUD_INIT stays.
import { describe, expect, it } from "vitest";
import { parseCatalog } from "../src/catalog/parse.ts";
import { mergeUserData } from "../src/cloudinit/userdata.ts";
import { validateVmRequest } from "../src/vms/request.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";

const context = { namespace: "demo", entries: parseCatalog(catalogYaml([UBUNTU])).entries };
const image = "Ubuntu 24.04";

function specOf(request: Record<string, unknown>) {
  const result = validateVmRequest({ name: "vm1", image, ...request }, context);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

describe("cloudInit in a VM request", () => {
  it("keeps the entry's CLOUD_INIT when the request has none", () => {
    expect(specOf({}).image.cloudInit).toBe(UBUNTU.CLOUD_INIT);
  });

  it("replaces the entry's CLOUD_INIT: an item removed in the editor is not merged back", () => {
    const edited = "#cloud-config\npackages:\n  - nginx\n";
    const spec = specOf({ cloudInit: edited, userData: "#cloud-config\nruncmd:\n  - echo hi\n" });
    expect(spec.image.cloudInit).toBe(edited);
    const merged = mergeUserData(spec.image.cloudInit, {
      cloudUser: "ubuntu",
      sshKeys: [],
      userData: spec.userData,
    }).text;
    expect(merged).toContain("- nginx");
    expect(merged).toContain("echo hi");
    expect(merged).not.toContain("qemu-guest-agent");
  });

  it("takes an empty editor as no cloud-init at all", () => {
    expect(specOf({ cloudInit: "" }).image.cloudInit).toBe("");
  });

  it("names cloudInit, with line and column, when the editor's text is not valid", () => {
    const result = validateVmRequest(
      { name: "vm1", image, cloudInit: "#cloud-config\npackages: a: b\n" },
      context,
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.field).toBe("cloudInit");
    expect(result.errors[0]?.message).toMatch(/not valid YAML.*\(line 2, column \d+\)/);
    expect(result.errors[0]).toMatchObject({ line: 2, column: expect.any(Number) });
  });
});
