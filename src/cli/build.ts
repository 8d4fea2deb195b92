// `osimg build --file SPEC KIND`: builds an image from a TOML spec, locally (rootless where possible) or as
// a Kubernetes Job (--on-cluster); --debug writes the plan as scripts; --register puts the result into a
// catalog file after a boot test. Also the commands the plan's scripts and the Jobs run: build-step (one
// native step of a written plan) and build-delete (remove a pushed image).
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type BuildRecord,
  build,
  formatFindings,
  newBuildId,
  SpecError,
  writeDebug,
} from "../build/build.ts";
import {
  type CatalogTarget,
  ClusterBuildError,
  DEFAULT_BUILD_TIMEOUT_MS,
  DEFAULT_BUILDER_IMAGE,
  RESULT_PREFIX,
  runClusterBuild,
  runClusterDelete,
  specBundle,
  writeBack,
} from "../build/cluster.ts";
import type { Plan } from "../build/plan.ts";
import { catalogValues, RegisterError, registerBuild } from "../build/register.ts";
import { BuildInterrupted, nativeStep, StepError } from "../build/run.ts";
import { BUILD_KINDS, type BuildKind, parseSpec } from "../build/spec.ts";
import { defaultDataDir } from "../config/paths.ts";
import { bootTest } from "../images/boot-test.ts";
import { loadKubeConfig, parseObjectRef } from "../kube/client.ts";
import type { OciCompression } from "../oci/layout.ts";
import { deleteImage } from "../oci/push.ts";
import { formatBytes } from "../units/quantity.ts";

interface BuildFlags {
  file: string;
  out?: string;
  debug?: boolean;
  register?: string;
  imageUrl?: string;
  push?: string;
  tlsVerify: boolean;
  compression: OciCompression;
  dataDir: string;
  json?: boolean;
  resultLine?: boolean;
  bootTest?: "bios" | "efi";
  bootTimeout: number;
  onCluster?: boolean;
  kubeconfig?: string;
  namespace?: string;
  builderImage: string;
  credentialsSecret?: string;
  catalogConfigmap?: CatalogTarget;
  timeout: number;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("a number of seconds greater than 0");
  return n;
}

