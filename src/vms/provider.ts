// What every VM provider (local QEMU, KubeVirt) offers, so that the API, the CLI and the UI never care
// which one runs a VM.
import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { Vm, VmAction, VmEvent, VmSpec } from "./model.ts";

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

/**
 * Who a provider acts as for one call. A provider that passes the caller's identity through (KubeVirt
 * with identity "caller") sends the caller's own Kubernetes bearer token; the others ignore it.
 */
export interface CallIdentity {
  bearerToken?: string;
}

export interface VmProvider extends EventEmitter<VmProviderEvents> {
  readonly name: string;
  /** Records the VM and starts provisioning it; progress continues in the background (see status). */
  create(spec: VmSpec, identity?: CallIdentity): Promise<Vm>;
  get(namespace: string, name: string, identity?: CallIdentity): Promise<Vm | undefined>;
  list(namespace?: string, identity?: CallIdentity): Promise<Vm[]>;
  act(namespace: string, name: string, action: VmAction, identity?: CallIdentity): Promise<Vm>;
  /**
   * What happened to the VM (phase and condition changes, actions, failures; on KubeVirt the Kubernetes
   * Events of the VM, its instance and its disks), oldest first. Throws the not_found VmError for an
   * unknown VM.
   */
  events(namespace: string, name: string, identity?: CallIdentity): Promise<VmEvent[]>;
  /** Removes the VM and everything osimg created for it. */
  delete(namespace: string, name: string, identity?: CallIdentity): Promise<void>;
  render(spec: VmSpec): Promise<RenderedVm>;
  /** A byte stream to the VM's serial console or its VNC server. */
  openConsole(namespace: string, name: string, kind: ConsoleKind, identity?: CallIdentity): Promise<Duplex>;
  /**
   * For providers whose "changed" events need a subscription per namespace and caller (KubeVirt with
   * the caller's identity watches with that caller's token): starts them; the returned function stops them.
   */
  subscribe?(namespace: string, identity?: CallIdentity): () => void;
  close(): Promise<void>;
}

export type VmErrorKind = "not_found" | "exists" | "conflict" | "unavailable" | "invalid" | "forbidden";

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
