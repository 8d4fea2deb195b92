// How a VM's state reads in the UI, pure: its phase in words with progress (image import, booting), the
// age of a VM, and the SSH command to reach it.
import type { Vm } from "../../../src/vms/model.ts";

export type Tone = "success" | "info" | "warning" | "danger" | "neutral";

export interface PhaseView {
  /** The phase in words, e.g. "Importing image" for Provisioning with progress. */
  label: string;
  tone: Tone;
  /** 0-100 while the image is imported. */
  progress?: number;
  /** One line on what happens or went wrong (the latest relevant condition's message). */
  detail?: string;
  /** Still moving towards a stable state (a spinner is shown). */
  busy: boolean;
}

const TONES: Record<Vm["status"]["phase"], Tone> = {
  Provisioning: "info",
  Starting: "info",
  Running: "info",
  Ready: "success",
  Paused: "warning",
  Stopping: "info",
  Stopped: "neutral",
  Failed: "danger",
};

/** The newest condition that is not satisfied, for the phase's detail line. */
function pendingCondition(vm: Vm) {
  return [...vm.status.conditions]
    .filter((c) => c.status !== "True" && c.message)
    .sort((a, b) => b.lastTransitionTime.localeCompare(a.lastTransitionTime))[0];
}

export function phaseView(vm: Vm): PhaseView {
  const { phase, importProgress } = vm.status;
  const tone = TONES[phase];
  const detail = pendingCondition(vm)?.message;
  const base = { tone, ...(detail ? { detail } : {}) };
  switch (phase) {
    case "Provisioning":
      return importProgress !== undefined
        ? { ...base, label: "Importing image", progress: importProgress, busy: true }
        : { ...base, label: "Provisioning", busy: true };
    case "Starting":
      return { ...base, label: "Starting", busy: true };
    case "Running":
      // Up, but the guest has not said it is ready yet.
      return { ...base, label: "Booting", busy: true };
    case "Stopping":
      return { ...base, label: "Stopping", busy: true };
    default:
      return { ...base, label: phase, busy: false };
  }
}

/** "12s", "5m", "3h", "2d" — like kubectl's AGE column. */
export function age(since: string, now: number): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** The command that logs in to the VM, when the provider publishes SSH. */
export function sshCommand(vm: Vm): string | undefined {
  const ssh = vm.status.ssh;
  if (!ssh) return undefined;
  const port = ssh.port === 22 ? "" : `-p ${ssh.port} `;
  return `ssh ${port}${ssh.user}@${ssh.host}`;
}

/** "2 vCPU · 1Gi memory · 10G disk" */
export function sizeLine(vm: Vm): string {
  return `${vm.spec.cpu} vCPU · ${vm.spec.memory} memory · ${vm.spec.storage} disk`;
}

/**
 * A command line rendered one argument per line (the server's "argv" format), grouped for reading: each
 * option with its value on one line, under the program; comment lines (notes) stay as they are.
 */
export function argvLines(text: string): string[] {
  const lines: string[] = [];
  let program = true;
  for (const arg of text.split("\n")) {
    const last = lines.length - 1;
    if (arg.startsWith("#") || program) {
      lines.push(arg);
      if (!arg.startsWith("#")) program = false;
    } else if (arg.startsWith("-") || last < 0 || !lines[last]?.startsWith("  -")) lines.push(`  ${arg}`);
    else lines[last] = `${lines[last]} ${arg}`;
  }
  return lines;
}

/** What a provider runs, as shown: manifests as they are, a command line grouped by argvLines. */
export function renderedText(rendered: { format: "yaml" | "argv"; text: string }): string {
  return rendered.format === "argv" ? argvLines(rendered.text).join("\n") : rendered.text;
}
