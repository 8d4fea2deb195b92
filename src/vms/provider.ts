// What every VM provider (local QEMU, KubeVirt) offers, so that the API, the CLI and the UI never care
// which one runs a VM.
import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { Vm, VmAction, VmSpec } from "./model.ts";

/** What creating a VM would make, shown before anything is created (the Create VM dialog's Review step). */
export interface RenderedVm {
  /** "yaml" for Kubernetes manifests, "argv" for a QEMU command line (one argument a line). */
  format: "yaml" | "argv";
  text: string;
}

export type ConsoleKind = "serial" | "vnc";

export interface VmProviderEvents {
  /** A VM's status or spec changed (created, phase moved, deleted: then `deleted` is true). */
  changed: [{ namespace: string; name: string; deleted: boolean }];
}

export interface VmProvider extends EventEmitter<VmProviderEvents> {
  readonly name: string;
  /** Records the VM and starts provisioning it; progress continues in the background (see status). */
  create(spec: VmSpec): Promise<Vm>;
  get(namespace: string, name: string): Promise<Vm | undefined>;
  list(namespace?: string): Promise<Vm[]>;
  act(namespace: string, name: string, action: VmAction): Promise<Vm>;
  /** Removes the VM and everything osimg created for it. */
  delete(namespace: string, name: string): Promise<void>;
  render(spec: VmSpec): Promise<RenderedVm>;
  /** A byte stream to the VM's serial console or its VNC server. */
  openConsole(namespace: string, name: string, kind: ConsoleKind): Promise<Duplex>;
  close(): Promise<void>;
}

export type VmErrorKind = "not_found" | "exists" | "conflict" | "unavailable" | "invalid";

/** A provider's refusal, with the HTTP meaning the API gives it. */
export class VmError extends Error {
  override name = "VmError";
  readonly kind: VmErrorKind;
  readonly hint: string | undefined;

  constructor(kind: VmErrorKind, message: string, hint?: string) {
    super(message);
    this.kind = kind;
    this.hint = hint;
  }
}

export const notFound = (namespace: string, name: string) =>
  new VmError("not_found", `no VM "${name}" in namespace "${namespace}"`);
