// The four checks of an image as the table shows them — reachable, checksum, safe format, boot test —
// read from the catalog response's `verification` field (per entry id, written by the server's image
// verifier: src/images/verifier.ts). An entry the verifier has not reported on is "not checked"; the boot
// test stays "not checked" until a boot-test result is reported.
import type { z } from "zod";
import type { EntryVerification as EntryVerificationSchema } from "../../../src/images/schemas.ts";

export type EntryVerification = z.infer<typeof EntryVerificationSchema>;
type EntryCheck = NonNullable<EntryVerification["check"]>;

export const CHECK_LABELS = {
  reachable: "Reachable",
  checksum: "Checksum verified",
  safeFormat: "Safe format",
  bootTest: "Boot test passed",
} as const;

export type CheckId = keyof typeof CHECK_LABELS;
export type CheckStatus = "pass" | "fail" | "pending" | "unknown" | "not-checked";

export interface CheckView {
  id: CheckId;
  label: string;
  status: CheckStatus;
  /** Why, in the verifier's words. */
  detail?: string;
}

export interface EntryChecks {
  checks: CheckView[];
  /** undefined when the verifier has not reported on the entry. */
  state?: EntryVerification["state"];
  checkedAt?: string;
  /** Everything the last check found wrong or worth knowing (a too small MIN_STORAGE, …). */
  problems: { severity: "error" | "warning" | "info"; message: string }[];
}

function view(id: CheckId, status: CheckStatus, detail?: string): CheckView {
  return detail === undefined
    ? { id, label: CHECK_LABELS[id], status }
    : { id, label: CHECK_LABELS[id], status, detail };
}

function fromCheck(check: EntryCheck): CheckView[] {
  const firstProblem = check.problems.find((p) => p.severity === "error")?.message;
  const checksum = check.checksum;
  const safety = check.safety;
  return [
    check.reachable
      ? view("reachable", "pass", check.finalUrl ?? check.url)
      : view("reachable", "fail", firstProblem),
    checksum.status === "verified"
      ? view("checksum", "pass", [checksum.algorithm, checksum.source].filter(Boolean).join(" from "))
      : checksum.status === "mismatch"
        ? view("checksum", "fail", checksum.reason ?? `expected ${checksum.expected}, got ${checksum.actual}`)
        : view("checksum", "unknown", checksum.reason ?? "no checksum to compare with"),
    safety === undefined
      ? view("safeFormat", check.reachable ? "unknown" : "not-checked", "the image was not inspected")
      : safety.safe
        ? view("safeFormat", "pass", check.format)
        : view(
            "safeFormat",
            "fail",
            safety.reasons
              .filter((r) => r.severity === "error")
              .map((r) => r.message)
              .join("; "),
          ),
    view("bootTest", "not-checked"),
  ];
}

const NOT_CHECKED: CheckView[] = (Object.keys(CHECK_LABELS) as CheckId[]).map((id) =>
  view(id, "not-checked"),
);

export function entryChecks(
  verification: Record<string, EntryVerification> | undefined,
  entryId: string,
): EntryChecks {
  const v = verification?.[entryId];
  if (!v) return { checks: NOT_CHECKED, problems: [] };
  // A re-check keeps showing the previous result; a first check shows as under way.
  if (!v.check)
    return {
      state: v.state,
      problems: [],
      checks: NOT_CHECKED.map((c) => (c.id === "bootTest" ? c : { ...c, status: "pending" })),
    };
  return {
    state: v.state,
    checkedAt: v.check.checkedAt,
    problems: v.check.problems.map((p) => ({ severity: p.severity, message: p.message })),
    checks: fromCheck(v.check),
  };
}
