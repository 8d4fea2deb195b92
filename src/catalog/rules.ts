// Rules across the fields of one entry and across entries. Pure: they see parsed specs and report
// issues against a field; the document walk places them.
import type { FieldIssue, FieldName } from "./fields.ts";
import type { EntrySpec } from "./model.ts";
import { preferenceRequirements } from "./preferences.ts";

export interface FieldScopedIssue extends FieldIssue {
  /** The field the issue is reported at; undefined for the entry as a whole. */
  field?: FieldName;
}

export function entryIssues(spec: EntrySpec, present: ReadonlySet<string>): FieldScopedIssue[] {
  const issues: FieldScopedIssue[] = [...preferenceIssues(spec)];
  const needsEfi = spec.features.filter((f) => f === "tpm" || f === "smm");
  if (needsEfi.length > 0 && spec.firmware !== "efi") {
    issues.push({
      field: "FEATURES",
      severity: "warning",
      code: "features.needs_efi",
      message: `FEATURES ${needsEfi.join(" and ")} without FIRMWARE_TYPE "efi"`,
      hint: 'TPM and SMM are used with UEFI firmware; Windows 11 needs FIRMWARE_TYPE "efi" with FEATURES smm and tpm',
    });
  }
  if (present.has("OS_CONTAINERDISK_TAG") && !present.has("OS_CONTAINERDISK_REPO")) {
    issues.push({
      field: "OS_CONTAINERDISK_TAG",
      severity: "warning",
      code: "containerdisk.tag_without_repo",
      message: "OS_CONTAINERDISK_TAG is set without OS_CONTAINERDISK_REPO",
      hint: "add OS_CONTAINERDISK_REPO, or remove the tag",
    });
  }
  if (
    spec.bootOrder.includes("cdrom") &&
    spec.bootOrder[0] === "cdrom" &&
    spec.additionalDisks.length === 0 &&
    !looksLikeIso(spec.imageUrl)
  ) {
    issues.push({
      field: "BOOT_ORDER",
      severity: "info",
      code: "boot_order.cdrom_first",
      message: "BOOT_ORDER starts with cdrom, but the entry attaches no installer ISO",
      hint: 'put "disk" first for a ready-made disk image',
    });
  }
  return issues;
}

/** Minimums below what the KubeVirt preference named by OS_FAMILY_ID requires. */
function preferenceIssues(spec: EntrySpec): FieldScopedIssue[] {
  const required = spec.familyId ? preferenceRequirements(spec.familyId) : undefined;
  if (!required) return [];
  const issues: FieldScopedIssue[] = [];
  const consequence = `KubeVirt refuses VMs that use the preference "${spec.familyId}" with less`;
  if (
    required.memoryBytes !== undefined &&
    spec.minMemoryBytes !== undefined &&
    spec.minMemoryBytes < required.memoryBytes
  ) {
    issues.push({
      field: "MIN_MEMORY",
      severity: "warning",
      code: "preference.memory",
      message: `MIN_MEMORY is below the ${required.memory} that KubeVirt's "${spec.familyId}" preference requires`,
      hint: `${consequence}; raise MIN_MEMORY to "${required.memory}"`,
    });
  }
  if (required.cpu !== undefined && spec.minVcpu !== undefined && spec.minVcpu < required.cpu) {
    issues.push({
      field: "MIN_VCPU",
      severity: "warning",
      code: "preference.cpu",
      message: `MIN_VCPU is below the ${required.cpu} vCPUs that KubeVirt's "${spec.familyId}" preference requires`,
      hint: `${consequence}; raise MIN_VCPU to "${required.cpu}"`,
    });
  }
  return issues;
}

function looksLikeIso(url: string | undefined): boolean {
  return url !== undefined && /\.iso($|\?)/i.test(url);
}

/** OS_NAME must be unique: it is how users and the Kube-DC UI pick an entry. */
export function duplicateNames(names: readonly (string | undefined)[]): Map<number, number> {
  const firstByName = new Map<string, number>();
  const duplicates = new Map<number, number>();
  names.forEach((name, index) => {
    if (name === undefined) return;
    const first = firstByName.get(name);
    if (first === undefined) firstByName.set(name, index);
    else duplicates.set(index, first);
  });
  return duplicates;
}
