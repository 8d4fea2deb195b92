// `osimg vm render`: the KubeVirt manifests of a VM, offline: the request is checked against the catalog
// entry exactly like the API does, then the VirtualMachine, DataVolumes and Secrets are printed as YAML
// for `kubectl apply -f -`. No server and no cluster needed.
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { buildCatalog } from "../catalog/catalog.ts";
import { BUILTIN_CATALOG } from "../config/paths.ts";
import { VmError } from "../vms/provider.ts";
import { buildManifests, manifestsYaml } from "../vms/providers/kubevirt/manifests.ts";
import {
  addKubevirtOptions,
  type KubevirtFlags,
  settingsFromFlags,
} from "../vms/providers/kubevirt/settings.ts";
import { validateVmRequest } from "../vms/request.ts";
import { formatFinding } from "./catalog.ts";
import { addRequestOptions, requestBody } from "./vm.ts";

interface RenderFlags extends KubevirtFlags {
  catalog: string;
  namespace: string;
}

export function registerRenderCommand(vm: Command): void {
  addKubevirtOptions(addRequestOptions(vm.command("render")))
    .description("print a VM's KubeVirt manifests (VirtualMachine, DataVolumes, Secrets) without a server")
    .option(
      "--catalog <path>",
      "images.yaml or ConfigMap manifest (default: the built-in catalog)",
      BUILTIN_CATALOG,
    )
    .action(async (options: Record<string, unknown>, command: Command) => {
      const flags = command.optsWithGlobals<RenderFlags>();
      const text = await readFile(flags.catalog, "utf8").catch((error: NodeJS.ErrnoException) => {
        process.stderr.write(
          `error: cannot read ${flags.catalog}: ${error.code === "ENOENT" ? "no such file" : error.message}\n`,
        );
        process.exit(1);
      });
      const catalog = buildCatalog(text, { kind: "file", location: flags.catalog });
      for (const finding of catalog.findings.filter((f) => f.severity === "error"))
        process.stderr.write(`${formatFinding(flags.catalog, finding)}\n`);
      const result = validateVmRequest(await requestBody(options), {
        namespace: flags.namespace,
        entries: catalog.entries,
      });
      if (!result.ok) {
        for (const e of result.errors)
          process.stderr.write(
            `error: ${e.field}: ${e.message}${e.minimum ? ` (minimum ${e.minimum})` : ""}${e.hint ? `\n    hint: ${e.hint}` : ""}\n`,
          );
        process.exitCode = 1;
        return;
      }
      try {
        process.stdout.write(manifestsYaml(buildManifests(result.spec, settingsFromFlags(flags))));
      } catch (error) {
        if (!(error instanceof VmError)) throw error;
        process.stderr.write(`error: ${error.message}${error.hint ? `\n    hint: ${error.hint}` : ""}\n`);
        process.exitCode = 1;
      }
    });
}
