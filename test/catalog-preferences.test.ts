import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseCatalog } from "../src/catalog/parse.ts";
import { PREFERENCE_NAMES, preferenceRequirements } from "../src/catalog/preferences.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";

const REFERENCE = new URL("../../shared/reference/kubevirt/common-clusterpreferences.yaml", import.meta.url);

describe("KubeVirt preference requirements", () => {
  it("match the common-instancetypes preferences they were taken from", () => {
    const docs = parseAllDocuments(readFileSync(REFERENCE, "utf8"));
    const expected = new Map<string, { cpu?: number; memory?: string }>();
    for (const doc of Array.isArray(docs) ? docs : []) {
      const p = doc.toJS() as {
        metadata: { name: string };
        spec: { requirements?: { cpu?: { guest: number }; memory?: { guest: string } } };
      } | null;
      if (!p?.spec.requirements) continue;
      expected.set(p.metadata.name, {
        cpu: p.spec.requirements.cpu?.guest,
        memory: p.spec.requirements.memory?.guest,
      });
    }
    expect([...PREFERENCE_NAMES].sort()).toEqual([...expected.keys()].sort());
    for (const [name, req] of expected) {
      const ours = preferenceRequirements(name);
      expect({ cpu: ours?.cpu, memory: ours?.memory }).toEqual(req);
    }
    expect(preferenceRequirements("windows.11")).toEqual({ cpu: 2, memory: "4Gi", memoryBytes: 4 * 2 ** 30 });
  });

  it("warn when an entry asks for less than the preference its OS_FAMILY_ID names", () => {
    const result = parseCatalog(
      catalogYaml([{ ...UBUNTU, OS_FAMILY_ID: "windows.11", MIN_MEMORY: "2G", MIN_VCPU: "1" }]),
    );
    expect(result.findings.map((f) => [f.code, f.severity, f.path])).toEqual([
      ["preference.memory", "warning", "images[0].MIN_MEMORY"],
      ["preference.cpu", "warning", "images[0].MIN_VCPU"],
    ]);
    expect(result.findings[0]?.hint).toContain('"4Gi"');
  });

  it("say nothing when the minimums meet the preference, or OS_FAMILY_ID names none", () => {
    expect(
      parseCatalog(catalogYaml([{ ...UBUNTU, OS_FAMILY_ID: "ubuntu", MIN_MEMORY: "2Gi" }])).findings,
    ).toEqual([]);
    expect(
      parseCatalog(catalogYaml([{ ...UBUNTU, OS_FAMILY_ID: "my-own-family", MIN_MEMORY: "1G" }])).findings,
    ).toEqual([]);
  });
});
