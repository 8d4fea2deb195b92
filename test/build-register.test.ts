// Catalog edits of --register and the cluster write-back: entries added or updated by OS_NAME, comments,
// other entries and the layout untouched, in images.yaml files and in ConfigMaps; refused when the entry
// would not be valid.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { BuildRecord } from "../src/build/build.ts";
import {
  catalogValues,
  checkEdited,
  RegisterError,
  removeCatalogKeys,
  upsertCatalogEntry,
} from "../src/build/register.ts";
import { parseCatalog } from "../src/catalog/parse.ts";

const BUILTIN = readFileSync(new URL("../catalog/images.yaml", import.meta.url), "utf8");
const CONFIGMAP = readFileSync(
  new URL("./fixtures/kube-dc/configmap-from-cluster.yaml", import.meta.url),
  "utf8",
);
const VALUES = {
  OS_NAME: "Debian 12 (built)",
  CLOUD_USER: "debian",
  OS_IMAGE_URL: "https://images.example.com/d.qcow2",
  OS_IMAGE_SHA256: "a".repeat(64),
  FIRMWARE_TYPE: "bios",
  MIN_VCPU: "1",
};

describe("catalog edits", () => {
  it("adds an entry at the end of images:, leaving every byte before it as it was", () => {
    const { text, action } = upsertCatalogEntry(BUILTIN, VALUES);
    expect(action).toBe("added");
    expect(text.startsWith(BUILTIN.trimEnd())).toBe(true);
    const entry = parseCatalog(text).entries.at(-1);
    expect(entry?.values).toEqual(VALUES);
    expect(entry?.valid).toBe(true);
    expect(text).toContain('  - OS_NAME: "Debian 12 (built)"\n    CLOUD_USER: "debian"\n');
  });

  it("updates an entry in place (by OS_NAME), keeping its other keys and the entries around it", () => {
    const name = parseCatalog(BUILTIN).entries[1]?.values.OS_NAME as string;
    const { text, action } = upsertCatalogEntry(BUILTIN, { ...VALUES, OS_NAME: name });
    expect(action).toBe("updated");
    const before = parseCatalog(BUILTIN).entries;
    const after = parseCatalog(text).entries;
    expect(after).toHaveLength(before.length);
    expect(after[1]?.values).toMatchObject({
      OS_IMAGE_SHA256: "a".repeat(64),
      CLOUD_USER: "debian",
      CLOUD_INIT: before[1]?.values.CLOUD_INIT,
    });
    expect(after[0]?.values).toEqual(before[0]?.values);
    expect(text.split("\n").filter((l) => l.trimStart().startsWith("#"))).toEqual(
      BUILTIN.split("\n").filter((l) => l.trimStart().startsWith("#")),
    );
  });

  it("edits the images.yaml inside a ConfigMap, keeping the ConfigMap's own fields", () => {
    const { text } = upsertCatalogEntry(CONFIGMAP, VALUES);
    expect(text).toContain("kind: ConfigMap");
    const parsed = parseCatalog(text);
    expect(parsed.format).toBe("configmap");
    expect(parsed.entries.at(-1)?.values.OS_NAME).toBe("Debian 12 (built)");
    expect(parsed.entries.length).toBe(parseCatalog(CONFIGMAP).entries.length + 1);
    const cleared = removeCatalogKeys(
      upsertCatalogEntry(CONFIGMAP, {
        ...VALUES,
        OS_CONTAINERDISK_REPO: "r.example/os/d",
        OS_CONTAINERDISK_TAG: "1",
      }).text,
      VALUES.OS_NAME,
      ["OS_CONTAINERDISK_REPO", "OS_CONTAINERDISK_TAG"],
    );
    expect(parseCatalog(cleared).entries.at(-1)?.values).toEqual(VALUES);
  });

  it("creates images: in an empty catalog; refuses edits that would make the entry invalid", () => {
    expect(parseCatalog(upsertCatalogEntry("", VALUES).text).entries).toHaveLength(1);
    const bad = upsertCatalogEntry(BUILTIN, { ...VALUES, MIN_MEMORY: "512m" }).text;
    expect(() => checkEdited(BUILTIN, bad, VALUES.OS_NAME)).toThrow(RegisterError);
  });

  it("values come from [catalog], the qcow2's digest and the pushed containerDisk", () => {
    const record = {
      kind: "container-disk",
      outputs: [{ name: "system.qcow2", path: "/o/system.qcow2", kind: "file", sha256: "b".repeat(64) }],
      push: { reference: "127.0.0.1:5000/os/debian:7", digest: "sha256:c", uploaded: 2, skipped: 0 },
    } as Pick<BuildRecord, "outputs" | "push" | "kind">;
    const values = catalogValues(
      {
        OS_NAME: "D",
        CLOUD_USER: "debian",
        OS_IMAGE_URL: "https://x/y.qcow2",
        FIRMWARE_TYPE: "efi",
        MIN_MEMORY: "1G",
      },
      record,
    );
    expect(values).toEqual({
      OS_NAME: "D",
      CLOUD_USER: "debian",
      OS_IMAGE_URL: "https://x/y.qcow2",
      OS_IMAGE_SHA256: "b".repeat(64),
      FIRMWARE_TYPE: "efi",
      MIN_MEMORY: "1G",
      OS_CONTAINERDISK_REPO: "127.0.0.1:5000/os/debian",
      OS_CONTAINERDISK_TAG: "7",
    });
    expect(() => catalogValues(undefined, record)).toThrow(/no \[catalog\]/);
    expect(() =>
      catalogValues({ OS_NAME: "D", CLOUD_USER: "debian", FIRMWARE_TYPE: "bios" }, record),
    ).toThrow(/OS_IMAGE_URL/);
  });
});
