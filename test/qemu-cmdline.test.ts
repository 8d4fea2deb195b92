// The QEMU command-line builder (pure) and the accelerator probe's guest code.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROBE_GUEST_CODE, probeFirmware } from "../src/vms/providers/qemu/accel.ts";
import {
  buildQemuCommand,
  HYPERV_ENLIGHTENMENTS,
  type MachineSpec,
  MachineSpecError,
  mapMachineType,
  qemuValue,
} from "../src/vms/providers/qemu/cmdline.ts";
import { ovmfFiles } from "../src/vms/providers/qemu/firmware.ts";

const base: MachineSpec = {
  name: "web1",
  cpus: 2,
  memoryBytes: 2 * 2 ** 30,
  accel: "tcg",
  firmware: { type: "bios" },
  disks: [{ kind: "disk", path: "/vms/web1/root.qcow2", format: "qcow2" }],
  seed: "/vms/web1/seed.iso",
  network: { kind: "user", sshPort: 2222 },
  sockets: { qmp: "/vms/web1/qmp.sock", serial: "/vms/web1/serial.sock" },
  pidfile: "/vms/web1/qemu.pid",
};

/** The value after each occurrence of `flag`. */
const values = (argv: readonly string[], flag: string) =>
  argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));

describe("buildQemuCommand", () => {
  it("builds a q35 TCG machine with virtio disk, seed, SSH forward and sockets", () => {
    const { argv, machine, notes, binary } = buildQemuCommand(base);
    expect(binary).toBe("qemu-system-x86_64");
    expect(machine).toBe("q35");
    expect(notes).toEqual([]);
    expect(values(argv, "-machine")).toEqual(["q35,smm=off,acpi=on"]);
    expect(values(argv, "-accel")).toEqual(["tcg"]);
    expect(values(argv, "-cpu")).toEqual(["max"]);
    expect(values(argv, "-smp")).toEqual(["2"]);
    expect(values(argv, "-m")).toEqual(["2048M"]);
    expect(values(argv, "-drive")).toEqual([
      "if=none,id=drive0,file=/vms/web1/root.qcow2,format=qcow2,cache=writeback,discard=unmap",
      "if=none,id=seed,file=/vms/web1/seed.iso,format=raw,readonly=on",
    ]);
    expect(values(argv, "-device")).toContain("virtio-blk-pci,drive=drive0,id=disk0,bootindex=1");
    expect(values(argv, "-device")).toContain("virtio-blk-pci,drive=seed,id=seed-disk");
    expect(values(argv, "-netdev")).toEqual(["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"]);
    expect(values(argv, "-device")).toContain("virtio-net-pci,netdev=net0,id=net0,romfile=");
    expect(values(argv, "-chardev")).toEqual([
      "socket,id=serial0,path=/vms/web1/serial.sock,server=on,wait=off",
      "socket,id=qmp,path=/vms/web1/qmp.sock,server=on,wait=off",
    ]);
    expect(values(argv, "-mon")).toEqual(["chardev=qmp,mode=control"]);
    expect(values(argv, "-pidfile")).toEqual(["/vms/web1/qemu.pid"]);
    expect(argv).not.toContain("-daemonize");
    expect(argv).not.toContain("-vnc");
  });

  it("uses KVM with the host CPU and, for hyperv, KubeVirt's Windows enlightenments", () => {
    const { argv } = buildQemuCommand({ ...base, accel: "kvm", features: ["acpi", "apic", "hyperv"] });
    expect(values(argv, "-accel")).toEqual(["kvm"]);
    expect(values(argv, "-cpu")).toEqual([`host,${HYPERV_ENLIGHTENMENTS.join(",")}`]);
    expect(values(argv, "-cpu")[0]).toContain("hv-spinlocks=0x1fff");
  });

  it("says that hyperv cannot apply under TCG", () => {
    const { argv, notes } = buildQemuCommand({ ...base, features: ["acpi", "apic", "hyperv"] });
    expect(values(argv, "-cpu")).toEqual(["max"]);
    expect(notes.map((n) => n.code)).toEqual(["HypervUnderTcg"]);
  });

  it("maps MACHINE_TYPE and notes the mapping", () => {
    expect(mapMachineType(undefined)).toEqual({ machine: "q35" });
    expect(mapMachineType("q35")).toEqual({ machine: "q35" });
    expect(mapMachineType("pc-q35-rhel9.2.0").machine).toBe("q35");
    expect(mapMachineType("pc-q35-rhel9.2.0").note?.message).toMatch(
      /pc-q35-rhel9\.2\.0 runs as the local "q35"/,
    );
    expect(mapMachineType("pc-i440fx-2.11").machine).toBe("pc");
    expect(mapMachineType("pc").machine).toBe("pc");
    expect(() => mapMachineType("virt")).toThrow(MachineSpecError);
    expect(() => mapMachineType("virt")).toThrow(/^MACHINE_TYPE: "virt" is not a machine type/);
    const { argv, notes } = buildQemuCommand({ ...base, machineType: "pc-i440fx-rhel7.6.0" });
    expect(values(argv, "-machine")).toEqual(["pc,smm=off,acpi=on"]);
    expect(notes[0]?.code).toBe("MachineTypeMapped");
  });

  it("turns on SMM for FEATURES smm", () => {
    expect(values(buildQemuCommand({ ...base, features: ["smm"] }).argv, "-machine")).toEqual([
      "q35,smm=on,acpi=on",
    ]);
  });

  it("attaches OVMF code read-only and the VM's own vars; secure boot adds SMM and a secure flash", () => {
    const files = ovmfFiles(false);
    const efi = buildQemuCommand({
      ...base,
      firmware: { type: "efi", code: files.code, vars: "/vms/web1/vars.fd" },
    });
    expect(values(efi.argv, "-drive").slice(0, 2)).toEqual([
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "if=pflash,format=raw,unit=1,file=/vms/web1/vars.fd",
    ]);
    expect(efi.argv).not.toContain("-global");
    const sb = ovmfFiles(true);
    expect(sb).toEqual({
      code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
      varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    });
    const secure = buildQemuCommand({
      ...base,
      firmware: { type: "efi", code: sb.code, vars: "/v.fd", secureBoot: true },
    });
    expect(values(secure.argv, "-machine")).toEqual(["q35,smm=on,acpi=on"]);
    expect(values(secure.argv, "-global")).toEqual(["driver=cfi.pflash01,property=secure,value=on"]);
    expect(() =>
      buildQemuCommand({
        ...base,
        machineType: "pc",
        firmware: { type: "efi", code: sb.code, vars: "/v.fd", secureBoot: true },
      }),
    ).toThrow(/^FIRMWARE_TYPE: secure boot needs a q35 machine/);
  });

  it("maps BOOT_ORDER to bootindex over disks, cdroms and the NIC", () => {
    const spec: MachineSpec = {
      ...base,
      disks: [
        { kind: "disk", path: "/r.qcow2", format: "qcow2" },
        { kind: "cdrom", path: "/install.iso" },
        { kind: "disk", path: "/data.raw", format: "raw" },
        { kind: "cdrom", path: "/drivers.iso" },
      ],
      bootOrder: ["cdrom", "network", "disk"],
    };
    const devices = values(buildQemuCommand(spec).argv, "-device");
    expect(devices).toContain("ide-cd,drive=drive1,id=cdrom1,bootindex=1");
    expect(devices).toContain("ide-cd,drive=drive3,id=cdrom3,bootindex=2");
    expect(devices).toContain("virtio-net-pci,netdev=net0,id=net0,bootindex=3");
    expect(devices).toContain("virtio-blk-pci,drive=drive0,id=disk0,bootindex=4");
    expect(devices).toContain("virtio-blk-pci,drive=drive2,id=disk2,bootindex=5");
    expect(values(buildQemuCommand(spec).argv, "-drive")).toContain(
      "if=none,id=drive1,file=/install.iso,media=cdrom,readonly=on",
    );
  });

  it("adds the agent channel, VNC with a tablet, the serial log and a TPM when there is a swtpm", () => {
    const { argv, notes } = buildQemuCommand({
      ...base,
      features: ["tpm"],
      sockets: { ...base.sockets, agent: "/a.sock", vnc: "/v.sock", tpm: "/t.sock" },
      serialLog: "/serial.log",
      tcgTranslationCacheMiB: 128,
    });
    expect(notes).toEqual([
      { code: "FeatureDefault", message: "acpi is on although FEATURES does not list it" },
      { code: "FeatureDefault", message: "apic is on although FEATURES does not list it" },
    ]);
    expect(values(argv, "-accel")).toEqual(["tcg,tb-size=128"]);
    expect(values(argv, "-chardev")).toContain("socket,id=qga0,path=/a.sock,server=on,wait=off");
    expect(values(argv, "-device")).toContain(
      "virtserialport,bus=virtio-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    );
    expect(values(argv, "-chardev")).toContain(
      "socket,id=serial0,path=/vms/web1/serial.sock,server=on,wait=off,logfile=/serial.log,logappend=on",
    );
    expect(values(argv, "-vnc")).toEqual(["unix:/v.sock"]);
    expect(values(argv, "-device")).toContain("usb-tablet,bus=usb.0");
    expect(values(argv, "-tpmdev")).toEqual(["emulator,id=tpm0,chardev=chrtpm"]);
    expect(values(argv, "-device")).toContain("tpm-crb,tpmdev=tpm0");
  });

  it("keeps SeaBIOS's debug console in a file when asked, and only under BIOS", () => {
    const spec = { ...base, firmwareLog: "/vms/web1/firmware,log" };
    const { argv } = buildQemuCommand(spec);
    expect(values(argv, "-chardev")).toContain("file,id=firmware-log,path=/vms/web1/firmware,,log");
    expect(values(argv, "-device")).toContain("isa-debugcon,iobase=0x402,chardev=firmware-log");
    const efi = buildQemuCommand({
      ...spec,
      firmware: { type: "efi", code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/vms/web1/vars.fd" },
    });
    expect(efi.argv.join(" ")).not.toContain("isa-debugcon");
  });

  it("reports a missing swtpm instead of failing", () => {
    const { argv, notes } = buildQemuCommand({ ...base, features: ["acpi", "apic", "tpm"] });
    expect(argv).not.toContain("-tpmdev");
    expect(notes).toEqual([expect.objectContaining({ code: "TpmUnavailable" })]);
  });

  it("escapes commas in paths, keeps every argument one element, and rejects bad specs", () => {
    expect(qemuValue("/a,b/c")).toBe("/a,,b/c");
    const { argv } = buildQemuCommand({
      ...base,
      disks: [{ kind: "disk", path: "/my vms/a,b.qcow2", format: "qcow2" }],
    });
    expect(values(argv, "-drive")[0]).toBe(
      "if=none,id=drive0,file=/my vms/a,,b.qcow2,format=qcow2,cache=writeback,discard=unmap",
    );
    expect(() => buildQemuCommand({ ...base, cpus: 0 })).toThrow(/^cpu:/);
    expect(() => buildQemuCommand({ ...base, memoryBytes: 1000 })).toThrow(/^memory:/);
    expect(() => buildQemuCommand({ ...base, disks: [] })).toThrow(/^disks:/);
    expect(() => buildQemuCommand({ ...base, network: { kind: "user", sshPort: 70000 } })).toThrow(
      /^network\.sshPort:/,
    );
    expect(buildQemuCommand({ ...base, daemonize: true }).argv).toContain("-daemonize");
  });
});

describe("accelerator probe guest", () => {
  it("is probe-guest.S as assembled, placed under the reset vector", () => {
    const dir = mkdtempSync(join(tmpdir(), "osimg-probe-"));
    try {
      const source = new URL("../src/vms/providers/qemu/probe-guest.S", import.meta.url).pathname;
      execFileSync("as", ["--32", "-o", join(dir, "p.o"), source]);
      execFileSync("ld", [
        "-m",
        "elf_i386",
        "-e",
        "start",
        "-Ttext=0",
        "--oformat",
        "binary",
        "-o",
        join(dir, "p.bin"),
        join(dir, "p.o"),
      ]);
      expect(readFileSync(join(dir, "p.bin")).equals(PROBE_GUEST_CODE)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const rom = probeFirmware();
    expect(rom.length).toBe(65536);
    expect([...rom.subarray(0xfff0, 0xfff5)]).toEqual([0xea, 0, 0, 0, 0xf0]);
  });
});
