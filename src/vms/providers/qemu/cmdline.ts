// The QEMU command line of a VM, built from a typed machine spec. Pure: no file is read, nothing runs.
// Every argument is one argv element (nothing goes through a shell); file names inside QEMU option strings
// have their commas doubled, QEMU's own escaping.
//
// What the machine gets:
//   - machine q35 or pc (from MACHINE_TYPE), -accel kvm|tcg (from the probe), CPU "host" under KVM and "max"
//     under TCG (all that TCG emulates, e.g. x86-64-v2 that RHEL 9 needs);
//   - firmware: SeaBIOS (QEMU's default) or OVMF as two pflash drives, the code read-only and a per-VM copy
//     of the vars; secure boot uses the secboot code with SMM and a secure flash;
//   - disks on virtio-blk, cdroms on the machine's IDE/AHCI bus, the NoCloud seed as a read-only virtio disk;
//     BOOT_ORDER becomes bootindex values;
//   - user-mode networking (virtio-net) with SSH forwarded from 127.0.0.1;
//   - the serial console, VNC, QMP and the guest-agent channel each on a unix socket in the VM's directory;
//   - a virtio RNG (guests do not stall on entropy under TCG), a USB tablet when VNC is on (absolute pointer
//     for noVNC), -pidfile.
//   - on request, SeaBIOS's debug console in a file (it tells "No bootable device" where the serial is silent).
// QEMU is not daemonized by default (see launch.ts: the launcher detaches it itself, so that its stderr goes
// to the VM's log for its whole life); `daemonize: true` adds -daemonize for callers that want QEMU's own.

export type Accelerator = "kvm" | "tcg";
export type BootDevice = "disk" | "cdrom" | "network";
export type MachineFeature = "acpi" | "apic" | "hyperv" | "smm" | "tpm";

export type Firmware =
  | { type: "bios" }
  | {
      type: "efi";
      /** OVMF code (read-only), e.g. /usr/share/OVMF/OVMF_CODE_4M.fd or OVMF_CODE_4M.secboot.fd. */
      code: string;
      /** This VM's own copy of the vars template (writable: the guest stores boot entries there). */
      vars: string;
      secureBoot?: boolean;
    };

export interface DiskSpec {
  kind: "disk";
  path: string;
  format: "qcow2" | "raw";
  readOnly?: boolean;
}

export interface CdromSpec {
  kind: "cdrom";
  path: string;
}

export interface MachineSpec {
  /** The VM name, shown in `ps` and query-name. */
  name: string;
  cpus: number;
  memoryBytes: number;
  accel: Accelerator;
  firmware: Firmware;
  /** The catalog's MACHINE_TYPE as written; q35 when absent. */
  machineType?: string | undefined;
  features?: readonly MachineFeature[];
  /** In order; the first disk is the root disk. */
  disks: readonly (DiskSpec | CdromSpec)[];
  /** The NoCloud ISO, attached read-only on virtio-blk (never a boot device). */
  seed?: string | undefined;
  /** BOOT_ORDER; default disk then cdrom. */
  bootOrder?: readonly BootDevice[];
  network:
    | { kind: "none" }
    | {
        kind: "user";
        /** Host port on 127.0.0.1 forwarded to the guest's port 22. */
        sshPort?: number;
        mac?: string;
      };
  sockets: {
    qmp: string;
    serial: string;
    vnc?: string;
    agent?: string;
    /** swtpm's control socket; needed for FEATURES tpm. */
    tpm?: string;
  };
  /** Everything the guest writes to the serial console is also appended here. */
  serialLog?: string;
  /**
   * SeaBIOS's debug console (I/O port 0x402) is written here: it says "No bootable device" where the
   * serial console says nothing. BIOS only (OVMF reports boot failures on the serial console).
   */
  firmwareLog?: string;
  pidfile: string;
  daemonize?: boolean;
  /** TCG translation cache in MiB; QEMU's default (1 GiB) is large for small test guests. */
  tcgTranslationCacheMiB?: number;
}

export type MachineNoteCode = "MachineTypeMapped" | "TpmUnavailable" | "HypervUnderTcg" | "FeatureDefault";

export interface MachineNote {
  code: MachineNoteCode;
  message: string;
}

export interface QemuCommand {
  binary: string;
  argv: string[];
  /** "q35" or "pc": what MACHINE_TYPE became. */
  machine: "q35" | "pc";
  /** Things the status should say (a mapped machine type, a feature that could not be honoured). */
  notes: MachineNote[];
}

export class MachineSpecError extends Error {
  override name = "MachineSpecError";
  readonly field: string;
  readonly hint: string | undefined;

