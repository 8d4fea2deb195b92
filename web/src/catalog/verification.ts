// The four checks of an image (reachable, checksum, safe format, boot test) as the table shows them. The
// image-intake API reports them per entry id in the catalog response's `verification` field; this reads
// each check leniently (a boolean, a status word, or an object with ok/status and a message) so that
// the table shows what is known and "not checked" for the rest.

export const CHECKS = [
  { id: "reachable", label: "Reachable", keys: ["reachable", "reachability", "probe"] },
  { id: "checksum", label: "Checksum verified", keys: ["checksum", "checksumVerified", "sha256"] },
  { id: "safeFormat", label: "Safe format", keys: ["safeFormat", "format", "safety", "formatSafety"] },
  { id: "bootTest", label: "Boot test passed", keys: ["bootTest", "boot", "bootTested"] },
] as const;

export type CheckId = (typeof CHECKS)[number]["id"];
export type CheckStatus = "pass" | "fail" | "pending" | "unknown" | "not-checked";

export interface CheckView {
  id: CheckId;
  label: string;
  status: CheckStatus;
  /** Why, in the server's words, when it said. */
  detail?: string;
}

const WORDS: Record<string, CheckStatus> = {
  ok: "pass",
  pass: "pass",
  passed: "pass",
  verified: "pass",
  reachable: "pass",
  safe: "pass",
  success: "pass",
  succeeded: "pass",
  booted: "pass",
  fail: "fail",
  failed: "fail",
  failure: "fail",
  error: "fail",
  mismatch: "fail",
  unsafe: "fail",
  unreachable: "fail",
  refused: "fail",
  pending: "pending",
  running: "pending",
  checking: "pending",
  queued: "pending",
  "in-progress": "pending",
  unverified: "unknown",
  unknown: "unknown",
  skipped: "unknown",
  "not-checked": "not-checked",
  unchecked: "not-checked",
};

function fromWord(word: string): CheckStatus {
  return WORDS[word.toLowerCase().replace(/[\s_]+/g, "-")] ?? "unknown";
}

export function readCheck(raw: unknown): { status: CheckStatus; detail?: string } {
  if (raw === undefined || raw === null) return { status: "not-checked" };
  if (typeof raw === "boolean") return { status: raw ? "pass" : "fail" };
  if (typeof raw === "string") return { status: fromWord(raw) };
  if (typeof raw !== "object") return { status: "unknown" };
  const o = raw as Record<string, unknown>;
  const detail = [o.message, o.reason, o.detail, o.error].find((x): x is string => typeof x === "string");
  const word = [o.status, o.state, o.verdict, o.result].find((x): x is string => typeof x === "string");
  const status: CheckStatus =
    word !== undefined ? fromWord(word) : typeof o.ok === "boolean" ? (o.ok ? "pass" : "fail") : "unknown";
  return detail === undefined ? { status } : { status, detail };
}

/** The four checks of one entry; all "not-checked" when the server reported nothing for it. */
export function entryChecks(verification: Record<string, unknown> | undefined, entryId: string): CheckView[] {
  const raw = verification?.[entryId];
  const record = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  return CHECKS.map((check) => {
    const key = check.keys.find((k) => k in record);
    return { id: check.id, label: check.label, ...readCheck(key === undefined ? undefined : record[key]) };
  });
}

export function isChecked(checks: readonly CheckView[]): boolean {
  return checks.some((c) => c.status !== "not-checked");
}
