// One build: the spec file read and validated, the plan made, then either written out as scripts (--debug)
// or run, recorded in build.json (spec hash, tool versions, packages, output digests, durations). A build
// works in its own directory; when it fails or is interrupted that directory and its partial outputs are
// removed (nothing is ever mounted, so nothing is left mounted).
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { byPosition, type Finding, FindingSink } from "../catalog/findings.ts";
import type { OciCompression, OciImageResult } from "../oci/layout.ts";
import type { PushResult } from "../oci/push.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { DEFAULT_EPOCH, makePlan, namespaceWrapper, type Plan, type SubIds } from "./plan.ts";
import { RootfsError, type RootfsResult } from "./rootfs.ts";
import { BuildInterrupted, execStep, runSteps } from "./run.ts";
import { renderScripts } from "./shell.ts";
import { type BuildKind, findingAt, type ParsedSpec, parseSpec } from "./spec.ts";

const run = promisify(execFile);

export class SpecError extends Error {
  override name = "SpecError";
  readonly file: string;
  readonly findings: Finding[];

  constructor(file: string, findings: Finding[]) {
    const errors = findings.filter((f) => f.severity === "error");
    super(
      `${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}\n${formatFindings(file, errors)}`,
    );
    this.file = file;
    this.findings = findings;
  }
}

export function formatFindings(file: string, findings: readonly Finding[]): string {
  return findings
    .map(
      (f) =>
        `${file}:${f.line}:${f.column}: ${f.severity}: ${f.message}${f.path ? ` [${f.path}]` : ""}${f.hint ? `\n  hint: ${f.hint}` : ""}`,
    )
    .join("\n");
}

export interface BuildOptions {
  specFile: string;
  kind: BuildKind;
  outDir: string;
  dataDir: string;
  /** Write plan.json and the scripts to outDir, run nothing. */
  debug?: boolean;
  compression?: OciCompression;
  push?: { reference: string; tlsVerify: boolean };
  /** SOURCE_DATE_EPOCH; default $SOURCE_DATE_EPOCH, else DEFAULT_EPOCH. */
  epoch?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Skips the privilege check (tests of --debug as root rendering the rootless plan). */
  rootless?: SubIds;
  env?: NodeJS.ProcessEnv;
  /** The build's id (work and scratch directories, build.json); default a new one. */
  buildId?: string;
}

export interface OutputRecord {
  name: string;
  path: string;
  kind: "file" | "oci-layout" | "directory";
  sha256?: string;
  size?: number;
  /** OCI layouts: the manifest's digest. */
  manifestDigest?: string;
}

export interface BuildRecord {
  buildId: string;
  kind: BuildKind;
  specFile: string;
  specSha256: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  stages: Record<string, number>;
  steps: { id: string; ms: number; cached: boolean }[];
  rootless: boolean;
  sourceDateEpoch: number;
  baseKey: string;
  baseCached: boolean;
  tools: Record<string, string>;
  packages: { name: string; version: string }[];
  outputs: OutputRecord[];
  cmdline?: string;
  ids: Record<string, string>;
  push?: PushResult;
}

export interface DebugResult {
  plan: Plan;
  files: string[];
}