  constructor(field: string, message: string, hint?: string) {
    super(`${field}: ${message}${hint ? ` (${hint})` : ""}`);
    this.field = field;
    this.hint = hint;
  }
}

/** QEMU's escaping of a value inside a "key=value,key=value" option: commas are doubled. */
export function qemuValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** The Hyper-V enlightenments of KubeVirt's Windows preferences (common-instancetypes windows.*). */
export const HYPERV_ENLIGHTENMENTS = [
  "hv-relaxed",
  "hv-vapic",
  "hv-spinlocks=0x1fff",
  "hv-vpindex",
  "hv-runtime",
  "hv-synic",
  "hv-stimer",
  "hv-stimer-direct",
  "hv-reset",
  "hv-frequencies",
  "hv-reenlightenment",
  "hv-tlbflush",
  "hv-ipi",
  "hv-time",
] as const;

/** Maps a catalog MACHINE_TYPE to the local machine: q35 family to q35, i440fx family to pc. */
export function mapMachineType(machineType: string | undefined): {
  machine: "q35" | "pc";
  note?: MachineNote;
} {
  const text = (machineType ?? "").trim();
  if (text === "" || text === "q35") return { machine: "q35" };
  if (text === "pc" || text === "i440fx") return { machine: "pc" };
  const note = (machine: "q35" | "pc"): MachineNote => ({
    code: "MachineTypeMapped",
    message: `MACHINE_TYPE ${text} runs as the local "${machine}" machine (the latest version QEMU has)`,
  });
  if (/^pc-q35-/.test(text)) return { machine: "q35", note: note("q35") };
  if (/^pc-i440fx-/.test(text)) return { machine: "pc", note: note("pc") };
  throw new MachineSpecError(
    "MACHINE_TYPE",
    `"${text}" is not a machine type osimg can run`,
    "use q35, pc-q35-*, pc or pc-i440fx-*",
  );
}

function checkSpec(spec: MachineSpec): void {
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1)
    throw new MachineSpecError("cpu", "must be a whole number ≥ 1");
  if (spec.memoryBytes < 16 * 2 ** 20) throw new MachineSpecError("memory", "must be at least 16 MiB");
  if (spec.disks.length === 0 && !spec.bootOrder?.includes("network"))
    throw new MachineSpecError("disks", "a machine needs a disk or cdrom to boot from");
  const port = spec.network.kind === "user" ? spec.network.sshPort : undefined;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw new MachineSpecError("network.sshPort", `${port} is not a TCP port`);
}

