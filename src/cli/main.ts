// The `osimg` command.
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_BUILD_TIMEOUT_MS, DEFAULT_BUILDER_IMAGE } from "../build/cluster.ts";
import { defaultDataDir } from "../config/paths.ts";
import { type ObjectRef, parseObjectRef } from "../kube/client.ts";
import { startServer } from "../server/serve.ts";
import { isDns1123Label } from "../util/names.ts";
import {
  addKubevirtOptions,
  type KubevirtFlags,
  settingsFromFlags,
} from "../vms/providers/kubevirt/settings.ts";
import { registerAuditCommands } from "./audit.ts";
import { addServeAuthOptions, registerAuthCommands, type ServeAuthFlags, serveAuthSettings } from "./auth.ts";
import { registerBuildCommands } from "./build.ts";
import { registerCatalogCommands } from "./catalog.ts";
import { registerCatalogVerify } from "./catalog-verify.ts";
import { registerImageCommands } from "./image.ts";
import { registerImageTest } from "./image-test.ts";
import { registerVmCommands } from "./vm.ts";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("a port is a whole number from 0 to 65535");
  return n;
}

function objectRef(value: string): ObjectRef {
  try {
    return parseObjectRef(value, "--configmap");
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("a number of seconds greater than 0");
  return n;
}

function namespaceName(value: string): string {
  if (!isDns1123Label(value))
    throw new InvalidArgumentError(
      "a namespace is a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)",
    );
  return value;
}

interface ServeFlags extends ServeAuthFlags, KubevirtFlags {
  builds?: string;
  buildNamespace?: string;
  builderImage?: string;
  buildCredentialsSecret?: string;
  buildTimeout?: number;
  provider?: "qemu" | "kubevirt";
  identity?: "service-account" | "caller";
  overlays?: boolean;
  catalog?: string;
  configmap?: ObjectRef;
  kubeconfig?: string;
  port: number;
  host: string;
  dataDir: string;
}

const program = new Command("osimg")
  .description("OS images for virtual machines: catalog, image intake, VMs and builds")
  .version("0.1.0")
  .showHelpAfterError();

addKubevirtOptions(addServeAuthOptions(program.command("serve")))
  .description("serve the catalog API (Kube-DC compatible) with live reload")
  .option(
    "--catalog <path>",
    "catalog file (images.yaml or ConfigMap); default: a copy of the built-in catalog in the data directory",
  )
  .option(
    "--configmap <namespace/name>",
    'serve the catalog of this ConfigMap (data["images.yaml"]), watched through the Kubernetes API',
    objectRef,
  )
  .option(
    "--kubeconfig <path>",
    "kubeconfig for --configmap, --provider kubevirt and --builds cluster; default $KUBECONFIG, ~/.kube/config, or the pod's service account",
  )
  .option("--port <n>", "port to listen on", port, Number(process.env.OSIMG_PORT ?? 8080))
  .option("--host <address>", "address to listen on", process.env.OSIMG_HOST ?? "127.0.0.1")
  .option("--data-dir <dir>", "where osimg keeps its data", defaultDataDir())
  .option(
    "--provider <provider>",
    "who runs VMs: qemu (local) or kubevirt (the cluster); default kubevirt with --configmap, else qemu",
  )
  .option(
    "--identity <identity>",
    "kubevirt: act as osimg's service-account, or as the caller (their Kubernetes token; needs --auth kubernetes)",
  )
  .option(
    "--no-overlays",
    "with --configmap: ignore project overlays (ConfigMaps labelled osimg.io/catalog=true)",
  )
  .option(
    "--builds <runner>",
    "where builds submitted over the API run: local (on this server) or cluster (as Kubernetes Jobs)",
    "local",
  )
  .option(
    "--build-namespace <namespace>",
    "--builds cluster: namespace of the Jobs; default the --configmap's, else default",
    namespaceName,
  )
  .option(
    "--builder-image <image>",
    `--builds cluster: the osimg image the Jobs run; default $OSIMG_BUILDER_IMAGE, else ${DEFAULT_BUILDER_IMAGE}`,
  )
  .option(
    "--build-credentials-secret <name>",
    "--builds cluster: a Secret with OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD for the Jobs' pushes",
  )
  .option(
    "--build-timeout <seconds>",
    `--builds cluster: deadline of a Job (default ${DEFAULT_BUILD_TIMEOUT_MS / 1000})`,
    seconds,
  )
  .action(async (options: ServeFlags) => {
    if (options.provider && !["qemu", "kubevirt"].includes(options.provider))
      program.error("error: --provider is qemu or kubevirt");
    if (options.builds !== "local" && options.builds !== "cluster")
      program.error(`error: --builds is local or cluster, not "${options.builds}"`);
    const clusterFlags = [
      ["--build-namespace", options.buildNamespace],
      ["--builder-image", options.builderImage],
      ["--build-credentials-secret", options.buildCredentialsSecret],
      ["--build-timeout", options.buildTimeout],
    ].filter(([, value]) => value !== undefined);
    if (options.builds === "local" && clusterFlags.length > 0)
      program.error(
        `error: ${clusterFlags.map(([flag]) => flag).join(", ")} ${clusterFlags.length > 1 ? "are" : "is"} for --builds cluster`,
      );
    if (options.identity && !["service-account", "caller"].includes(options.identity))
      program.error("error: --identity is service-account or caller");
    if (options.catalog && options.configmap)
      program.error("error: --catalog and --configmap name two catalogs; give one");
    const server = await startServer({
      catalogPath: options.catalog,
      configMap: options.configmap && { ...options.configmap, kubeconfig: options.kubeconfig },
      port: options.port,
      host: options.host,
      dataDir: options.dataDir,
      ...serveAuthSettings(options),
      provider: options.provider,
      kubevirt: {
        settings: settingsFromFlags(options),
        identity: options.identity,
        kubeconfig: options.kubeconfig,
      },
      overlays: options.configmap ? options.overlays : false,
      builds:
        options.builds === "cluster"
          ? {
              runner: "cluster",
              ...(options.buildNamespace ? { namespace: options.buildNamespace } : {}),
              ...(options.builderImage ? { builderImage: options.builderImage } : {}),
              ...(options.buildCredentialsSecret
                ? { credentialsSecret: options.buildCredentialsSecret }
                : {}),
              ...(options.buildTimeout ? { timeoutMs: options.buildTimeout * 1000 } : {}),
            }
          : { runner: "local" },
    });
    const shutdown = async () => {
      await server.close();
      process.exit(0);
    };
    process.once("SIGINT", shutdown);
    process.once("SIGTERM", shutdown);
  });

registerCatalogVerify(registerCatalogCommands(program));
registerImageTest(registerImageCommands(program));
registerVmCommands(program);
registerBuildCommands(program);
registerAuthCommands(program);
registerAuditCommands(program);

await program.parseAsync(process.argv);