export function newBuildId(): string {
  return `b${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 8 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest("hex"), size };
}

/** The builder's subordinate id ranges (/etc/subuid, /etc/subgid), needed without root. */
export async function subIds(): Promise<SubIds> {
  const { username, uid } = userInfo();
  const range = async (file: string) => {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      const [owner, start, count] = line.split(":");
      if ((owner === username || owner === String(uid)) && start && count)
        return { start: Number(start), count: Math.min(Number(count), 65536) };
    }
    throw new Error(
      `building without root needs a subordinate id range for ${username} in ${file} (for mmdebstrap --mode=unshare); add one with: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${username}`,
    );
  };
  return { uid: await range("/etc/subuid"), gid: await range("/etc/subgid") };
}

const TOOLS: [string, string[]][] = [
  ["mmdebstrap", ["--version"]],
  ["mkfs.ext4", ["-V"]],
  ["sfdisk", ["--version"]],
  ["mkfs.vfat", ["--help"]],
  ["mtools", ["--version"]],
  ["syslinux", ["--version"]],
  ["qemu-img", ["--version"]],
  ["tar", ["--version"]],
];

/** First lines of each tool's version output (build.json). */
export async function toolVersions(): Promise<Record<string, string>> {
  const entries = await Promise.all(
    TOOLS.map(async ([tool, args]) => {
      const result = await run(tool === "mtools" ? "mcopy" : tool, args).catch(
        (e: { stdout?: string; stderr?: string }) => e,
      );
      const text = `${result.stdout ?? ""}\n${result.stderr ?? ""}`;
      const line =
        text
          .split("\n")
          .find((l) => /\d+\.\d+/.test(l))
          ?.trim() ?? "unknown";
      return [tool, line] as const;
    }),
  );
  return { ...Object.fromEntries(entries), node: process.version };
}

let mmdebstrapVersion: Promise<string> | undefined;

/** `mmdebstrap --version`, asked once per process (it is part of the cache key). */
function mmdebstrapVersionOnce(): Promise<string> {
  mmdebstrapVersion ??= run("mmdebstrap", ["--version"]).then(
    (r) => r.stdout.trim(),
    () => "mmdebstrap (not installed)",
  );
  return mmdebstrapVersion;
}

export interface PreparedBuild {
  parsed: ParsedSpec;
  plan: Plan;
  workDir: string;
  /** Holds the scratch directory (the plan's) under a name nobody else can list. */
  scratchParent: string;
  /** The builder's subordinate ids when not root. */
  rootless: SubIds | undefined;
  /** SOURCE_DATE_EPOCH of the build. */
  epoch: number;
  specHash: string;
}

const TMPFS_MAGIC = 0x01021994;
/** Room a tmpfs needs to take a build's scratch trees (a root filesystem tar and its unpacked tree, twice). */
const SCRATCH_MIN_FREE = 4 * 2 ** 30;

/**
 * The build's scratch directory: under $OSIMG_BUILD_SCRATCH when set, else on /dev/shm when it is a tmpfs
 * with room (unpacking and removing a root filesystem there takes a tenth of the time it takes on a disk
 * file system), else in the work directory.
 */
async function scratchDirFor(buildId: string, workDir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const name = `osimg-build-${buildId}`;
  if (env.OSIMG_BUILD_SCRATCH) return join(resolve(env.OSIMG_BUILD_SCRATCH), name);
  const shm = await statfs("/dev/shm").catch(() => undefined);
  if (shm && shm.type === TMPFS_MAGIC && shm.bavail * shm.bsize >= SCRATCH_MIN_FREE)
    return join("/dev/shm", name);
  return join(workDir, "scratch");
}

/** Reads and validates the spec and makes the plan (throws SpecError with positioned findings). */
export async function prepareBuild(options: BuildOptions, buildId: string): Promise<PreparedBuild> {
  const specFile = resolve(options.specFile);
  const text = await readFile(specFile, "utf8");
  const parsed = parseSpec(text);
  if (!parsed.spec) throw new SpecError(options.specFile, parsed.findings);
  const spec = parsed.spec;
  const sink = new FindingSink();
  if (options.kind === "pxe-img" && !spec.pxe_config)
    findingAt(parsed, sink, {
      code: "pxe.missing",
      path: "",
      message: "pxe-img needs a [pxe_config] section",
      hint: "add [pxe_config] with server_ip, disk and the network settings",
    });
  if (sink.findings.length > 0)
    throw new SpecError(options.specFile, [...parsed.findings, ...sink.findings].sort(byPosition));
  const specHash = createHash("sha256").update(text).digest("hex");
  const env = options.env ?? process.env;
  const epoch = options.epoch ?? (env.SOURCE_DATE_EPOCH ? Number(env.SOURCE_DATE_EPOCH) : DEFAULT_EPOCH);
  const rootless = options.rootless ?? (process.getuid?.() === 0 ? undefined : await subIds());
  const specDir = dirname(specFile);
  const keyring = spec.from_repo.keyring;
  const keyringDigest = keyring
    ? (await sha256File(keyring.startsWith("/") ? keyring : join(specDir, keyring)).catch(() => undefined))
        ?.sha256
    : undefined;
  if (keyring && !keyringDigest) {
    findingAt(parsed, sink, {
      code: "keyring.missing",
      path: "from_repo.keyring",
      message: `keyring ${keyring} cannot be read`,
      hint: "name a readable .gpg keyring file",
    });
    throw new SpecError(options.specFile, sink.findings);
  }
  const mmdebstrapVersion = await mmdebstrapVersionOnce();
  const outDir = resolve(options.outDir);
  const workDir = options.debug
    ? join(outDir, "work")
    : join(resolve(options.dataDir), "build", "work", buildId);
  // --debug scripts stay the same on every machine: their scratch is in their work directory.
  const scratchParent = options.debug ? join(workDir, "scratch") : await scratchDirFor(buildId, workDir, env);
  // The parent is not listable (0711) and the name below it is random: the image's files in it (its
  // /etc/shadow among them) stay readable by the image's owners (subordinate ids when rootless, so
  // not the builder's own uid) but cannot be found by anyone else.
  const scratchDir = join(scratchParent, options.debug ? "tree" : randomBytes(12).toString("hex"));
  const plan = makePlan({
    spec,
    kind: options.kind,
    specHash,
    specDir,
    buildId,
    workDir,
    scratchDir,
    outDir,
    cacheDir: join(resolve(options.dataDir), "cache", "build"),
    ...(rootless ? { rootless } : {}),
    epoch,
    compression: options.compression ?? "none",
    ...(options.push ? { push: options.push } : {}),
    ...(keyringDigest ? { keyringDigest } : {}),
    mmdebstrapVersion,
  });
  return { parsed, plan, workDir, scratchParent, specHash, rootless, epoch };
}

/** --debug: plan.json and one script per stage under the output directory; nothing runs. */
export async function writeDebug(options: BuildOptions): Promise<DebugResult> {
  const buildId = newBuildId();
  const { plan } = await prepareBuild({ ...options, debug: true }, buildId);
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const planFile = join(outDir, "plan.json");
  await writeFile(planFile, `${JSON.stringify(plan, null, 2)}\n`);
  const scripts = renderScripts(plan.steps, planFile, [
    `spec: ${resolve(options.specFile)}`,
    `kind: ${options.kind}`,
    `build: ${buildId}`,
  ]);
  const files = [planFile];
  for (const [name, text] of scripts) {
    const path = join(outDir, name);
    await writeFile(path, `${text}\n`);
    await chmod(path, 0o755);
    files.push(path);
  }
  return { plan, files };
}

/** Removes a directory that may hold files owned by the image's users (subordinate ids when rootless). */
async function removeTree(path: string, rootless: SubIds | undefined): Promise<void> {
  if (rootless) {
    await execStep(
      {
        kind: "exec",
        id: "cleanup",
        stage: "disk",
        title: "remove the work directory",
        argv: namespaceWrapper(rootless)(["rm", "-rf", "--", path]),
      },
      { log: () => {}, planFile: "" },
    ).catch(() => undefined);
  }
  await rm(path, { recursive: true, force: true });
}

export async function build(options: BuildOptions): Promise<BuildRecord> {
  const buildId = options.buildId ?? newBuildId();
  const log = options.log ?? (() => {});
  const { parsed, plan, workDir, scratchParent, specHash, rootless, epoch } = await prepareBuild(
    options,
    buildId,
  );
  const started = Date.now();
  const steps: BuildRecord["steps"] = [];
  const stages: Record<string, number> = {};
  let baseCached = false;
  const digests = new Map<string, Promise<{ sha256: string; size: number }>>();
  await mkdir(workDir, { recursive: true, mode: 0o755 });
  await mkdir(scratchParent, { recursive: true, mode: 0o711 });
  await chmod(scratchParent, 0o711);
  await mkdir(resolve(options.outDir), { recursive: true });
  log(
    `build ${buildId}: ${options.kind} from ${options.specFile} (${plan.steps.length} steps${rootless ? ", rootless" : ""}, scratch in ${scratchParent})`,
  );
  try {
    const [results, tools] = await Promise.all([
      runSteps(plan.steps, {
        log,
        ...(options.signal ? { signal: options.signal } : {}),
        planFile: join(workDir, "plan.json"),
        onStep: (step, ms, skipped) => {
          steps.push({ id: step.id, ms, cached: skipped });
          stages[step.stage] = (stages[step.stage] ?? 0) + ms;
          if (step.id === "bootstrap.mmdebstrap") baseCached = skipped;
          // A finished output is hashed while the later steps run.
          for (const output of plan.outputs) {
            if (output.kind !== "file" || output.after !== step.id) continue;
            const digest = sha256File(output.path);
            digest.catch(() => {}); // awaited (and reported) with the outputs
            digests.set(output.path, digest);
          }
        },
      }),
      toolVersions(),
    ]);
    const customize = results.get("customize.rootfs") as RootfsResult;
    const outputs: OutputRecord[] = [];
    let push: PushResult | undefined;
    for (const output of plan.outputs) {
      if (output.kind === "file")
        outputs.push({ ...output, ...(await (digests.get(output.path) ?? sha256File(output.path))) });
      else {
        const image = results.get(`package.${output.name}`) as OciImageResult | undefined;
        outputs.push({ ...output, ...(image ? { manifestDigest: image.manifest.digest } : {}) });
        push = (results.get(`publish.${output.name}`) as PushResult | undefined) ?? push;
      }
    }
    const finished = Date.now();
    const record: BuildRecord = {
      buildId,
      kind: options.kind,
      specFile: resolve(options.specFile),
      specSha256: specHash,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      stages,
      steps,
      rootless: rootless !== undefined,
      sourceDateEpoch: epoch,
      baseKey: plan.baseKey,
      baseCached,
      tools,
      packages: customize.packages,
      outputs,
      ...(plan.cmdline ? { cmdline: plan.cmdline } : {}),
      ids: plan.ids,
      ...(push ? { push } : {}),
    };
    await writeFileAtomic(
      join(resolve(options.outDir), "build.json"),
      `${JSON.stringify(record, null, 2)}\n`,
    );
    return record;
  } catch (error) {
    await Promise.allSettled(digests.values());
    for (const output of plan.outputs) await rm(output.path, { recursive: true, force: true });
    if (error instanceof RootfsError && error.field !== undefined) {
      const sink = new FindingSink();
      findingAt(parsed, sink, {
        code: "build.rootfs",
        path: error.field,
        message: error.message,
        hint: error.hint,
      });
      throw new SpecError(options.specFile, sink.findings);
    }
    if (error instanceof BuildInterrupted) log(`build ${buildId} interrupted; removing ${workDir}`);
    throw error;
  } finally {
    await removeTree(scratchParent, rootless);
    await removeTree(workDir, rootless);
  }
}
