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
import { readKey, readStdin } from "./vm.ts";

interface RenderFlags extends KubevirtFlags {
  catalog: string;
  image: string;
  name: string;
  namespace: string;
  cpu?: number;
  memory?: string;
  storage?: string;
  sshKey?: string[];
  passwordStdin?: boolean;
  userData?: string;
  runStrategy?: string;
}

export function registerRenderCommand(vm: Command): void {
  addKubevirtOptions(vm.command("render"))
    .description("print a VM's KubeVirt manifests (VirtualMachine, DataVolumes, Secrets) without a server")
    .option(
      "--catalog <path>",
      "images.yaml or ConfigMap manifest (default: the built-in catalog)",
      BUILTIN_CATALOG,
    )
    .requiredOption("--image <os-name>", "the catalog entry's OS_NAME")
    .requiredOption("--name <name>", "the VM's name (DNS-1123 label)")
    .option("--cpu <n>", "vCPUs", (v) => Number(v))
    .option("--memory <quantity>", 'memory, e.g. "2G" or "2Gi"')
    .option("--storage <quantity>", 'root disk, e.g. "20G"')
    .option("--ssh-key <path-or-key...>", "SSH public keys (files or the keys themselves)")
    .option("--password-stdin", "read a password for CLOUD_USER from standard input")
    .option("--user-data <file>", "a #cloud-config merged over the entry's CLOUD_INIT")
    .option("--run-strategy <strategy>", "Always, RerunOnFailure, Manual, Halted or Once")
    .action(async (_options: unknown, command: Command) => {
      const flags = command.optsWithGlobals<RenderFlags>();
      const text = await readFile(flags.catalog, "utf8").catch((error: NodeJS.ErrnoException) => {
        process.stderr.write(
          `error: cannot read ${flags.catalog}: ${error.code === "ENOENT" ? "no such file" : error.message}\n`,
        );
        process.exit(1);
      });
      const catalog = buildCatalog(text, { kind: "file", location: flags.catalog });
      const broken = catalog.findings.filter((f) => f.severity === "error");
      for (const finding of broken) process.stderr.write(`${formatFinding(flags.catalog, finding)}\n`);
      const result = validateVmRequest(
        {
          name: flags.name,
          image: flags.image,
          cpu: flags.cpu,
          memory: flags.memory,
          storage: flags.storage,
          sshKeys: await Promise.all((flags.sshKey ?? []).map(readKey)),
          password: flags.passwordStdin ? (await readStdin()).replace(/\r?\n$/, "") : undefined,
          userData: flags.userData ? await readFile(flags.userData, "utf8") : undefined,
          runStrategy: flags.runStrategy,
        },
        { namespace: flags.namespace, entries: catalog.entries },
      );
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
