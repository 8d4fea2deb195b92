// A test VM: a guest image booted as a throw-away VM (src/vms/providers/qemu/scratch-vm.ts: the same
// command-line builder, launcher and QMP the provider uses), in a temporary directory removed by destroy().
import type { NoCloudInput } from "../../../src/cloudinit/nocloud.ts";
import { ScratchVm, type ScratchVmOptions } from "../../../src/vms/providers/qemu/scratch-vm.ts";
import type { GuestImage } from "../guest-images.ts";

export type TestVm = ScratchVm;

export interface TestVmOptions extends Omit<ScratchVmOptions, "image" | "imageFormat" | "seed" | "name"> {
  image: GuestImage;
  /** The seed; instanceId and hostname default to the VM name, cloudUser to the image's. */
  seed: Partial<NoCloudInput> & Pick<NoCloudInput, "sshKeys">;
  name?: string;
}

export function startTestVm(options: TestVmOptions): Promise<TestVm> {
  const { image, seed, name: given, ...rest } = options;
  const name = given ?? `${image.name}-${options.firmware}`;
  return ScratchVm.start({
    ...rest,
    image: image.path,
    imageFormat: "qcow2",
    name,
    seed: { cloudUser: image.cloudUser, instanceId: `${name}-${Date.now()}`, hostname: name, ...seed },
  });
}
