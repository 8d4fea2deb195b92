// What the New build dialog offers: the five kinds with what each makes, and a small spec that builds as
// it is (Debian 12 with cloud-init, sshd and an operator account; no files needed), after
// examples/debian-cloud/spec.toml.
import type { BuildKind } from "../api/builds.ts";

export const KINDS: readonly { kind: BuildKind; description: string; pushable: boolean }[] = [
  { kind: "vm-img", description: "a VM disk: system.raw, system.qcow2, rootfs.tar", pushable: false },
  {
    kind: "pxe-img",
    description: "a network install: kernel, initramfs with the installer, root file system",
    pushable: false,
  },
  { kind: "upgrade-img", description: "an OCI image of the root file system (/os.tar)", pushable: true },
  {
    kind: "container-disk",
    description: "a KubeVirt containerDisk: an OCI image with /disk/system.qcow2",
    pushable: true,
  },
  { kind: "admin-container", description: "an OCI image running sshd, to administer hosts", pushable: true },
];

export const isPushable = (kind: BuildKind) => KINDS.some((k) => k.kind === kind && k.pushable);

export const EXAMPLE_SPEC = `# Debian 12 with cloud-init, sshd and the QEMU guest agent; an operator account. See docs/builder.md.
[from_repo]
distribution = "debian"
suite = "bookworm"
packages = [
  "linux-image-cloud-amd64",
  "systemd-sysv",
  "udev",
  "cloud-init",
  "cloud-guest-utils",
  "openssh-server",
  "qemu-guest-agent",
  "ifupdown",
  "isc-dhcp-client",
  "netbase",
  "sudo",
  "e2fsprogs",
]
version = "1.0"
# Root cannot log in with a password; cloud-init's user (CLOUD_USER) and "ops" can.
root_passwd = "!"

[[users]]
name = "ops"
# A crypt hash (plaintext is refused) of "osimg-example".
passwd = "$6$osimgexample$PmMKeqwSr71ILwf71.3gQyOi8b5eKv/aNdtXrpwl9GzGj6Thja6UOsGH0WJNQVYtz3h4gHCAW5CepWLyeeqQr."
groups = ["sudo"]

[catalog]
OS_NAME = "Debian 12 (built with osimg)"
CLOUD_USER = "debian"
MIN_MEMORY = "1G"
MIN_VCPU = 1
MIN_STORAGE = "4G"
FIRMWARE_TYPE = "bios"
`;
