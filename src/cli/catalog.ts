// `osimg catalog lint|show|export`.
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { buildCatalog, type Catalog, unreadableCatalog } from "../catalog/catalog.ts";
import { countBySeverity, type Finding } from "../catalog/findings.ts";
import { CONFIGMAP_KEY } from "../catalog/parse.ts";
import { BUILTIN_CATALOG } from "../config/paths.ts";
import { parseObjectRef } from "../kube/client.ts";
import { formatBytes } from "../units/quantity.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { toYaml } from "../vms/providers/kubevirt/manifests.ts";
import { preferencesYaml } from "../vms/providers/kubevirt/preferences.ts";
import { renderTable } from "./table.ts";

async function load(path: string): Promise<Catalog> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String((error as Error).message);
    return unreadableCatalog({ kind: "file", location: path }, `cannot read ${path}: ${reason}`);
  }
  return buildCatalog(text, { kind: "file", location: path });
}

/** A size as the user wrote it, with its binary value beside it when that reads differently. */
function asWritten(text: unknown, bytes: number | undefined): string {
  if (bytes === undefined) return "";
  const binary = formatBytes(bytes);
  return String(text).endsWith("i") ? String(text) : `${String(text)} (${binary})`;
}

export function formatFinding(file: string, f: Finding): string {
  const where = f.path ? ` [${f.path}]` : "";
  const hint = f.hint ? `\n    hint: ${f.hint}` : "";
  return `${file}:${f.line}:${f.column}: ${f.severity}: ${f.message}${where}${hint}`;
}

export function registerCatalogCommands(program: Command): Command {
  const catalog = program
    .command("catalog")
    .description("check and show OS image catalogs (images.yaml or a ConfigMap)");

  catalog
    .command("lint")
    .description("validate catalogs; exit 1 when any has an error")
    .argument("<paths...>", "images.yaml files or ConfigMap manifests")
    .option("--json", "print the findings as JSON")
    .action(async (paths: string[], options: { json?: boolean }) => {
      const results = await Promise.all(paths.map(load));
      let errors = 0;
      for (const result of results) errors += countBySeverity(result.findings).error;
      if (options.json) {
        const report = results.map((r, i) => ({
          file: paths[i],
          format: r.format,
          entries: r.entries.length,
          findings: r.findings,
        }));
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        results.forEach((result, i) => {
          const file = paths[i] as string;
          for (const finding of result.findings) process.stdout.write(`${formatFinding(file, finding)}\n`);
          const c = countBySeverity(result.findings);
          process.stderr.write(
            `${file}: ${result.entries.length} entries, ${c.error} errors, ${c.warning} warnings\n`,
          );
        });
      }
      process.exitCode = errors > 0 ? 1 : 0;
    });

  catalog
    .command("show")
    .description("print a catalog as a table")
    .argument("<path>", "an images.yaml file or ConfigMap manifest")
    .option("--json", "print the parsed entries as JSON")
    .action(async (path: string, options: { json?: boolean }) => {
      const result = await load(path);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result.entries, null, 2)}\n`);
      } else {
        const rows = result.entries.map((e) => [
          e.spec.name ?? "(no OS_NAME)",
          e.spec.cloudUser ?? "",
          e.spec.minVcpu !== undefined ? String(e.spec.minVcpu) : "",
          asWritten(e.values.MIN_MEMORY, e.spec.minMemoryBytes),
          asWritten(e.values.MIN_STORAGE, e.spec.minStorageBytes),
          e.spec.firmware,
          e.spec.machineType ?? "",
          e.spec.features.join(","),
          e.valid ? "ok" : `${countBySeverity(e.findings).error} error(s)`,
        ]);
        process.stdout.write(
          `${renderTable(["NAME", "USER", "VCPU", "MEMORY", "STORAGE", "FIRMWARE", "MACHINE", "FEATURES", "STATUS"], rows)}\n`,
        );
        for (const finding of result.findings.filter((f) => f.severity === "error"))
          process.stderr.write(`${formatFinding(path, finding)}\n`);
      }
      process.exitCode = countBySeverity(result.findings).error > 0 ? 1 : 0;
    });

  catalog
    .command("export")
    .description(
      "write a catalog for a cluster: its entries as VirtualMachineClusterPreferences, or as the Kube-DC images-configmap",
    )
    .argument(
      "[path]",
      "an images.yaml file or ConfigMap manifest (default: the built-in catalog)",
      BUILTIN_CATALOG,
    )
    .option(
      "--preferences [out]",
      "VirtualMachineClusterPreferences (minimums, firmware, features) to stdout or OUT",
    )
    .option(
      "--configmap <namespace/name>",
      "a ConfigMap manifest holding images.yaml, such as kube-dc/images-configmap",
    )
    .option("-o, --output <file>", "with --configmap: write to this file instead of stdout")
    .action(
      async (
        path: string,
        options: { preferences?: string | boolean; configmap?: string; output?: string },
      ) => {
        if ((options.preferences === undefined) === (options.configmap === undefined)) {
          process.stderr.write("error: give one of --preferences [out] or --configmap NAMESPACE/NAME\n");
          process.exitCode = 2;
          return;
        }
        const result = await load(path);
        const errors = result.findings.filter((f) => f.severity === "error");
        for (const finding of errors) process.stderr.write(`${formatFinding(path, finding)}\n`);
        if (errors.length > 0) {
          process.stderr.write(`${path}: not exported: the catalog has ${errors.length} error(s)\n`);
          process.exitCode = 1;
          return;
        }
        let text: string;
        let out: string | undefined;
        if (options.configmap) {
          const { namespace, name } = parseObjectRef(options.configmap, "--configmap");
          text = `---\n${toYaml({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data: { [CONFIGMAP_KEY]: result.text } })}`;
          out = options.output;
        } else {
          text = preferencesYaml(result.entries);
          out = typeof options.preferences === "string" ? options.preferences : undefined;
        }
        if (out) {
          await writeFileAtomic(out, text);
          process.stderr.write(`${out}: written\n`);
        } else process.stdout.write(text);
      },
    );
  return catalog;
}
