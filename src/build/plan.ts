// From a validated spec to the ordered steps of a build. Pure: no file is read and nothing runs; every
// input that is not in the spec (directories, the builder's privileges, digests of files the cache key
// depends on) is passed in. Commands are argv arrays; values from the spec only ever appear as whole argv
// elements, file contents, or JSON of native steps, never inside a shell string.
//
//   bootstrap   mmdebstrap → base rootfs tar (cached by everything that determines it; packages cached too)
//   customize   the tar edited in osimg: users, passwords, os-release, files, units, directories
//   chroot      [chroot_script] inside the image (mmdebstrap --variant=custom, in the build's namespace);
//               pxe-img: the installer into the image's initramfs (update-initramfs inside the image, pxe.ts)
//   filesystem  kernel and initrd taken out; the tree unpacked for mkfs.ext4 -d (in the user namespace)
//   disk        GPT + ESP (systemd-boot, SYSLINUX) + ext4 → system.raw → system.qcow2
//   package     OCI layouts (container-disk, upgrade-img, admin-container), PXE files
//   publish     push to a registry
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ImageConfigInput, LayerSource, OciCompression } from "../oci/layout.ts";
import { diskSteps } from "./disk.ts";
import { PXE_INITRAMFS_HOOK, PXE_PACKAGES, pxeInstallEdits, pxeKernelArgs, pxeServer } from "./pxe.ts";
import type { RootfsEdits } from "./rootfs.ts";
import {
  type BuildKind,
  type BuildSpec,
  bootloaderPassword,
  DEFAULT_MIRRORS,
  imgSizeBytes,
  type PxeConfig,
} from "./spec.ts";
import type { ExecStep, NativeStep, Step } from "./steps.ts";

export { pxeKernelArgs } from "./pxe.ts";

/** Bumped when the bootstrap's recipe changes, so that cached root filesystems are rebuilt. */
export const BOOTSTRAP_RECIPE = 1;
/** The default SOURCE_DATE_EPOCH (2025-01-01): identical inputs give identical images. */
export const DEFAULT_EPOCH = 1735689600;
export const CHROOT_HOOK = fileURLToPath(new URL("./chroot-hook.sh", import.meta.url));
const ESP_MiB = 128;
const MiB = 2 ** 20;

/** Subordinate id ranges of the (non-root) builder, from /etc/subuid and /etc/subgid. */
export interface SubIds {
  uid: { start: number; count: number };
  gid: { start: number; count: number };
}

export interface PlanInput {
  spec: BuildSpec;
  kind: BuildKind;
  /** sha256 of the spec's text. */
  specHash: string;
  /** Relative paths of the spec (copy_files, chroot_script, hostshell, keyring) are under this. */
  specDir: string;
  buildId: string;
  workDir: string;
  /**
   * Where the root filesystem is unpacked and mmdebstrap keeps its temporary chroot: a tmpfs when one has
   * room (tens of thousands of small files are written and removed there), else under the work directory.
   */
  scratchDir: string;
  outDir: string;
  /** The builder's cache: base root filesystems and downloaded packages. */
  cacheDir: string;
  /** Not root: mmdebstrap --mode=unshare, and image files handled inside a user namespace. */
  rootless?: SubIds;
  epoch: number;
  compression: OciCompression;
  push?: { reference: string; tlsVerify: boolean };
  /** sha256 of the keyring file, when the spec names one (it is part of the cache key). */
  keyringDigest?: string;
  /** `mmdebstrap --version`: part of the cache key. */
  mmdebstrapVersion: string;
}

export interface BuildOutput {
  name: string;
  path: string;
  kind: "file" | "oci-layout" | "directory";
  /** The step after which the output is complete (its digest can be taken while later steps run). */
  after: string;
}

