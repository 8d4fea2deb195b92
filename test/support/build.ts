// Support for the builder's tests: a real OCI registry (Debian's docker-registry) on 127.0.0.1, a small
// synthetic root filesystem (busybox, account files, a fake kernel) placed in the build cache so that the
// whole pipeline runs in seconds without downloading Debian, and a pod runner for the fake Kubernetes API
// server's Job controller that runs the pod's osimg command on this machine.
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { prepareBuild } from "../../src/build/build.ts";
import type { BuildKind } from "../../src/build/spec.ts";
import { dirHeader, symlinkHeader, TarWriter } from "../../src/build/tar.ts";
import { defaultDataDir } from "../../src/config/paths.ts";
import { findFreePort } from "../../src/vms/providers/qemu/ports.ts";
import type { KubeObject } from "./fake-kube/index.ts";
import type { PodRunner } from "./fake-kube/jobs.ts";

const runFile = promisify(execFile);

export const OSIMG_BIN = new URL("../../bin/osimg.js", import.meta.url).pathname;

/** The data directory builds in tests use: its cache (cache/build) survives, so reruns are fast. */
export function buildTestDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OSIMG_BUILD_TEST_DATA ?? defaultDataDir(env);
}

export async function tempDir(prefix = "osimg-build-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * Runs a shell script (arguments as $1...) among an image's owners: directly as root; otherwise in a user
 * namespace mapping the user's subordinate ids, where files of uid 0 or 107 can be made, read and removed.
 */
export async function asImageOwners(script: string, ...args: string[]): Promise<string> {
  const root = process.getuid?.() === 0;
  const argv = [
    ...(root ? [] : ["unshare", "--map-root-user", "--map-auto"]),
    "sh",
    "-c",
    script,
    "sh",
    ...args,
  ];
  const { stdout } = await runFile(argv[0] as string, argv.slice(1), { maxBuffer: 32 << 20 });
  return stdout;
}

/** Removes a tree that may hold files of an image's owners. */
export const removeOwnedTree = (path: string) => asImageOwners('rm -rf -- "$1"', path);

const EPOCH = 1_700_000_000;
const dir = (path: string, mode = 0o755) => dirHeader(path, mode, EPOCH);
const link = (path: string, target: string) => symlinkHeader(path, target, EPOCH);

/**
 * Puts the synthetic root filesystem where a build of this spec text and kind in this data directory looks
 * for its cached base, so the build runs in seconds without downloading Debian.
 */
export async function seedSyntheticBase(
  dataDir: string,
  spec: string,
  kind: BuildKind = "vm-img",
): Promise<void> {
  const dir = await tempDir("osimg-build-seed-");
  try {
    const specFile = join(dir, "spec.toml");
    await writeFile(specFile, spec);
    const { plan } = await prepareBuild({ specFile, kind, outDir: join(dir, "out"), dataDir }, "seed");
    await writeSyntheticRootfs(plan.baseTar);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A small root filesystem: busybox as /bin/sh (so chroot scripts run), merged-/usr symlinks like Debian,
 * account files with root, daemon and sudo, a skeleton home, a systemd unit to enable, and a "kernel" and
 * "initrd" (placeholder bytes: enough to assemble a disk, not to boot it). With `updateInitramfs`, a
 * stand-in for initramfs-tools' update-initramfs (what pxe-img builds run in the image): it checks that
 * the PXE installer's hook and boot script are in place and appends a line saying so to the "initrd".
 */
export async function writeSyntheticRootfs(
  path: string,
  options: { updateInitramfs?: boolean } = {},
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const writer = await TarWriter.create(`${path}.partial`);
  const file = async (p: string, data: string | Buffer, mode = 0o644, gid = 0) =>
    writer.add(
      { path: p, type: "file", mode, uid: 0, gid, size: 0, mtime: EPOCH, linkname: "" },
      Buffer.from(data),
    );
  await writer.add(dir(""));
  for (const d of [
    "boot",
    "dev",
    "dev/pts",
    "dev/shm",
    "etc",
    "etc/skel",
    "etc/systemd",
    "etc/systemd/system",
    "home",
    "proc",
    "root",
    "run",
    "sys",
    "tmp",
    "usr",
    "usr/bin",
    "usr/lib",
    "usr/lib/systemd",
    "usr/lib/systemd/system",
    "usr/sbin",
    "var",
    "var/lib",
    "var/lib/dpkg",
  ])
    await writer.add(dir(d, d === "tmp" ? 0o1777 : d === "root" ? 0o700 : 0o755));
  await writer.add(link("bin", "usr/bin"));
  await writer.add(link("lib", "usr/lib"));
  await writer.add(link("sbin", "usr/sbin"));
  // Points out of the image if followed on the host: the builder must resolve it inside the image.
  await writer.add(link("etc/evil", "/../../tmp"));
  await file("usr/bin/busybox", await readFile("/bin/busybox"), 0o755);
  for (const tool of ["sh", "echo", "cat", "touch", "mkdir", "ls", "rm", "chmod", "id", "printf", "mv", "cp"])
    await writer.add(link(`usr/bin/${tool}`, "busybox"));
  await file(
    "etc/passwd",
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
  );
  await file("etc/group", "root:x:0:\ndaemon:x:1:\nsudo:x:27:\nshadow:x:42:\n");
  await file("etc/shadow", "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n", 0o640, 42);
  await file("etc/gshadow", "root:*::\ndaemon:*::\nsudo:*::\nshadow:*::\n", 0o640, 42);
  await file("etc/skel/.profile", "# profile\n");
  // A host key as openssh-server's postinst leaves one: images must not share it.
  await writer.add(dir("etc/ssh"));
  await file("etc/ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o600);
  await file("usr/lib/os-release", 'PRETTY_NAME="Synthetic"\nID=synthetic\n');
  await writer.add(link("etc/os-release", "../usr/lib/os-release"));
  await file(
    "usr/lib/systemd/system/demo.service",
    "[Unit]\nDescription=demo\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n",
  );
  await file(
    "var/lib/dpkg/status",
    "Package: busybox\nStatus: install ok installed\nVersion: 1:1.35.0-4\n\n",
  );
  await file("boot/vmlinuz-6.1.0-synthetic", Buffer.alloc(64 * 1024, 1));
  await file("boot/initrd.img-6.1.0-synthetic", Buffer.alloc(64 * 1024, 2));
  if (options.updateInitramfs)
    await file(
      "usr/sbin/update-initramfs",
      [
        "#!/bin/sh",
        "set -e",
        "[ -f /etc/initramfs-tools/hooks/osimg-install ]",
        "[ -f /etc/initramfs-tools/scripts/osimg-install ]",
        'echo "update-initramfs $* OSIMG_PXE_BUILD=$OSIMG_PXE_BUILD" >> /boot/initrd.img-6.1.0-synthetic',
        "",
      ].join("\n"),
      0o755,
    );
  await writer.finish();
  await rename(`${path}.partial`, path);
}

/** A ConfigMap a pod mounts, once it exists: the kubelet retries the mount until it does (30 s here). */
async function mounted(read: () => KubeObject): Promise<KubeObject> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return read();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Runs a Job's pod here: the pod's ConfigMap volume is written to a directory (items at their paths and
 * modes, once the ConfigMap exists), other volumes are empty directories, mount paths in the command are
 * mapped to those directories, and `osimg …` runs as `node bin/osimg.js …` with the container's
 * environment.
 */
export function localPodRunner(options: {
  configMaps: (namespace: string, name: string) => KubeObject;
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  secrets?: (namespace: string, name: string) => KubeObject;
}): PodRunner {
  return async (pod, run) => {
    const spec = pod.spec as {
      containers: {
        command: string[];
        env?: { name: string; value: string }[];
        envFrom?: { secretRef?: { name: string } }[];
        volumeMounts?: { name: string; mountPath: string }[];
      }[];
      volumes?: {
        name: string;
        configMap?: { name: string; items?: { key: string; path: string; mode?: number }[] };
      }[];
    };
    const container = spec.containers[0];
    if (!container) return 1;
    const root = await tempDir("osimg-pod-");
    try {
      const mounts = new Map<string, string>();
      for (const volume of spec.volumes ?? []) {
        const hostDir = volume.name === "data" ? options.dataDir : join(root, volume.name);
        await mkdir(hostDir, { recursive: true });
        if (volume.configMap) {
          const cm = (await mounted(() =>
            options.configMaps(pod.metadata.namespace as string, volume.configMap?.name as string),
          )) as KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> };
          for (const item of volume.configMap.items ?? []) {
            const target = join(hostDir, item.path);
            await mkdir(dirname(target), { recursive: true });
            const data =
              cm.data?.[item.key] !== undefined
                ? Buffer.from(cm.data[item.key] as string)
                : Buffer.from(cm.binaryData?.[item.key] ?? "", "base64");
            await writeFile(target, data, { mode: item.mode ?? 0o644 });
          }
        }
        const mount = container.volumeMounts?.find((m) => m.name === volume.name);
        if (mount) mounts.set(mount.mountPath, hostDir);
      }
      const mapPath = (arg: string) => {
        for (const [mountPath, hostDir] of mounts)
          if (arg === mountPath || arg.startsWith(`${mountPath}/`))
            return hostDir + arg.slice(mountPath.length);
        return arg;
      };
      const [program, ...args] = container.command;
      if (program !== "osimg") throw new Error(`the pod runs ${program}, not osimg`);
      const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
      for (const e of container.env ?? []) env[e.name] = mapPath(e.value);
      for (const from of container.envFrom ?? []) {
        if (!from.secretRef || !options.secrets) continue;
        const secret = options.secrets(
          pod.metadata.namespace as string,
          from.secretRef.name,
        ) as KubeObject & { data?: Record<string, string> };
        for (const [k, v] of Object.entries(secret.data ?? {}))
          env[k] = Buffer.from(v, "base64").toString("utf8");
      }
      return await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, [OSIMG_BIN, ...args.map(mapPath)], {
          env,
          stdio: ["ignore", "pipe", "pipe"],
        });
        child.stdout.on("data", (d: Buffer) => run.log(d.toString()));
        child.stderr.on("data", (d: Buffer) => run.log(d.toString()));
        const onAbort = () => child.kill("SIGTERM");
        run.signal.addEventListener("abort", onAbort, { once: true });
        child.on("close", (code) => {
          run.signal.removeEventListener("abort", onAbort);
          resolve(code ?? 1);
        });
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  };
}

/**
 * Holds the pods whose spec (spec.toml in the ConfigMap they mount) contains `mark` until their Job is
 * deleted, saying so in their log; other pods go to `runner`. For builds stopped while they run.
 */
export function holdingPodRunner(
  runner: PodRunner,
  configMaps: (namespace: string, name: string) => KubeObject,
  mark: string,
): PodRunner {
  return async (pod, run) => {
    const volume = (pod.spec as { volumes?: { configMap?: { name: string } }[] }).volumes?.find(
      (v) => v.configMap,
    );
    const spec = volume?.configMap
      ? ((await mounted(() =>
          configMaps(pod.metadata.namespace as string, volume.configMap?.name as string),
        )) as KubeObject & { data?: Record<string, string> })
      : undefined;
    if (!spec?.data?.["spec.toml"]?.includes(mark)) return runner(pod, run);
    run.log("holding on until the Job is deleted\n");
    return new Promise<number>((resolve) =>
      run.signal.addEventListener("abort", () => resolve(137), { once: true }),
    );
  };
}

export interface AccessLogEntry {
  /** The client's address (no port): who really connected. */
  remote: string;
  method: string;
  /** The request URI as received (path and query). */
  uri: string;
  status: number;
}

export interface Registry {
  /** host:port */
  address: string;
  /** Every request the registry answered (docker-registry writes one line each on its standard output). */
  accessLog: AccessLogEntry[];
  stop(): Promise<void>;
}

/** Debian's docker-registry with deletes enabled, storage in a temporary directory. */
export async function startRegistry(): Promise<Registry> {
  const dir = await tempDir("osimg-registry-");
  const port = await findFreePort();
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log: { level: error }",
      `storage: { filesystem: { rootdirectory: ${join(dir, "data")} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      "",
    ].join("\n"),
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "pipe", "pipe"] });
  const accessLog: AccessLogEntry[] = [];
  let partial = "";
  child.stdout.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const m = /^(\S+) \S+ \S+ \[[^\]]*\] "(\S+) (\S+) HTTP\/[\d.]+" (\d{3}) /.exec(line);
      if (m)
        accessLog.push({
          remote: m[1] as string,
          method: m[2] as string,
          uri: m[3] as string,
          status: Number(m[4]),
        });
    }
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`http://${address}/v2/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address,
    accessLog,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
