// Catalog texts for tests and benchmarks.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url)), "utf8");

export const BUILTIN_CATALOG_TEXT = readFileSync(
  fileURLToPath(new URL("../../catalog/images.yaml", import.meta.url)),
  "utf8",
);

/** The 1-based line and column of the first occurrence of `needle` (after `after`, when given). */
export function positionOf(text: string, needle: string, after = ""): { line: number; column: number } {
  const start = after ? text.indexOf(after) : 0;
  const offset = text.indexOf(needle, Math.max(start, 0));
  if (offset < 0) throw new Error(`"${needle}" is not in the text`);
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}

/** One images.yaml entry, in the Kube-DC style (quoted values, CLOUD_INIT as a block). */
export function entryYaml(fields: Record<string, string>, indent = "  "): string {
  const lines: string[] = [];
  let first = true;
  for (const [key, value] of Object.entries(fields)) {
    const lead = first ? `${indent}- ` : `${indent}  `;
    first = false;
    if (value.includes("\n")) {
      lines.push(`${lead}${key}: |`);
      for (const l of value.replace(/\n$/, "").split("\n")) lines.push(`${indent}    ${l}`);
    } else {
      lines.push(`${lead}${key}: ${JSON.stringify(value)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export const UBUNTU: Record<string, string> = {
  OS_NAME: "Ubuntu 24.04",
  CLOUD_USER: "ubuntu",
  OS_IMAGE_URL: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
  MIN_MEMORY: "1G",
  MIN_VCPU: "1",
  MIN_STORAGE: "20G",
  FIRMWARE_TYPE: "bios",
  MACHINE_TYPE: "q35",
  FEATURES: "acpi",
  CLOUD_INIT: "#cloud-config\npackage_update: true\npackages:\n  - qemu-guest-agent\n",
};

export function catalogYaml(entries: Record<string, string>[]): string {
  return `images:\n${entries.map((e) => entryYaml(e)).join("")}`;
}

/** A catalog of n valid, distinct entries, like a large real one. */
export function generatedCatalog(n: number): string {
  return catalogYaml(
    Array.from({ length: n }, (_, i) => ({
      ...UBUNTU,
      OS_NAME: `Ubuntu 24.04 variant ${i}`,
      MIN_VCPU: String(1 + (i % 8)),
    })),
  );
}

/** A ConfigMap manifest holding an images.yaml, as `kubectl create configmap --dry-run -o yaml` writes it. */
export function configMapYaml(imagesYaml: string, name = "images-configmap", namespace = "kube-dc"): string {
  const body = imagesYaml
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => (l === "" ? "" : `    ${l}`))
    .join("\n");
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\ndata:\n  images.yaml: |\n${body}\n`;
}