export interface Plan {
  kind: BuildKind;
  buildId: string;
  /** The cache key of the base root filesystem. */
  baseKey: string;
  baseTar: string;
  /** The final root filesystem tar. */
  rootfsTar: string;
  steps: Step[];
  outputs: BuildOutput[];
  /** The kernel command line of disk images. */
  cmdline?: string;
  ids: Record<string, string>;
}

/** A UUID (version 4 layout) derived from a seed: fixed identifiers make images reproducible. */
export function derivedUuid(seed: string, label: string): string {
  const h = createHash("sha256").update(`${seed}\0${label}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const hasKernel = (packages: readonly string[]) => packages.some((p) => /^linux-image-/.test(p));
const INIT_PACKAGES = ["systemd-sysv", "sysvinit-core", "runit-init", "openrc"];
const needsKernel = (kind: BuildKind) =>
  kind === "vm-img" || kind === "container-disk" || kind === "pxe-img" || kind === "upgrade-img";

/** The packages the bootstrap installs: the spec's, plus what the output kind cannot do without. */
export function packageSet(spec: BuildSpec, kind: BuildKind): string[] {
  const set = new Set(spec.from_repo.packages);
  if (needsKernel(kind)) {
    if (!hasKernel([...set]))
      set.add(spec.from_repo.distribution === "ubuntu" ? "linux-image-virtual" : "linux-image-cloud-amd64");
    if (!INIT_PACKAGES.some((p) => set.has(p))) set.add("systemd-sysv");
  }
  if (kind === "pxe-img") for (const p of PXE_PACKAGES) set.add(p);
  if (kind === "admin-container") {
    for (const p of spec.admin_container?.packages ?? []) set.add(p);
    set.add("openssh-server");
  }
  return [...set].sort();
}

export function mirrorOf(spec: BuildSpec): string {
  return spec.from_repo.mirror ?? DEFAULT_MIRRORS[spec.from_repo.distribution];
}

export function componentsOf(spec: BuildSpec): string[] {
  return spec.from_repo.components ?? ["main"];
}

function hash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

/** Everything that determines the bootstrapped root filesystem. */
export function baseKey(input: PlanInput): string {
  const r = input.spec.from_repo;
  return hash({
    recipe: BOOTSTRAP_RECIPE,
    distribution: r.distribution,
    suite: r.suite,
    mirror: mirrorOf(input.spec),
    components: componentsOf(input.spec),
    keyring: input.keyringDigest ?? null,
    packages: packageSet(input.spec, input.kind),
    variant: "minbase",
    architecture: "amd64",
    epoch: input.epoch,
    mmdebstrap: input.mmdebstrapVersion,
  }).slice(0, 24);
}

/** The argv prefix that runs a program among the image's owners: a user namespace when not root. */
export function namespaceWrapper(rootless: SubIds | undefined): (argv: string[]) => string[] {
  if (!rootless) return (argv) => argv;
  return (argv) => [
    "unshare",
    "--map-root-user",
    `--map-users=${rootless.uid.start},1,${rootless.uid.count}`,
    `--map-groups=${rootless.gid.start},1,${rootless.gid.count}`,
    "--",
    ...argv,
  ];
}

/** mmdebstrap's mode, and as root a private mount and pid namespace so that nothing stays mounted. */
function mmdebstrap(rootless: SubIds | undefined, args: string[]): string[] {
  if (rootless) return ["mmdebstrap", "--mode=unshare", ...args];
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--pid",
    "--fork",
    "--kill-child",
    "--",
    "mmdebstrap",
    "--mode=root",
    ...args,
  ];
}

function fstab(ids: Record<string, string>, persist: boolean): string {
  // pxe-img: the installer gives the root partition the same PARTUUID (pxe.ts).
  const lines = [`PARTUUID=${ids.rootPart} / ext4 errors=remount-ro 0 1`];
  if (persist) lines.push(`PARTUUID=${ids.persistPart} /persist ext4 defaults,nofail 0 2`);
  return `${lines.join("\n")}\n`;
}

function pxeNetwork(pxe: PxeConfig): string | undefined {
  if (!pxe.net_name) return undefined;
  if (pxe.dhcp) return `allow-hotplug ${pxe.net_name}\niface ${pxe.net_name} inet dhcp\n`;
  return `auto ${pxe.net_name}\niface ${pxe.net_name} inet static\n    address ${pxe.local_ip}\n    netmask ${pxe.netmask}\n    gateway ${pxe.route_ip}\n`;
}

const SSH_HOST_KEYS = ["rsa", "ecdsa", "ed25519"].flatMap((t) => [
  `/etc/ssh/ssh_host_${t}_key`,
  `/etc/ssh/ssh_host_${t}_key.pub`,
]);

/** The edits of the customize step. */
export function rootfsEdits(
  input: PlanInput,
  ids: Record<string, string>,
  persistPartition: boolean,
): RootfsEdits {
  const { spec, kind, epoch } = input;
  const osRelease: Record<string, string> = { BUILD_ID: input.specHash.slice(0, 12) };
  if (spec.from_repo.version !== undefined) osRelease.IMAGE_VERSION = spec.from_repo.version;
  const edits: RootfsEdits = {
    epoch,
    osRelease,
    users: spec.users.map((u, i) => ({
      field: `users[${i}]`,
      name: u.name,
      ...(u.passwd ? { passwd: u.passwd } : {}),
      ...(u.primary_group ? { primaryGroup: u.primary_group } : {}),
      groups: u.groups,
      ...(u.shell ? { shell: u.shell } : {}),
      sshAuthorizedKeys: u.ssh_authorized_keys,
    })),
    copies: spec.copy_files.map((c, i) => ({
      field: `copy_files[${i}]`,
      src: c.src,
      root: input.specDir,
      dst: c.dst,
      ...(c.mode !== undefined
        ? { mode: typeof c.mode === "number" ? c.mode : Number.parseInt(c.mode, 8) }
        : {}),
      ...(c.owner ? { owner: c.owner } : {}),
    })),
    // Device nodes come from devtmpfs at boot (and from mmdebstrap in the chroot stage); the directories
    // mmdebstrap mounts on stay.
    remove: ["/dev/*"],
    dirs: [
      { path: "/dev", mode: 0o755 },
      { path: "/dev/pts", mode: 0o755 },
      { path: "/dev/shm", mode: 0o1777 },
    ],
    // The build host's name and resolver (mmdebstrap copies them in) do not belong in the image.
    files: [
      { path: "/etc/resolv.conf", content: "", mode: 0o644 },
      { path: "/etc/hostname", content: "localhost\n", mode: 0o644 },
    ],
    enableUnits: (spec.systemd_service?.name ?? []).map((unit, i) => ({
      unit,
      field: `systemd_service.name[${i}]`,
    })),
  };
  if (spec.from_repo.root_passwd) edits.rootPassword = spec.from_repo.root_passwd;
  if (kind !== "admin-container")
    edits.files.push({ path: "/etc/fstab", content: fstab(ids, persistPartition), mode: 0o644 });
  const persistNames = spec.persist_mkdir?.name ?? [];
  if (persistPartition) edits.dirs.push({ path: "/persist", mode: 0o755 });
  else if (persistNames.length > 0) {
    edits.dirs.push({ path: "/persist", mode: 0o755 });
    for (const [i, name] of persistNames.entries())
      edits.dirs.push({ path: `/persist/${name}`, mode: 0o755, field: `persist_mkdir.name[${i}]` });
  }
  const pxe = spec.pxe_config;
  if (kind === "pxe-img" && pxe) {
    const network = pxeNetwork(pxe);
    if (network)
      edits.files.push({ path: "/etc/network/interfaces.d/osimg-pxe", content: network, mode: 0o644 });
    const conf = Object.entries(pxe)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join("\n");
    edits.files.push({ path: "/etc/osimg/pxe.conf", content: `${conf}\n`, mode: 0o644 });
    const installer = pxeInstallEdits({
      pxe,
      ids: {
        disk: ids.disk ?? "",
        esp: ids.esp ?? "",
        rootPart: ids.rootPart ?? "",
        rootFs: ids.rootFs ?? "",
      },
      espMiB: ESP_MiB,
      bios: spec.from_repo.legacy_bios,
      bootPassword: bootloaderPassword(spec),
    });
    edits.files.push(...installer.files);
    // Before the spec's copy_files, which may replace them.
    edits.copies.unshift(...installer.copies);
  }
  if (kind === "admin-container") {
    const admin = spec.admin_container;
    edits.remove.push(...SSH_HOST_KEYS);
    edits.dirs.push({ path: "/run/sshd", mode: 0o755 }, { path: "/root/.ssh", mode: 0o700 });
    edits.files.push({
      path: "/etc/ssh/sshd_config.d/osimg.conf",
      content: "PermitRootLogin prohibit-password\nPasswordAuthentication no\n",
      mode: 0o644,
    });
    if (admin?.authorized_keys.length)
      edits.files.push({
        path: "/root/.ssh/authorized_keys",
        content: `${admin.authorized_keys.join("\n")}\n`,
        mode: 0o600,
      });
    if (admin?.hostshell)
      edits.copies.push({
        field: "admin_container.hostshell",
        src: admin.hostshell,
        root: input.specDir,
        dst: "/usr/local/bin/hostshell",
        mode: 0o755,
      });
  }
  return edits;
}

const STANDARD_IDS = ["disk", "esp", "rootPart", "rootFs", "persistPart", "persistFs"] as const;

export function makePlan(input: PlanInput): Plan {
  const { spec, kind, workDir: work, scratchDir: scratch, outDir: out } = input;
  const wrap = namespaceWrapper(input.rootless);
  const key = baseKey(input);
  const ids = Object.fromEntries(
    STANDARD_IDS.map((label) => [label, derivedUuid(input.specHash, label)]),
  ) as Record<(typeof STANDARD_IDS)[number], string>;
  const mirror = mirrorOf(spec);
  const packages = packageSet(spec, kind);
  const env = { SOURCE_DATE_EPOCH: String(input.epoch) };
  const exec = (
    stage: Step["stage"],
    id: string,
    title: string,
    argv: string[],
    extra: Partial<ExecStep> = {},
  ): ExecStep => ({ kind: "exec", id, stage, title, argv, env, ...extra });
  const native = (stage: Step["stage"], id: string, title: string, op: NativeStep["op"]): NativeStep => ({
    kind: "native",
    id,
    stage,
    title,
    op,
  });

  const rootfsDir = join(input.cacheDir, "rootfs");
  const baseTar = join(rootfsDir, `${key}.tar`);
  const debs = join(
    input.cacheDir,
    "debs",
    `${spec.from_repo.distribution}-${spec.from_repo.suite}-${hash(mirror).slice(0, 12)}`,
  );
  const keyring = spec.from_repo.keyring
    ? spec.from_repo.keyring.startsWith("/")
      ? spec.from_repo.keyring
      : join(input.specDir, spec.from_repo.keyring)
    : undefined;
  const steps: Step[] = [
    exec("bootstrap", "bootstrap.cache-dirs", "cache directories", ["mkdir", "-p", rootfsDir, debs]),
    // Readable by the image's owners, who are not the builder's uid when rootless, whatever the umask.
    exec("bootstrap", "bootstrap.scratch-dir", "scratch directory", ["install", "-d", "-m", "0755", scratch]),
    exec(
      "bootstrap",
      "bootstrap.mmdebstrap",
      `${spec.from_repo.distribution} ${spec.from_repo.suite} with ${packages.length} packages (mmdebstrap)`,
      mmdebstrap(input.rootless, [
        "--variant=minbase",
        "--format=tar",
        "--architectures=amd64",
        `--components=${componentsOf(spec).join(",")}`,
        `--include=${packages.join(",")}`,
        ...(keyring ? [`--keyring=${keyring}`] : []),
        '--aptopt=Acquire::Retries "3"',
        // Downloaded packages are kept in the cache directory (the working directory of this step); the
        // step's lock is that directory's, so bootstraps from one archive never share it at the same time.
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
        "--setup-hook=sync-in . /var/cache/apt/archives/",
        "--customize-hook=sync-out /var/cache/apt/archives .",
        spec.from_repo.suite,
        `${baseTar}.partial-${input.buildId}`,
        mirror,
      ]),
      {
        cwd: debs,
        env: { ...env, TMPDIR: scratch },
        cache: {
          path: baseTar,
          partial: `${baseTar}.partial-${input.buildId}`,
          lock: `${debs}.lock`,
        },
      },
    ),
  ];

  // Output files.
  const rootfsName = kind === "pxe-img" ? (spec.pxe_config?.rootfs_name ?? "rootfs.tar") : "rootfs.tar";
  const rootfsTar = join(out, rootfsName);
  const diskKind = kind === "vm-img" || kind === "container-disk";
  const size = spec.disk_partition?.img_size;
  const rootMiB = spec.disk_partition?.root ?? 2560;
  const persistMiB =
    diskKind && size !== undefined ? Math.floor(imgSizeBytes(size) / MiB) - 2 - ESP_MiB - rootMiB : 0;
  const persistPartition = persistMiB > 0;

  // pxe-img: the installer goes into the image's initramfs after everything else (update-initramfs in
  // the image, as the last chroot step).
  const pxe = kind === "pxe-img" && spec.pxe_config !== undefined;
  const customized = spec.chroot_script || pxe ? join(scratch, "customized.tar") : rootfsTar;
  const chrooted = pxe ? join(scratch, "chrooted.tar") : rootfsTar;
  const chrootSkip =
    "--skip=setup,update,download,cleanup/apt,cleanup/mmdebstrap,cleanup/run,cleanup/tmp,check/signed-by";
  steps.push(
    native(
      "customize",
      "customize.rootfs",
      "users, passwords, os-release, files and units in the root filesystem",
      {
        op: "customize-rootfs",
        input: baseTar,
        output: customized,
        edits: rootfsEdits(input, ids, persistPartition),
        result: join(work, "customize.json"),
      },
    ),
  );
  if (spec.chroot_script) {
    steps.push(
      native("chroot", "chroot.copy-script", "the chroot script, copied from the spec's directory", {
        op: "copy-in",
        root: input.specDir,
        path: spec.chroot_script.path,
        to: join(scratch, "chroot-script"),
        mode: 0o755,
        field: "chroot_script.path",
      }),
      exec(
        "chroot",
        "chroot.run",
        `run ${basename(spec.chroot_script.path)} inside the image`,
        mmdebstrap(input.rootless, [
          "--variant=custom",
          chrootSkip,
          "--setup-hook=tar-in customized.tar /",
          "--customize-hook=upload chroot-script /osimg-chroot-script",
          `--customize-hook=${CHROOT_HOOK}`,
          spec.from_repo.suite,
          chrooted,
          mirror,
        ]),
        {
          cwd: scratch,
          env: { ...env, TMPDIR: scratch, OSIMG_CHROOT_KEEP: spec.chroot_script.rm ? "0" : "1" },
        },
      ),
    );
  }

  if (pxe)
    steps.push(
      exec(
        "chroot",
        "chroot.pxe-initramfs",
        "the PXE installer into the image's initramfs (update-initramfs inside the image)",
        mmdebstrap(input.rootless, [
          "--variant=custom",
          chrootSkip,
          `--setup-hook=tar-in ${spec.chroot_script ? "chrooted.tar" : "customized.tar"} /`,
          `--customize-hook=${PXE_INITRAMFS_HOOK}`,
          spec.from_repo.suite,
          rootfsTar,
          mirror,
        ]),
        { cwd: scratch, env: { ...env, TMPDIR: scratch } },
      ),
    );

  const outputs: BuildOutput[] = [
    {
      name: rootfsName,
      path: rootfsTar,
      kind: "file",
      after: pxe ? "chroot.pxe-initramfs" : spec.chroot_script ? "chroot.run" : "customize.rootfs",
    },
  ];
  let cmdline: string | undefined;
  if (diskKind) {
    const rootDir = join(scratch, "rootfs");
    const persistDir = join(scratch, "persist");
    const kernel = join(work, "vmlinuz");
    const initrd = join(work, "initrd.img");
    cmdline = `root=PARTUUID=${ids.rootPart} ro console=tty0 console=ttyS0,115200n8`;
    steps.push(
      native("filesystem", "filesystem.boot-files", "kernel and initrd out of the root filesystem", {
        op: "extract-boot-files",
        tar: rootfsTar,
        kernel,
        initrd,
        mtime: input.epoch,
      }),
      exec("filesystem", "filesystem.mkdir", "directories to unpack into", [
        "mkdir",
        "-p",
        rootDir,
        persistDir,
      ]),
      exec(
        "filesystem",
        "filesystem.unpack",
        "unpack the root filesystem for mkfs.ext4 -d",
        wrap([
          "tar",
          "--extract",
          `--file=${rootfsTar}`,
          `--directory=${rootDir}`,
          "--numeric-owner",
          "--same-owner",
          "--preserve-permissions",
          "--xattrs",
          "--xattrs-include=*",
          "--exclude=./dev/*",
        ]),
      ),
    );
    if (persistPartition)
      for (const [i, name] of (spec.persist_mkdir?.name ?? []).entries())
        steps.push(
          exec("filesystem", `filesystem.persist-${i}`, `persist directory ${i}`, [
            "mkdir",
            "-p",
            "--",
            join(persistDir, name),
          ]),
        );
    const raw = join(out, "system.raw");
    const qcow2 = join(out, "system.qcow2");
    steps.push(
      ...diskSteps({
        raw,
        work,
        kernel,
        initrd,
        cmdline,
        espMiB: ESP_MiB,
        root: { dir: rootDir, sizeMiB: rootMiB, partUuid: ids.rootPart, fsUuid: ids.rootFs, label: "root" },
        ...(persistPartition
          ? {
              persist: {
                dir: persistDir,
                sizeMiB: persistMiB,
                partUuid: ids.persistPart,
                fsUuid: ids.persistFs,
                label: "persist",
              },
            }
          : {}),
        diskUuid: ids.disk,
        espPartUuid: ids.esp,
        bios: spec.from_repo.legacy_bios,
        bootPassword: bootloaderPassword(spec),
        epoch: input.epoch,
        wrap,
        qcow2,
      }).map((s) => (s.kind === "exec" ? { ...s, env: { ...env, ...s.env } } : s)),
      exec(
        "disk",
        "disk.cleanup",
        "remove the unpacked tree",
        wrap(["rm", "-rf", "--", rootDir, persistDir]),
      ),
    );
    outputs.push(
      {
        name: "system.raw",
        path: raw,
        kind: "file",
        after: persistPartition ? "disk.mkfs-persist" : "disk.mkfs-root",
      },
      { name: "system.qcow2", path: qcow2, kind: "file", after: "disk.qcow2" },
    );
  }

  const created = input.epoch;
  const oci = (name: string, tag: string, layers: LayerSource[], config: ImageConfigInput) => {
    const layout = join(out, name);
    steps.push(
      exec("package", `package.${name}-clear`, `a fresh ${name} layout`, ["rm", "-rf", "--", layout]),
      native("package", `package.${name}`, `${name} OCI image`, {
        op: "oci-image",
        layout,
        tag,
        layers,
        config,
        compression: input.compression,
        created,
      }),
    );
    outputs.push({ name, path: layout, kind: "oci-layout", after: `package.${name}` });
    if (input.push)
      steps.push(
        native("publish", `publish.${name}`, `push ${name} to ${input.push.reference}`, {
          op: "push",
          layout,
          tag,
          reference: input.push.reference,
          tlsVerify: input.push.tlsVerify,
        }),
      );
  };
  // No build id in the image: the same inputs give the same digest (build.json records the id).
  const labels = {
    "org.opencontainers.image.version": spec.from_repo.version ?? input.specHash.slice(0, 12),
    "io.osimg.spec-sha256": input.specHash,
  };
  if (kind === "container-disk")
    oci(
      "container-disk",
      "latest",
      [
        {
          kind: "files",
          entries: [
            { path: "disk", type: "dir", mode: 0o555, uid: 107, gid: 107 },
            {
              path: "disk/system.qcow2",
              type: "file",
              from: join(out, "system.qcow2"),
              mode: 0o444,
              uid: 107,
              gid: 107,
            },
          ],
        },
      ],
      { labels },
    );
  if (kind === "upgrade-img")
    oci(
      "upgrade-img",
      spec.from_repo.upgrade_img?.split(":")[1] ?? "latest",
      [
        {
          kind: "files",
          entries: [{ path: "os.tar", type: "file", from: rootfsTar, mode: 0o644, uid: 0, gid: 0 }],
        },
      ],
      { labels },
    );
  if (kind === "admin-container")
    oci(
      "admin-container",
      spec.admin_container?.img_name?.split(":")[1] ?? "latest",
      [{ kind: "tar", path: rootfsTar }],
      {
        cmd: ["/bin/sh", "-c", "ssh-keygen -A && exec /usr/sbin/sshd -D -e"],
        exposedPorts: ["22/tcp"],
        labels,
      },
    );
  if (kind === "pxe-img" && spec.pxe_config) {
    const kernel = join(out, "vmlinuz");
    const initrd = join(out, "initramfs.img");
    cmdline = `${pxeKernelArgs(spec.pxe_config)} console=tty0 console=ttyS0,115200n8`;
    steps.push(
      native("package", "package.boot-files", "kernel and initramfs for PXE", {
        op: "extract-boot-files",
        tar: rootfsTar,
        kernel,
        initrd,
        mtime: input.epoch,
      }),
      native("package", "package.pxelinux", "pxelinux.cfg/default", {
        op: "write-file",
        path: join(out, "pxelinux.cfg", "default"),
        content: `DEFAULT osimg\nPROMPT 0\nLABEL osimg\n  KERNEL vmlinuz\n  INITRD initramfs.img\n  APPEND ${cmdline}\n`,
        mode: 0o644,
        mtime: input.epoch,
      }),
      native("package", "package.ipxe", "boot.ipxe", {
        op: "write-file",
        path: join(out, "boot.ipxe"),
        content: `#!ipxe\nkernel ${pxeServer(spec.pxe_config)}/vmlinuz ${cmdline}\ninitrd ${pxeServer(spec.pxe_config)}/initramfs.img\nboot\n`,
        mode: 0o644,
        mtime: input.epoch,
      }),
    );
    outputs.push(
      { name: "vmlinuz", path: kernel, kind: "file", after: "package.boot-files" },
      { name: "initramfs.img", path: initrd, kind: "file", after: "package.boot-files" },
      {
        name: "pxelinux.cfg/default",
        path: join(out, "pxelinux.cfg", "default"),
        kind: "file",
        after: "package.pxelinux",
      },
      { name: "boot.ipxe", path: join(out, "boot.ipxe"), kind: "file", after: "package.ipxe" },
    );
  }
  return {
    kind,
    buildId: input.buildId,
    baseKey: key,
    baseTar,
    rootfsTar,
    steps,
    outputs,
    ...(cmdline ? { cmdline } : {}),
    ids,
  };
}
