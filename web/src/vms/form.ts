// The Create VM dialog's rules, pure: what choosing an operating system fills in, the request the form
// stands for, and its problems per field. The sizes, name and cloud-init are checked by the server's own
// rules (src/vms/request.ts) on the catalog's entries, so the dialog refuses exactly what the server would.
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import type { VmCreateRequest } from "../../../src/vms/model.ts";
import { type FieldError, findEntry, validateVmRequest } from "../../../src/vms/request.ts";
import type { FieldDetail } from "../api/http.ts";

export interface VmForm {
  name: string;
  /** The OS_NAME of the chosen catalog entry. */
  image: string;
  cpu: string;
  memory: string;
  storage: string;
  /** One public key per line, pasted or read from .pub files. */
  sshKeys: string;
  password: string;
  cloudInit: string;
}

export const FIELDS = [
  "name",
  "image",
  "cpu",
  "memory",
  "storage",
  "sshKeys",
  "password",
  "cloudInit",
] as const;
export type FormField = (typeof FIELDS)[number];

export interface FieldProblem {
  message: string;
  hint?: string;
  minimum?: string;
  /** For the cloud-init editor: where in its text. */
  line?: number;
  column?: number;
}

/** Problems by field; "form" holds what belongs to no field. */
export type FormProblems = Partial<Record<FormField | "form", FieldProblem[]>>;

export const EMPTY_FORM: VmForm = {
  name: "",
  image: "",
  cpu: "",
  memory: "",
  storage: "",
  sshKeys: "",
  password: "",
  cloudInit: "",
};

/** Used when the entry sets no minimum: the server's own defaults (storage: the image's size). */
const DEFAULTS = { cpu: "1", memory: "1Gi", storage: "" };

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** Choosing an operating system: vCPU, memory and storage become its minimums, cloud-init its CLOUD_INIT. */
export function chooseImage(form: VmForm, image: Record<string, unknown>): VmForm {
  return {
    ...form,
    image: text(image.OS_NAME),
    cpu: text(image.MIN_VCPU) || DEFAULTS.cpu,
    memory: text(image.MIN_MEMORY) || DEFAULTS.memory,
    storage: text(image.MIN_STORAGE) || DEFAULTS.storage,
    cloudInit: text(image.CLOUD_INIT),
  };
}

interface KeyLine {
  /** 1-based line of the SSH keys field. */
  line: number;
  key: string;
}

/** The keys of the SSH keys field: its non-empty lines that are not comments. */
export function keyLines(field: string): KeyLine[] {
  return field
    .split("\n")
    .map((l, i) => ({ line: i + 1, key: l.trim() }))
    .filter((k) => k.key !== "" && !k.key.startsWith("#"));
}

/** The request the form stands for, and what keeps it from being one (a vCPU count that is no number). */
export function requestOf(form: VmForm): { request: VmCreateRequest; problems: FormProblems } {
  const problems: FormProblems = {};
  const cpuText = form.cpu.trim();
  let cpu: number | undefined;
  if (cpuText === "") problems.cpu = [{ message: "enter a number of vCPUs" }];
  else if (!/^\d+$/.test(cpuText)) problems.cpu = [{ message: `"${cpuText}" is not a whole number` }];
  else cpu = Number(cpuText);
  const request: VmCreateRequest = {
    name: form.name,
    image: form.image,
    ...(cpu !== undefined ? { cpu } : {}),
    ...(form.memory.trim() ? { memory: form.memory.trim() } : {}),
    ...(form.storage.trim() ? { storage: form.storage.trim() } : {}),
    sshKeys: keyLines(form.sshKeys).map((k) => k.key),
    ...(form.password ? { password: form.password } : {}),
    // The editor's text is the VM's cloud-init, in place of the entry's (which prefilled it).
    cloudInit: form.cloudInit,
  };
  return { request, problems };
}

/** A problem the server (or its rules) reported, put on the field the dialog shows it at. */
export function fieldOf(field: string): FormField | "form" {
  const base = field.replace(/\[\d+\]$/, "");
  if (base === "userData") return "cloudInit";
  return (FIELDS as readonly string[]).includes(base) ? (base as FormField) : "form";
}

function add(problems: FormProblems, field: FormField | "form", problem: FieldProblem): void {
  const list = problems[field] ?? [];
  if (!list.some((p) => p.message === problem.message)) list.push(problem);
  problems[field] = list;
}

/** Places the server's field errors (a 422's details, or the same rules run here) on the form's fields. */
export function problemsOf(
  errors: readonly (FieldError | FieldDetail)[],
  form: VmForm,
  into: FormProblems = {},
): FormProblems {
  const keys = keyLines(form.sshKeys);
  for (const error of errors) {
    const field = fieldOf(error.field);
    const index = /^sshKeys\[(\d+)\]$/.exec(error.field)?.[1];
    const keyLine = index !== undefined ? keys[Number(index)]?.line : undefined;
    const message =
      field === "name" && form.name === ""
        ? "enter a name"
        : keyLine !== undefined
          ? `line ${keyLine}: ${error.message}`
          : error.message;
    add(into, field, {
      message,
      ...(error.hint ? { hint: error.hint } : {}),
      ...(error.minimum ? { minimum: error.minimum } : {}),
      ...(error.line !== undefined ? { line: error.line, column: error.column ?? 1 } : {}),
    });
  }
  return into;
}

const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/**
 * Every problem of the form, by the server's rules on the served catalog's entries (namespace: the
 * project the VM goes to). An empty result means the server would accept it.
 */
export function checkForm(form: VmForm, entries: readonly CatalogEntry[], namespace: string): FormProblems {
  const { request, problems } = requestOf(form);
  if (form.image === "") add(problems, "image", { message: "choose an operating system" });
  if (PRIVATE_KEY.test(form.sshKeys))
    add(problems, "sshKeys", {
      message: "this is a private key: never share it",
      hint: "paste the public key instead (the .pub file, one line starting with ssh-ed25519, ssh-rsa, ecdsa-…)",
    });
  const result = validateVmRequest(
    // A vCPU count that is no number is reported above; check the rest with the minimum in its place.
    request.cpu === undefined && form.image !== "" ? withMinimumCpu(request, entries) : request,
    { namespace, entries },
  );
  if (!result.ok) {
    const errors = result.errors.filter(
      (e) =>
        !(form.image === "" && e.field === "image") &&
        !(problems.sshKeys && e.field.startsWith("sshKeys")) &&
        !(problems.cpu && e.field === "cpu"),
    );
    problemsOf(errors, form, problems);
  }
  return problems;
}

function withMinimumCpu(request: VmCreateRequest, entries: readonly CatalogEntry[]): VmCreateRequest {
  const entry = findEntry(entries, request.image);
  return { ...request, cpu: entry?.spec.minVcpu ?? 1 };
}

export function hasProblems(problems: FormProblems): boolean {
  return Object.values(problems).some((list) => list !== undefined && list.length > 0);
}

/** What the entry asks for at least, as written ("2Gi"), for the fields' helper texts. */
export function minimumsOf(entry: CatalogEntry | undefined): {
  cpu?: string;
  memory?: string;
  storage?: string;
} {
  if (!entry) return {};
  const v = entry.values;
  return {
    ...(text(v.MIN_VCPU) ? { cpu: text(v.MIN_VCPU) } : {}),
    ...(text(v.MIN_MEMORY) ? { memory: text(v.MIN_MEMORY) } : {}),
    ...(text(v.MIN_STORAGE) ? { storage: text(v.MIN_STORAGE) } : {}),
  };
}
