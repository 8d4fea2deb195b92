// `osimg serve`: the catalog source, the HTTP app, and logging of what happens to the catalog.
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import type { FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import { REDACT } from "../auth/redact.ts";
import { type AuthSettings, setupTenancy, type TenancyOptions } from "../auth/setup.ts";
import { DEFAULT_BUILD_TIMEOUT_MS, DEFAULT_BUILDER_IMAGE } from "../build/cluster.ts";
import { BuildService } from "../build/service.ts";
import { countBySeverity } from "../catalog/findings.ts";
import { ConfigMapCatalogSource, OverlayCatalogSource } from "../catalog/sources/configmap.ts";
import { FileCatalogSource } from "../catalog/sources/file.ts";
import { CatalogState } from "../catalog/state.ts";
import { BUILTIN_CATALOG } from "../config/paths.ts";
import { BootTests } from "../images/boot-tests.ts";
import { FetchPolicy } from "../images/fetch-policy.ts";
import { PullJobs } from "../images/pull-jobs.ts";
import { ImageStore } from "../images/store.ts";
import { CatalogVerifier } from "../images/verifier.ts";
import { loadKubeConfig } from "../kube/client.ts";
import type { VmProvider } from "../vms/provider.ts";
import { type IdentityMode, KubevirtProvider } from "../vms/providers/kubevirt/provider.ts";
import { DEFAULT_SETTINGS, type KubevirtSettings } from "../vms/providers/kubevirt/settings.ts";
import { localVmsOnImage, QemuProvider } from "../vms/providers/qemu/provider.ts";
import { buildApp } from "./app.ts";

export interface ServeOptions {
  /** The catalog file; undefined serves a copy of the built-in catalog kept in the data directory. */
  catalogPath?: string;
  /** Serve the catalog of this ConfigMap (watched through the Kubernetes API) instead of a file. */
  configMap?: {
    namespace: string;
    name: string;
    /** A kubeconfig file; default $KUBECONFIG, ~/.kube/config, or the pod's service account. */
    kubeconfig?: string;
    /** A ready client configuration (tests); wins over kubeconfig. */
    kubeConfig?: KubeConfig;
  };
  port: number;
  host: string;
  dataDir: string;
  logger?: Logger;
  /** How callers authenticate; default: static tokens in the data directory (created on the first start). */
  auth?: AuthSettings;
  /** Rate limits, allowed origins, the audit log, quotas (src/auth/setup.ts). */
  tenancy?: Omit<TenancyOptions, "auth" | "dataDir" | "host" | "logger">;
  /** Who runs VMs: local QEMU, or KubeVirt on the cluster; default kubevirt with configMap, else qemu. */
  provider?: "qemu" | "kubevirt";
  /** The KubeVirt provider: how VMs are made, and as whom (default: the service account, default settings). */
  kubevirt?: {
    settings?: KubevirtSettings;
    identity?: IdentityMode;
    /** Without configMap: a kubeconfig file, or a ready client configuration (tests). */
    kubeconfig?: string;
    kubeConfig?: KubeConfig;
  };
  /** Project overlays (ConfigMaps labelled osimg.io/catalog=true); default: on with configMap. */
  overlays?: boolean;
  /** Where builds submitted over the API run: on this server (default), or as Kubernetes Jobs. */
  builds?: BuildsOptions;
}

export type BuildsOptions =
  | { runner: "local" }
  | {
      runner: "cluster";
      /** The Jobs' namespace; default the configMap's namespace, else "default". */
      namespace?: string;
      /** The osimg image the Jobs run; default $OSIMG_BUILDER_IMAGE, else DEFAULT_BUILDER_IMAGE. */
      builderImage?: string;
      /** A Secret with OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD for pushes. */
      credentialsSecret?: string;
      /** A Job's deadline; default DEFAULT_BUILD_TIMEOUT_MS. */
      timeoutMs?: number;
      /** A ready client configuration (tests); default the server's (kubeconfig, or the pod's account). */
      kubeConfig?: KubeConfig;
    };

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  /** The catalog file, or NAMESPACE/NAME of the ConfigMap. */
  catalogPath: string;
  close(): Promise<void>;
}

