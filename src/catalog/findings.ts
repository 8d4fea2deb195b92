// A finding: one thing wrong (or worth knowing) about a catalog, with where it is and how to fix it.
import { z } from "zod";
import type { Locator } from "./positions.ts";

export const Severity = z.enum(["error", "warning", "info"]);
export type Severity = z.infer<typeof Severity>;

export const Finding = z.object({
  severity: Severity,
  /** A stable identifier of the rule, such as "quantity.unit". */
  code: z.string(),
  /** JSON path inside the catalog, such as images[3].MIN_MEMORY; "" for the whole document. */
  path: z.string(),
  line: z.number().int().positive(),
  column: z.number().int().positive(),
  message: z.string(),
  hint: z.string().optional(),
});
export type Finding = z.infer<typeof Finding>;

export interface FindingInput {
  severity: Severity;
  code: string;
  path: string;
  message: string;
  hint?: string | undefined;
}

/** Collects findings of one document, placing each at an offset of the text the locator belongs to. */
export class FindingSink {
  readonly findings: Finding[] = [];

  add(input: FindingInput, offset: number, locator: Locator): void {
    const { line, column } = locator(offset);
    const finding: Finding = {
      severity: input.severity,
      code: input.code,
      path: input.path,
      line,
      column,
      message: input.message,
    };
    if (input.hint !== undefined) finding.hint = input.hint;
    this.findings.push(finding);
  }
}

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const counts = { error: 0, warning: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  return counts;
}

export function byPosition(a: Finding, b: Finding): number {
  return a.line - b.line || a.column - b.column;
}
