import { describe, expect, it } from "vitest";
import { parseCatalog } from "../src/catalog/parse.ts";
import { allowedActions, VM_PHASES } from "../src/vms/model.ts";
import { type RequestContext, validateVmRequest } from "../src/vms/request.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3p8n8Qm0pQm4r6c8a1b2c3d4e5f6g7h8i9j0k1l2m3 user@host";
const entries = parseCatalog(
  catalogYaml([
    { ...UBUNTU, MIN_MEMORY: "1G", MIN_VCPU: "2", MIN_STORAGE: "20G" },
    { ...UBUNTU, OS_NAME: "Broken", MIN_MEMORY: "lots" },
    { OS_NAME: "Bare", CLOUD_USER: "cirros", OS_IMAGE_URL: "https://example.com/cirros.img" },
  ]),
).entries;
const context = { namespace: "demo", entries };

const errorsOf = (raw: unknown, ctx: RequestContext = context) => {
  const result = validateVmRequest(raw, ctx);
  if (result.ok) throw new Error("expected errors");
  return result.errors;
};

describe("validateVmRequest", () => {
  it("resolves a request against its entry, sizes defaulting to the entry's minimums", () => {
    const result = validateVmRequest({ name: "web1", image: "Ubuntu 24.04", sshKeys: [KEY] }, context);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.spec).toMatchObject({
      namespace: "demo",
      name: "web1",
      cpu: 2,
      memory: "1G",
      memoryBytes: 1e9,
      storage: "20G",
      storageBytes: 20e9,
      runStrategy: "Always",
      image: {
        entryId: "ubuntu-24.04",
        osName: "Ubuntu 24.04",
        cloudUser: "ubuntu",
        firmware: "bios",
        features: ["acpi"],
      },
    });
  });

  it("accepts a Windows entry (CLOUD_USER Administrator) with SSH keys and user data", () => {
    const windows = parseCatalog(
      catalogYaml([
        {
          OS_NAME: "Windows",
          CLOUD_USER: "Administrator",
          OS_IMAGE_URL: "https://example.com/w.qcow2",
          FIRMWARE_TYPE: "efi",
        },
      ]),
    ).entries;
    const result = validateVmRequest(
      { name: "win", image: "Windows", sshKeys: [KEY], userData: "#cloud-config\nruncmd: [echo]\n" },
      { namespace: "demo", entries: windows },
    );
    expect(result.ok).toBe(true);
  });

  it("finds the entry by its id too", () => {
    expect(validateVmRequest({ name: "a", image: "ubuntu-24.04" }, context).ok).toBe(true);
  });

  it("lists every size below the entry's minimums, with the minimum", () => {
    const errors = errorsOf({ name: "web1", image: "Ubuntu 24.04", cpu: 1, memory: "512M", storage: "10G" });
    expect(errors).toEqual([
      { field: "cpu", message: '1 vCPU is below the minimum of "Ubuntu 24.04"', minimum: "2" },
      { field: "memory", message: '512M is below the minimum 1G of "Ubuntu 24.04"', minimum: "1G" },
      { field: "storage", message: '10G is below the minimum 20G of "Ubuntu 24.04"', minimum: "20G" },
    ]);
  });

  it("accepts sizes at the minimum and above, in either unit system", () => {
    const result = validateVmRequest(
      { name: "web1", image: "Ubuntu 24.04", cpu: 2, memory: "1Gi", storage: "20G" },
      context,
    );
    expect(result.ok && result.spec.memoryBytes).toBe(2 ** 30);
  });

  it("refuses a disk smaller than the image itself", () => {
    const errors = errorsOf(
      { name: "a", image: "Bare", storage: "1G" },
      { ...context, imageVirtualSize: () => 2 * 2 ** 30 },
    );
    expect(errors[0]).toMatchObject({ field: "storage", minimum: String(2 * 2 ** 30) });
  });

  it("defaults sizes for an entry without minimums", () => {
    const result = validateVmRequest({ name: "a", image: "Bare" }, context);
    expect(result.ok && [result.spec.cpu, result.spec.memory, result.spec.storage]).toEqual([
      1,
      "1Gi",
      "10Gi",
    ]);
  });

  it.each(["Web1", "web_1", "-web", "a".repeat(64), ""])("refuses the name %j", (name) => {
    expect(errorsOf({ name, image: "Ubuntu 24.04" }).map((e) => e.field)).toContain("name");
  });

  it("names an unknown image and suggests the closest", () => {
    expect(errorsOf({ name: "a", image: "Ubuntu 24.4" })).toEqual([
      {
        field: "image",
        message: 'no OS image "Ubuntu 24.4" in the catalog',
        hint: 'did you mean "Ubuntu 24.04"?',
      },
    ]);
  });

  it("refuses an entry with errors", () => {
    expect(errorsOf({ name: "a", image: "Broken" })[0]?.field).toBe("image");
  });

  it("names a bad SSH key by its index", () => {
    expect(errorsOf({ name: "a", image: "Ubuntu 24.04", sshKeys: [KEY, "not a key"] })[0]?.field).toBe(
      "sshKeys[1]",
    );
  });

  it("names a user-data error with its line", () => {
    const error = errorsOf({
      name: "a",
      image: "Ubuntu 24.04",
      userData: "#cloud-config\npackages: [a\n",
    })[0];
    expect(error?.field).toBe("userData");
    expect(error?.message).toMatch(/line \d+/);
  });

  it("refuses a bad quantity and wrong types, naming the field", () => {
    expect(errorsOf({ name: "a", image: "Ubuntu 24.04", memory: "8 GB" })[0]).toMatchObject({
      field: "memory",
      hint: expect.stringContaining('"8G"'),
    });
    expect(errorsOf({ name: "a", image: "Ubuntu 24.04", cpu: "2" })[0]?.field).toBe("cpu");
    expect(errorsOf({ image: "Ubuntu 24.04" })[0]?.field).toBe("name");
    expect(errorsOf({ name: "a", image: "Ubuntu 24.04", runStrategy: "Sometimes" })[0]?.field).toBe(
      "runStrategy",
    );
  });
});

describe("allowedActions", () => {
  it("offers only what makes sense in each phase", () => {
    const table = Object.fromEntries(VM_PHASES.map((p) => [p, allowedActions(p)]));
    expect(table).toEqual({
      Provisioning: ["stop"],
      Starting: ["stop"],
      Running: ["stop", "restart", "pause"],
      Ready: ["stop", "restart", "pause"],
      Paused: ["unpause", "stop"],
      Stopping: [],
      Stopped: ["start"],
      Failed: ["start"],
    });
  });
});