/** Builds the QEMU command line for `spec`. Throws MachineSpecError for what cannot be run. */
export function buildQemuCommand(spec: MachineSpec, binary = "qemu-system-x86_64"): QemuCommand {
  checkSpec(spec);
  const notes: MachineNote[] = [];
  const features = new Set(spec.features ?? []);
  const { machine, note } = mapMachineType(spec.machineType);
  if (note) notes.push(note);
  const secureBoot = spec.firmware.type === "efi" && spec.firmware.secureBoot === true;
  if (secureBoot && machine !== "q35")
    throw new MachineSpecError(
      "FIRMWARE_TYPE",
      "secure boot needs a q35 machine (SMM)",
      "set MACHINE_TYPE to q35",
    );
  const smm = features.has("smm") || secureBoot;

  const argv: string[] = [
    "-name",
    `guest=${qemuValue(spec.name)},debug-threads=on`,
    "-no-user-config",
    "-nodefaults",
    "-msg",
    "timestamp=on",
    "-machine",
    `${machine},smm=${smm ? "on" : "off"},acpi=on`,
  ];
  // ACPI and the APIC are always on: FEATURES lists them for KubeVirt, where they are also the default.
  for (const f of ["acpi", "apic"] as const)
    if (!features.has(f) && spec.features !== undefined && spec.features.length > 0)
      notes.push({ code: "FeatureDefault", message: `${f} is on although FEATURES does not list it` });

  const tcgCache = spec.tcgTranslationCacheMiB;
  argv.push("-accel", spec.accel === "tcg" && tcgCache ? `tcg,tb-size=${tcgCache}` : spec.accel);
  let cpu = spec.accel === "kvm" ? "host" : "max";
  if (features.has("hyperv")) {
    if (spec.accel === "kvm") cpu = [cpu, ...HYPERV_ENLIGHTENMENTS].join(",");
    else
      notes.push({
        code: "HypervUnderTcg",
        message: "FEATURES hyperv: Hyper-V enlightenments need KVM; the guest runs without them under TCG",
      });
  }
  argv.push("-cpu", cpu, "-smp", String(spec.cpus), "-m", `${Math.ceil(spec.memoryBytes / 2 ** 20)}M`);

  if (spec.firmware.type === "efi") {
    if (secureBoot) argv.push("-global", "driver=cfi.pflash01,property=secure,value=on");
    argv.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${qemuValue(spec.firmware.code)}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${qemuValue(spec.firmware.vars)}`,
    );
  }

  // Boot order: devices of the first listed kind get the lowest bootindex values, in their own order.
  const order = spec.bootOrder && spec.bootOrder.length > 0 ? spec.bootOrder : (["disk", "cdrom"] as const);
  let nextIndex = 1;
  const bootIndex = new Map<string, number>();
  for (const kind of order) {
    if (kind === "network") bootIndex.set("net0", nextIndex++);
    else
      spec.disks.forEach((d, i) => {
        if (d.kind === kind) bootIndex.set(`drive${i}`, nextIndex++);
      });
  }
  const bootSuffix = (id: string) => (bootIndex.has(id) ? `,bootindex=${bootIndex.get(id)}` : "");

  spec.disks.forEach((d, i) => {
    const id = `drive${i}`;
    if (d.kind === "disk") {
      const ro = d.readOnly ? ",readonly=on" : "";
      argv.push(
        "-drive",
        `if=none,id=${id},file=${qemuValue(d.path)},format=${d.format},cache=writeback,discard=unmap${ro}`,
        "-device",
        `virtio-blk-pci,drive=${id},id=disk${i}${bootSuffix(id)}`,
      );
    } else {
      argv.push(
        "-drive",
        `if=none,id=${id},file=${qemuValue(d.path)},media=cdrom,readonly=on`,
        "-device",
        `ide-cd,drive=${id},id=cdrom${i}${bootSuffix(id)}`,
      );
    }
  });
  if (spec.seed)
    argv.push(
      "-drive",
      `if=none,id=seed,file=${qemuValue(spec.seed)},format=raw,readonly=on`,
      "-device",
      "virtio-blk-pci,drive=seed,id=seed-disk",
    );

  if (spec.network.kind === "user") {
    const fwd = spec.network.sshPort ? `,hostfwd=tcp:127.0.0.1:${spec.network.sshPort}-:22` : "";
    const mac = spec.network.mac ? `,mac=${spec.network.mac}` : "";
    // No option ROM unless the NIC boots: iPXE only slows the firmware down otherwise.
    const rom = bootIndex.has("net0") ? "" : ",romfile=";
    argv.push(
      "-netdev",
      `user,id=net0${fwd}`,
      "-device",
      `virtio-net-pci,netdev=net0,id=net0${mac}${rom}${bootSuffix("net0")}`,
    );
  }

  const log = spec.serialLog ? `,logfile=${qemuValue(spec.serialLog)},logappend=on` : "";
  argv.push(
    "-chardev",
    `socket,id=serial0,path=${qemuValue(spec.sockets.serial)},server=on,wait=off${log}`,
    "-serial",
    "chardev:serial0",
    "-chardev",
    `socket,id=qmp,path=${qemuValue(spec.sockets.qmp)},server=on,wait=off`,
    "-mon",
    "chardev=qmp,mode=control",
  );
  if (spec.sockets.agent)
    argv.push(
      "-device",
      "virtio-serial-pci,id=virtio-serial0",
      "-chardev",
      `socket,id=qga0,path=${qemuValue(spec.sockets.agent)},server=on,wait=off`,
      "-device",
      "virtserialport,bus=virtio-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    );

  if (features.has("tpm")) {
    if (spec.sockets.tpm)
      argv.push(
        "-chardev",
        `socket,id=chrtpm,path=${qemuValue(spec.sockets.tpm)}`,
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        `${machine === "q35" ? "tpm-crb" : "tpm-tis"},tpmdev=tpm0`,
      );
    else
      notes.push({
        code: "TpmUnavailable",
        message: "FEATURES tpm: no swtpm is available (install the swtpm package); the VM runs without a TPM",
      });
  }

  if (spec.firmwareLog && spec.firmware.type === "bios")
    argv.push(
      "-chardev",
      `file,id=firmware-log,path=${qemuValue(spec.firmwareLog)}`,
      "-device",
      "isa-debugcon,iobase=0x402,chardev=firmware-log",
    );
  argv.push("-device", "virtio-rng-pci");
  if (spec.sockets.vnc)
    argv.push(
      "-device",
      "VGA",
      "-device",
      "qemu-xhci,id=usb",
      "-device",
      "usb-tablet,bus=usb.0",
      "-vnc",
      `unix:${qemuValue(spec.sockets.vnc)}`,
    );
  argv.push("-display", "none", "-pidfile", spec.pidfile);
  if (spec.daemonize) argv.push("-daemonize");
  return { binary, argv, machine, notes };
}