function objectRef(value: string): CatalogTarget {
  try {
    return parseObjectRef(value, "--catalog-configmap");
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** Ctrl-C and SIGTERM stop the build (its work directory is removed); a second one exits at once. */
function interruptible(): { signal: AbortSignal; received(): NodeJS.Signals | undefined; dispose(): void } {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(name === "SIGINT" ? 130 : 143);
    received = name;
    process.stderr.write(`osimg: ${name}: stopping the build and removing its work directory\n`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    received: () => received,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

const err = (line: string) => process.stderr.write(`${line}\n`);

function summary(record: BuildRecord): string {
  const lines = [
    `build ${record.buildId}: ${record.kind} in ${(record.durationMs / 1000).toFixed(1)} s (base root filesystem ${record.baseCached ? "from the cache" : "bootstrapped"}${record.rootless ? ", rootless" : ""})`,
  ];
  for (const o of record.outputs)
    lines.push(
      `  ${o.name.padEnd(16)} ${o.path}${o.sha256 ? `  sha256:${o.sha256}  ${formatBytes(o.size ?? 0)}` : ""}${o.manifestDigest ? `  manifest ${o.manifestDigest}` : ""}`,
    );
  if (record.push) lines.push(`  pushed           ${record.push.reference}@${record.push.digest}`);
  lines.push(`  ${record.packages.length} packages installed; record in build.json`);
  return lines.join("\n");
}

function fail(error: unknown, signal?: NodeJS.Signals): void {
  if (error instanceof SpecError) {
    err(formatFindings(error.file, error.findings));
    process.exitCode = 2;
  } else if (error instanceof BuildInterrupted) {
    err(`osimg: ${error.message}`);
    process.exitCode = signal === "SIGTERM" ? 143 : 130;
  } else if (error instanceof RegisterError) {
    err(`osimg: --register: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ""}`);
    process.exitCode = 1;
  } else if (error instanceof StepError || error instanceof ClusterBuildError) {
    err(`osimg: build failed: ${error.message}`);
    process.exitCode = 1;
  } else {
    err(`osimg: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}

async function onCluster(kind: BuildKind, flags: BuildFlags, signal: AbortSignal): Promise<void> {
  const specFile = resolve(flags.file);
  const text = await readFile(specFile, "utf8");
  const parsed = parseSpec(text);
  if (!parsed.spec) throw new SpecError(flags.file, parsed.findings);
  const kubeConfig = loadKubeConfig({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}) });
  const namespace =
    flags.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? "default";
  // A Job's outputs are gone with its pod: what it builds must be pushed somewhere.
  if (kind === "vm-img" || kind === "pxe-img")
    throw new Error(
      `--on-cluster builds images that are pushed (container-disk, upgrade-img, admin-container), not ${kind}`,
    );
  if (!flags.push)
    throw new Error(
      "--on-cluster needs --push REGISTRY/REPOSITORY:TAG: the Job's outputs are gone when its pod is",
    );
  const buildId = newBuildId();
  const { record } = await runClusterBuild({
    kubeConfig,
    job: {
      buildId,
      namespace,
      kind,
      files: await specBundle(text, parsed.spec, dirname(specFile)),
      builderImage: flags.builderImage,
      ...(flags.credentialsSecret ? { credentialsSecret: flags.credentialsSecret } : {}),
      ...(flags.push ? { push: { reference: flags.push, tlsVerify: flags.tlsVerify } } : {}),
      ...(flags.bootTest ? { bootTest: flags.bootTest } : {}),
      deadlineSeconds: Math.ceil(flags.timeout),
    },
    timeoutMs: flags.timeout * 1000,
    log: err,
    signal,
  });
  if (flags.catalogConfigmap) {
    if (!record.push)
      throw new Error("the Job pushed nothing, so there is no image to write into the catalog");
    const values = catalogValues(
      parsed.spec.catalog,
      record,
      flags.imageUrl ? { imageUrl: flags.imageUrl } : {},
    );
    const image = `${record.push.reference}@${record.push.digest}`;
    // The Job's build id (its osimg.io/build-id label), not the builder's own inside the pod.
    await writeBack(kubeConfig, flags.catalogConfigmap, values, image, buildId);
    err(
      `catalog ConfigMap ${flags.catalogConfigmap.namespace}/${flags.catalogConfigmap.name}: entry "${values.OS_NAME}" now points at ${image}`,
    );
  }
  process.stdout.write(flags.json ? `${JSON.stringify(record, null, 2)}\n` : `${summary(record)}\n`);
}

async function local(kind: BuildKind, flags: BuildFlags, signal: AbortSignal): Promise<void> {
  const outDir = flags.out ?? "osimg-build";
  const options = {
    specFile: flags.file,
    kind,
    outDir,
    dataDir: flags.dataDir,
    compression: flags.compression,
    ...(flags.push ? { push: { reference: flags.push, tlsVerify: flags.tlsVerify } } : {}),
    log: err,
    signal,
  };
  if (flags.debug) {
    const { files } = await writeDebug(options);
    process.stdout.write(
      `wrote the plan and its scripts (nothing was run):\n${files.map((f) => `  ${f}`).join("\n")}\n`,
    );
    return;
  }
  const record = await build(options);
  const bootFirmware = flags.bootTest ?? undefined;
  let booted: Awaited<ReturnType<typeof bootTest>> | undefined;
  if (bootFirmware) {
    const qcow2 = record.outputs.find((o) => o.name === "system.qcow2");
    if (!qcow2) throw new Error(`--boot-test: a ${kind} build has no disk image`);
    err(`boot test under ${bootFirmware}`);
    booted = await bootTest({
      image: qcow2.path,
      firmware: bootFirmware,
      timeoutMs: flags.bootTimeout * 1000,
      signal,
    });
    if (!booted.ok)
      throw new StepError(
        "boot-test",
        `the image did not boot under ${bootFirmware}: ${booted.reason}`,
        booted.lastConsoleLines.join("\n"),
      );
    err(`booted under ${bootFirmware} in ${((booted.timeToReadyMs ?? 0) / 1000).toFixed(1)} s`);
  }
  if (flags.register) {
    const spec = parseSpec(await readFile(flags.file, "utf8")).spec;
    const registered = await registerBuild({
      catalogPath: flags.register,
      section: spec?.catalog,
      record,
      ...(flags.imageUrl ? { imageUrl: flags.imageUrl } : {}),
      bootTimeoutMs: flags.bootTimeout * 1000,
      ...(booted && booted.firmware === (spec?.catalog?.FIRMWARE_TYPE ?? "bios") ? { booted } : {}),
      log: err,
      signal,
    });
    err(
      `${flags.register}: ${registered.action} entry "${registered.values.OS_NAME}" (OS_IMAGE_SHA256 ${registered.values.OS_IMAGE_SHA256})`,
    );
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
  else process.stdout.write(`${summary(record)}\n`);
  if (flags.resultLine) process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(record)}\n`);
}

export function registerBuildCommands(program: Command): Command {
  program
    .command("build")
    .description("build an OS image from a TOML spec (kbimg-style), rootless, without loop devices or mounts")
    .argument("<kind>", `what to build: ${BUILD_KINDS.join(", ")}`, (value: string) => {
      if (!(BUILD_KINDS as readonly string[]).includes(value))
        throw new InvalidArgumentError(`one of ${BUILD_KINDS.join(", ")}`);
      return value;
    })
    .requiredOption("-f, --file <spec.toml>", "the build spec")
    .option("-o, --out <dir>", "where the outputs go (default ./osimg-build)")
    .option("-d, --debug", "write the plan and equivalent shell scripts to --out, run nothing")
    .option(
      "--register <catalog.yaml>",
      "add or update the catalog entry ([catalog] of the spec) after a boot test",
    )
    .option("--image-url <url>", "OS_IMAGE_URL for --register (default: [catalog] OS_IMAGE_URL)")
    .option("--push <registry/repository:tag>", "push the OCI image through the OCI distribution API")
    .option("--no-tls-verify", "push over plain http (a local registry)")
    .addOption(
      new Option("--compression <kind>", "OCI layer compression")
        .choices(["none", "gzip", "zstd"])
        .default("none"),
    )
    .option(
      "--data-dir <dir>",
      "where osimg keeps its data (the build cache is under cache/build)",
      defaultDataDir(),
    )
    .option("--json", "print the build record (build.json) instead of a summary")
    .option("--result-line", `end with one line "${RESULT_PREFIX.trim()} {json}" (the Job's result)`)
    .addOption(
      new Option(
        "--boot-test <firmware>",
        "boot the disk image to cloud-init's finished line before succeeding",
      ).choices(["bios", "efi"]),
    )
    .option("--boot-timeout <seconds>", "how long a boot test may take", seconds, 600)
    .option("--on-cluster", "run the build as a Kubernetes Job and follow it")
    .option("--kubeconfig <path>", "kubeconfig for --on-cluster")
    .option("-n, --namespace <namespace>", "namespace of the Job (default: the context's)")
    .option(
      "--builder-image <image>",
      "the osimg image the Job runs",
      process.env.OSIMG_BUILDER_IMAGE ?? DEFAULT_BUILDER_IMAGE,
    )
    .option(
      "--credentials-secret <name>",
      "a Secret with OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD for the Job",
    )
    .option(
      "--catalog-configmap <namespace/name>",
      "on success, write the image into this catalog ConfigMap",
      objectRef,
    )
    .option("--timeout <seconds>", "deadline of the Job", seconds, DEFAULT_BUILD_TIMEOUT_MS / 1000)
    .action(async (kind: BuildKind, flags: BuildFlags) => {
      const { signal, received, dispose } = interruptible();
      try {
        if (flags.onCluster) await onCluster(kind, flags, signal);
        else await local(kind, flags, signal);
      } catch (error) {
        fail(error, received());
      } finally {
        dispose();
      }
    });

  program
    .command("build-step", { hidden: true })
    .description("run one native step of a plan written by osimg build --debug")
    .argument("<plan.json>")
    .argument("<step>")
    .action(async (planFile: string, id: string) => {
      const plan = JSON.parse(await readFile(planFile, "utf8")) as Plan;
      const step = plan.steps.find((s) => s.id === id);
      if (step?.kind !== "native") {
        err(`osimg: ${planFile} has no native step "${id}"`);
        process.exitCode = 2;
        return;
      }
      try {
        await nativeStep(step.op, { log: err });
      } catch (error) {
        fail(error);
      }
    });

  program
    .command("build-delete")
    .description(
      "delete a built image from its registry (with --on-cluster: as a Job, then clear the catalog keys)",
    )
    .argument("<registry/repository:tag>")
    .option("--no-tls-verify", "plain http (a local registry)")
    .option("--on-cluster", "run the deletion as a Kubernetes Job")
    .option("--kubeconfig <path>", "kubeconfig for --on-cluster")
    .option("-n, --namespace <namespace>", "namespace of the Job")
    .option(
      "--builder-image <image>",
      "the osimg image the Job runs",
      process.env.OSIMG_BUILDER_IMAGE ?? DEFAULT_BUILDER_IMAGE,
    )
    .option("--credentials-secret <name>", "a Secret with the registry credentials")
    .option(
      "--catalog-configmap <namespace/name>",
      "clear the image and the annotations in this catalog ConfigMap",
      objectRef,
    )
    .option("--os-name <name>", "the catalog entry whose OS_CONTAINERDISK_* keys are cleared")
    .option("--timeout <seconds>", "deadline of the Job", seconds, 600)
    .action(async (reference: string, flags: Omit<BuildFlags, "file"> & { osName?: string }) => {
      try {
        if (!flags.onCluster) {
          const { digest } = await deleteImage({ reference, tlsVerify: flags.tlsVerify });
          process.stdout.write(`deleted ${reference} (${digest})\n`);
          return;
        }
        const kubeConfig = loadKubeConfig({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}) });
        const namespace =
          flags.namespace ??
          kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ??
          "default";
        await runClusterDelete({
          kubeConfig,
          job: {
            buildId: newBuildId(),
            namespace,
            reference,
            tlsVerify: flags.tlsVerify,
            builderImage: flags.builderImage,
            ...(flags.credentialsSecret ? { credentialsSecret: flags.credentialsSecret } : {}),
            deadlineSeconds: Math.ceil(flags.timeout),
          },
          ...(flags.catalogConfigmap ? { catalog: flags.catalogConfigmap } : {}),
          ...(flags.osName ? { osName: flags.osName } : {}),
          timeoutMs: flags.timeout * 1000,
          log: err,
        });
        process.stdout.write(`deleted ${reference}\n`);
      } catch (error) {
        fail(error);
      }
    });
  return program;
}