export function createLogger(): Logger {
  const level = process.env.OSIMG_LOG_LEVEL ?? "info";
  const redact = REDACT;
  if (process.stdout.isTTY)
    return pino({
      level,
      redact,
      transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss" } },
    });
  return pino({ level, redact });
}

/** The catalog served when none is named: the built-in one, copied once into the data directory to be edited. */
async function seededCatalog(dataDir: string, logger: Logger): Promise<string> {
  const path = join(dataDir, "images.yaml");
  await mkdir(dataDir, { recursive: true });
  try {
    await copyFile(BUILTIN_CATALOG, path, 1 /* COPYFILE_EXCL: keep the user's edits */);
    logger.info(
      { path },
      "created the catalog from the built-in one; edit it and changes are served at once",
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return path;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const logger = options.logger ?? createLogger();
  const { configMap } = options;
  const providerName = options.provider ?? (configMap ? "kubevirt" : "qemu");
  const identity = options.kubevirt?.identity ?? "service-account";
  const passThrough = providerName === "kubevirt" && identity === "caller";
  if (passThrough && options.auth?.mode !== "kubernetes")
    throw new Error(
      "--identity caller passes the caller's Kubernetes token through: it needs --auth kubernetes",
    );
  // With the caller's token passed through, Kubernetes RBAC decides VM calls: no review before them.
  const auth =
    passThrough && options.auth?.mode === "kubernetes"
      ? { ...options.auth, delegate: options.auth.delegate ?? true }
      : (options.auth ?? { mode: "token" as const });
  // First: a refused setting (--auth none on a public address) stops the start before anything runs.
  const tenancy = await setupTenancy({
    ...options.tenancy,
    auth,
    dataDir: options.dataDir,
    host: options.host,
    logger,
  });
  const catalogPath = options.configMap
    ? `${options.configMap.namespace}/${options.configMap.name}`
    : (options.catalogPath ?? (await seededCatalog(options.dataDir, logger)));
  const state = new CatalogState();
  state.on("served", (served) => {
    const c = served.catalog;
    logger.info(
      {
        source: c.source,
        version: c.version.slice(0, 12),
        entries: c.entries.length,
        warnings: countBySeverity(c.findings).warning,
      },
      "catalog served",
    );
  });
  state.on("rejected", (reload) => {
    for (const f of reload.findings.filter((x) => x.severity === "error")) {
      logger.error(
        { path: f.path, code: f.code },
        `${reload.source.location}:${f.line}:${f.column}: ${f.message}${f.hint ? ` (${f.hint})` : ""}`,
      );
    }
    logger.warn(
      { errors: countBySeverity(reload.findings).error },
      state.served
        ? "catalog rejected; the last good catalog stays served"
        : "catalog rejected; no catalog is served",
    );
  });

  // One client configuration for everything that talks to the cluster.
  const buildsOn = options.builds?.runner === "cluster" ? options.builds : undefined;
  let kube: KubeConfig | undefined =
    configMap?.kubeConfig ?? options.kubevirt?.kubeConfig ?? buildsOn?.kubeConfig;
  const kubeConfig = () => {
    kube ??= loadKubeConfig({ kubeconfig: configMap?.kubeconfig ?? options.kubevirt?.kubeconfig });
    return kube;
  };
  const source = configMap
    ? new ConfigMapCatalogSource({
        kubeConfig: kubeConfig(),
        namespace: configMap.namespace,
        name: configMap.name,
        state,
        logger,
      })
    : new FileCatalogSource({
        path: catalogPath,
        state,
        logger,
        lastGoodPath: join(options.dataDir, "catalog", "last-good.json"),
      });
  await source.start();
  const overlays =
    (options.overlays ?? configMap !== undefined)
      ? new OverlayCatalogSource({ kubeConfig: kubeConfig(), state, logger })
      : undefined;
  state.on("overlay", ({ namespace, name, ok, reload }) => {
    if (ok) logger.info({ overlay: `${namespace}/${name}`, removed: !reload }, "catalog overlay served");
    else
      logger.warn(
        { overlay: `${namespace}/${name}` },
        "catalog overlay rejected; its last good version stays",
      );
  });
  await overlays?.start();
  // Image intake: the store in the data directory, and catalog images checked in the background. The
  // server fetches only public addresses unless OSIMG_FETCH_ALLOW names a mirror.
  const fetchPolicy = FetchPolicy.server();
  const store = ImageStore.forDataDir(options.dataDir, {
    policy: fetchPolicy,
    usersOf: (sha256) => localVmsOnImage(options.dataDir, sha256),
  });
  const verifier = new CatalogVerifier({
    state,
    policy: fetchPolicy,
    logger,
    intervalMs: Number(process.env.OSIMG_VERIFY_INTERVAL ?? 6 * 3600) * 1000,
  });
  verifier.start();
  const images = { store, verifier, pulls: new PullJobs(store) };
  // Boot tests of catalog entries run as throw-away VMs on this machine; results are kept in the data dir.
  const bootTests = BootTests.forDataDir(options.dataDir, { store, logger });
  await bootTests.load();
  // Image builds submitted over the API run one at a time: here, with the cache in the data directory, or
  // as Kubernetes Jobs running the osimg image.
  const buildCluster = buildsOn && {
    kubeConfig: buildsOn.kubeConfig ?? kubeConfig(),
    namespace: buildsOn.namespace ?? configMap?.namespace ?? "default",
    builderImage: buildsOn.builderImage ?? process.env.OSIMG_BUILDER_IMAGE ?? DEFAULT_BUILDER_IMAGE,
    ...(buildsOn.credentialsSecret ? { credentialsSecret: buildsOn.credentialsSecret } : {}),
    timeoutMs: buildsOn.timeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS,
  };
  const builds = new BuildService({
    dataDir: options.dataDir,
    logger,
    ...(buildCluster ? { cluster: buildCluster } : {}),
  });
  if (buildCluster)
    logger.info(
      {
        namespace: buildCluster.namespace,
        builderImage: buildCluster.builderImage,
        credentialsSecret: buildCluster.credentialsSecret,
        timeoutSec: buildCluster.timeoutMs / 1000,
      },
      `builds run as Kubernetes Jobs in namespace ${buildCluster.namespace}`,
    );
  else logger.info({ dataDir: options.dataDir }, "builds run on this server");
  // VMs on local QEMU (the embedded default: VMs of an earlier run are re-attached before serving) or
  // on KubeVirt (its caches are filled before serving).
  let provider: VmProvider;
  if (providerName === "kubevirt") {
    const kubevirt = new KubevirtProvider({
      kubeConfig: kubeConfig(),
      settings: options.kubevirt?.settings ?? DEFAULT_SETTINGS,
      identity,
      logger,
    });
    await kubevirt.start();
    provider = kubevirt;
  } else {
    const qemu = new QemuProvider({ dataDir: options.dataDir, images: store, logger });
    await qemu.init();
    provider = qemu;
  }
  const vms = {
    provider,
    imageVirtualSize: (entryId: string) => verifier.results()[entryId]?.check?.virtualSize,
  };
  const app = await buildApp({
    catalog: state,
    catalogSource: source,
    logger,
    images,
    bootTests,
    builds,
    vms,
    tenancy,
  });
  const address = await app.listen({ port: options.port, host: options.host });
  logger.info(
    {
      catalog: catalogPath,
      dataDir: options.dataDir,
      provider: provider.name,
      builds: buildCluster ? "cluster" : "local",
    },
    `osimg listening on ${address}`,
  );
  return {
    app,
    url: address,
    catalogPath,
    async close() {
      verifier.stop();
      await bootTests.close();
      await builds.close();
      await source.stop();
      await overlays?.stop();
      await app.close();
      await provider.close();
      await tenancy.close();
    },
  };
}
