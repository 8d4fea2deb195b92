// Positions in the file the user edits. A catalog can be a YAML document inside a string inside another
// YAML document (a ConfigMap's data["images.yaml"]), and a CLOUD_INIT inside that; an offset in the
// innermost text is mapped back, layer by layer, to a line and column of the outer file.
import { LineCounter, Scalar } from "yaml";

export interface Position {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units like editors count them. */
  column: number;
}

/** Maps an offset in some text to a position in the user's file. */
export type Locator = (offset: number) => Position;

/** The locator of the outermost text: offsets are the file's own. */
export function fileLocator(text: string): Locator {
  const counter = new LineCounter();
  counter.addNewLine(0);
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) counter.addNewLine(i + 1);
  const lastLine = counter.lineStarts.length;
  return (offset) => {
    const clamped = Math.max(0, Math.min(offset, text.length));
    const { line, col } = counter.linePos(clamped);
    return { line: Math.min(Math.max(line, 1), lastLine), column: Math.max(col, 1) };
  };
}

/**
 * The locator of a string scalar's value: each character of the decoded value is mapped to the source
 * character it came from. Escapes of double-quoted strings are decoded; for folding and indentation the
 * value is aligned with the source as a subsequence. Offsets always stay inside the scalar's source range.
 */
export function scalarLocator(scalar: Scalar, source: string, outer: Locator): Locator {
  const value = typeof scalar.value === "string" ? scalar.value : String(scalar.value);
  const [start, end] = scalar.range ?? [0, 0];
  const block = scalar.type === Scalar.BLOCK_LITERAL || scalar.type === Scalar.BLOCK_FOLDED;
  const indent = block ? blockIndent(source, start, end) : 0;
  const map = alignValueWithSource(value, source, start, end, scalar.type === Scalar.QUOTE_DOUBLE, indent);
  return (offset) => {
    if (map.length === 0) return outer(start);
    const index = Math.max(0, Math.min(offset, map.length - 1));
    return outer(map[index] as number);
  };
}

function alignValueWithSource(
  value: string,
  source: string,
  start: number,
  end: number,
  doubleQuoted: boolean,
  indent: number,
): Int32Array {
  const map = new Int32Array(value.length + 1);
  let j = indent > 0 ? source.indexOf("\n", start) + 1 : start;
  for (let i = 0; i < value.length; i++) {
    if (indent > 0 && source[j - 1] === "\n") j = skipIndent(source, j, indent);
    if (doubleQuoted) j = skipEscapedLineBreaks(source, j, end);
    if (doubleQuoted && source[j] === "\\" && j + 1 < end && source[j + 1] !== "\n") {
      map[i] = j;
      j += escapeLength(source[j + 1] as string);
      continue;
    }
    const found = source.indexOf(value[i] as string, j);
    if (found !== -1 && found < end) {
      map[i] = found;
      j = found + 1;
    } else {
      // A character produced by folding (a line break read as a space): it stands where the source is now.
      map[i] = Math.min(j, Math.max(end - 1, start));
    }
  }
  map[value.length] = Math.min(j, Math.max(end - 1, start));
  return map;
}

/** The indentation of a block scalar: that of its first non-empty content line. */
function blockIndent(source: string, start: number, end: number): number {
  let lineStart = source.indexOf("\n", start) + 1;
  while (lineStart > 0 && lineStart < end) {
    let j = lineStart;
    while (source[j] === " ") j++;
    if (source[j] !== "\n" && j < end) return j - lineStart;
    lineStart = j + 1;
  }
  return 0;
}

function skipIndent(source: string, from: number, indent: number): number {
  let j = from;
  while (j - from < indent && source[j] === " ") j++;
  return j;
}

function skipEscapedLineBreaks(source: string, from: number, end: number): number {
  let j = from;
  while (source[j] === "\\" && source[j + 1] === "\n" && j < end) {
    j += 2;
    while (source[j] === " " || source[j] === "\t") j++;
  }
  return j;
}

function escapeLength(code: string): number {
  if (code === "x") return 4;
  if (code === "u") return 6;
  if (code === "U") return 10;
  return 2;
}
