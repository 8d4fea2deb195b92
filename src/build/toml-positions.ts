// Where each key and value of a TOML document is. smol-toml parses values but keeps no positions, so this
// scanner walks the same text (already accepted by smol-toml, so it can be lenient) and records, for every
// path ("from_repo.packages[2]", "users[1].name"), the offsets of its key and of its value. Findings about
// the parsed spec are then placed at a line:column of the file the user edits.

export interface TomlPosition {
  /** Offset of the key (for array elements: of the element). */
  key: number;
  /** Offset of the value's first character. */
  value: number;
}

export type TomlPositions = Map<string, TomlPosition>;

/** The path syntax used everywhere in the builder: dotted keys, [n] for array elements. */
export function pathOf(segments: readonly (string | number)[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else out += out === "" ? s : `.${s}`;
  }
  return out;
}

class Scanner {
  readonly text: string;
  pos = 0;
  readonly positions: TomlPositions = new Map();
  /** How many [[x]] headers were seen per table path, to index arrays of tables. */
  readonly arrayCounts = new Map<string, number>();

  constructor(text: string) {
    this.text = text;
  }

  peek(offset = 0): string {
    return this.text[this.pos + offset] ?? "";
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  /** Spaces and tabs only. */
  skipBlank(): void {
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
  }

  /** Whitespace, newlines and comments. */
  skipAll(): void {
    for (;;) {
      const c = this.peek();
      if (c === " " || c === "\t" || c === "\r" || c === "\n") this.pos++;
      else if (c === "#") this.skipComment();
      else return;
    }
  }

  skipComment(): void {
    while (this.pos < this.text.length && this.peek() !== "\n") this.pos++;
  }

  record(path: string, key: number, value: number): void {
    if (!this.positions.has(path)) this.positions.set(path, { key, value });
  }

  /** A bare or quoted key, possibly dotted: its segments. */
  keySegments(): string[] {
    const segments: string[] = [];
    for (;;) {
      this.skipBlank();
      const c = this.peek();
      if (c === '"') segments.push(this.basicString());
      else if (c === "'") segments.push(this.literalString());
      else {
        const start = this.pos;
        while (/[A-Za-z0-9_-]/.test(this.peek())) this.pos++;
        segments.push(this.text.slice(start, this.pos));
      }
      this.skipBlank();
      if (this.peek() !== ".") return segments;
      this.pos++;
    }
  }

  basicString(): string {
    if (this.startsWith('"""')) return this.multiline('"""', true);
    this.pos++;
    let out = "";
    while (this.pos < this.text.length && this.peek() !== '"') {
      if (this.peek() === "\\") out += this.escape();
      else out += this.text[this.pos++];
    }
    this.pos++;
    return out;
  }

  literalString(): string {
    if (this.startsWith("'''")) return this.multiline("'''", false);
    this.pos++;
    const start = this.pos;
    while (this.pos < this.text.length && this.peek() !== "'") this.pos++;
    return this.text.slice(start, this.pos++);
  }

  multiline(quote: string, escapes: boolean): string {
    this.pos += 3;
    let out = "";
    while (this.pos < this.text.length) {
      // Up to two quotes may end the content right before the closing delimiter.
      if (this.startsWith(quote) && !this.text.startsWith(quote[0] as string, this.pos + 3)) {
        this.pos += 3;
        return out;
      }
      if (escapes && this.peek() === "\\") out += this.escape();
      else out += this.text[this.pos++];
    }
    return out;
  }

  escape(): string {
    const c = this.text[this.pos + 1] ?? "";
    const simple: Record<string, string> = {
      b: "\b",
      t: "\t",
      n: "\n",
      f: "\f",
      r: "\r",
      '"': '"',
      "\\": "\\",
    };
    if (c in simple) {
      this.pos += 2;
      return simple[c] as string;
    }
    if (c === "u" || c === "U") {
      const len = c === "u" ? 4 : 8;
      const code = Number.parseInt(this.text.slice(this.pos + 2, this.pos + 2 + len), 16);
      this.pos += 2 + len;
      return Number.isNaN(code) ? "" : String.fromCodePoint(code);
    }
    // A line-ending backslash in a multi-line string: the break and leading whitespace vanish.
    this.pos++;
    while (/[ \t\r\n]/.test(this.peek())) this.pos++;
    return "";
  }

  value(path: string): void {
    const c = this.peek();
    if (c === '"') this.basicString();
    else if (c === "'") this.literalString();
    else if (c === "[") this.array(path);
    else if (c === "{") this.inlineTable(path);
    else {
      while (this.pos < this.text.length && !/[,\]}\r\n#]/.test(this.peek())) this.pos++;
    }
  }

  array(path: string): void {
    this.pos++;
    let index = 0;
    for (;;) {
      this.skipAll();
      if (this.peek() === "]" || this.pos >= this.text.length) {
        this.pos++;
        return;
      }
      const element = `${path}[${index}]`;
      this.record(element, this.pos, this.pos);
      this.value(element);
      index++;
      this.skipAll();
      if (this.peek() === ",") this.pos++;
    }
  }

  inlineTable(path: string): void {
    this.pos++;
    for (;;) {
      this.skipAll();
      if (this.peek() === "}" || this.pos >= this.text.length) {
        this.pos++;
        return;
      }
      this.keyValue(path);
      this.skipAll();
      if (this.peek() === ",") this.pos++;
    }
  }

  keyValue(table: string): void {
    const keyStart = this.pos;
    const segments = this.keySegments();
    this.skipBlank();
    if (this.peek() === "=") this.pos++;
    this.skipBlank();
    let path = table;
    for (const s of segments) {
      path = path === "" ? s : `${path}.${s}`;
      this.record(path, keyStart, this.pos);
    }
    this.value(path);
  }

  header(): string {
    const arrayOfTables = this.startsWith("[[");
    const start = this.pos;
    this.pos += arrayOfTables ? 2 : 1;
    const segments = this.keySegments();
    this.pos += arrayOfTables ? 2 : 1;
    // Earlier segments may themselves be arrays of tables: [[users]] then [users.x] means users[last].x.
    let path = "";
    for (const [i, s] of segments.entries()) {
      path = path === "" ? s : `${path}.${s}`;
      const last = i === segments.length - 1;
      if (last && arrayOfTables) {
        const n = this.arrayCounts.get(path) ?? 0;
        this.arrayCounts.set(path, n + 1);
        this.record(path, start, start);
        path = `${path}[${n}]`;
      } else if (this.arrayCounts.has(path)) {
        path = `${path}[${(this.arrayCounts.get(path) as number) - 1}]`;
      }
      this.record(path, start, start);
    }
    return path;
  }

  document(): TomlPositions {
    let table = "";
    while (this.pos < this.text.length) {
      this.skipAll();
      if (this.pos >= this.text.length) break;
      if (this.peek() === "[") table = this.header();
      else this.keyValue(table);
      this.skipBlank();
      if (this.peek() === "#") this.skipComment();
    }
    return this.positions;
  }
}

/** Positions of every key and value of a TOML document that smol-toml accepted. */
export function tomlPositions(text: string): TomlPositions {
  return new Scanner(text).document();
}

/**
 * The offset to report a finding about `path` at: the value's (or key's) own position, else the nearest
 * ancestor's, else the start of the document.
 */
export function offsetOf(positions: TomlPositions, path: string, at: "key" | "value" = "value"): number {
  let p = path;
  for (;;) {
    const found = positions.get(p);
    if (found) return found[at];
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) return 0;
    p = p.slice(0, cut);
  }
}
