// Positions in the editor's text: line:column (1-based, as findings give them) to offsets and back, and
// the worst finding of each line for the gutter.
import type { Finding, Severity } from "../../../src/catalog/findings.ts";

export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** The offset of line:column, clamped into the text (a finding may point just past a line's end). */
export function offsetAt(text: string, line: number, column: number): number {
  const starts = lineStarts(text);
  const l = Math.min(Math.max(line, 1), starts.length);
  const start = starts[l - 1] ?? 0;
  const end = l < starts.length ? (starts[l] ?? text.length) - 1 : text.length;
  return Math.min(start + Math.max(column, 1) - 1, end);
}

export function positionAt(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split("\n").length;
  return { line, column: before.length - before.lastIndexOf("\n") };
}

const RANK: Record<Severity, number> = { error: 3, warning: 2, info: 1 };

export interface LineMark {
  line: number;
  severity: Severity;
  findings: Finding[];
}

/** One mark per line with findings, with the most severe severity of that line. */
export function lineMarks(findings: readonly Finding[]): LineMark[] {
  const byLine = new Map<number, LineMark>();
  for (const f of findings) {
    const mark = byLine.get(f.line);
    if (!mark) byLine.set(f.line, { line: f.line, severity: f.severity, findings: [f] });
    else {
      mark.findings.push(f);
      if (RANK[f.severity] > RANK[mark.severity]) mark.severity = f.severity;
    }
  }
  return [...byLine.values()].sort((a, b) => a.line - b.line);
}
