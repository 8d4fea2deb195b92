// A plain-text YAML editor: a textarea with a line-number gutter in which lines with findings are marked
// (red for errors, yellow for warnings; the marker's title says what is wrong). Lines never wrap, so
// that gutter lines and text lines stay one to one. A textarea keeps the browser's own editing, undo,
// search and accessibility, at no bundle cost.
import { type KeyboardEvent, type Ref, useImperativeHandle, useMemo, useRef, useState } from "react";
import type { Finding } from "../../../src/catalog/findings.ts";
import { lineMarks, lineStarts, offsetAt, positionAt } from "./text.ts";

export interface YamlEditorHandle {
  /** Moves the cursor to line:column, scrolls there and focuses the editor. */
  goTo(line: number, column: number): void;
}

export interface YamlEditorProps {
  value: string;
  onChange: (value: string) => void;
  findings: readonly Finding[];
  label: string;
  onSave?: () => void;
  ref?: Ref<YamlEditorHandle>;
  /** The textarea's id, for a <label for>. */
  id?: string;
  /** Ids of the elements that describe the text (helper text, errors). */
  describedBy?: string;
  /** "page" fills most of the window (the catalog); "compact" fits a dialog. */
  size?: "page" | "compact";
}

export function YamlEditor({
  value,
  onChange,
  findings,
  label,
  onSave,
  ref,
  id,
  describedBy,
  size = "page",
}: YamlEditorProps) {
  const textarea = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const [cursor, setCursor] = useState({ line: 1, column: 1 });
  const lineCount = useMemo(() => lineStarts(value).length, [value]);
  const numbers = useMemo(
    () => Array.from({ length: lineCount }, (_, i) => String(i + 1)).join("\n"),
    [lineCount],
  );
  const marks = useMemo(() => lineMarks(findings), [findings]);
  const atCursor = marks.find((m) => m.line === cursor.line);

  const trackCursor = () => {
    const el = textarea.current;
    if (el) setCursor(positionAt(el.value, el.selectionStart));
  };

  useImperativeHandle(ref, () => ({
    goTo(line, column) {
      const el = textarea.current;
      if (!el) return;
      const offset = offsetAt(el.value, line, column);
      el.focus();
      el.setSelectionRange(offset, offset);
      const lineHeight = Number.parseFloat(getComputedStyle(el).lineHeight) || 20;
      el.scrollTop = Math.max(0, (line - 1) * lineHeight - el.clientHeight / 3);
      setCursor({ line, column });
    },
  }));

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s" && onSave) {
      event.preventDefault();
      onSave();
    }
  };

  return (
    <div className={size === "compact" ? "osimg-editor osimg-editor-compact" : "osimg-editor"}>
      <div className="osimg-editor-frame">
        <div className="osimg-editor-gutter" ref={gutter} aria-hidden="true">
          <pre>{numbers}</pre>
          {marks.map((m) => (
            <span
              key={m.line}
              className={`osimg-editor-mark osimg-editor-mark-${m.severity}`}
              style={{ top: `calc(${m.line - 1} * var(--osimg-editor-line))` }}
              title={m.findings.map((f) => `${f.severity}: ${f.message}`).join("\n")}
              data-line={m.line}
              data-severity={m.severity}
            />
          ))}
        </div>
        <textarea
          ref={textarea}
          id={id}
          className="osimg-editor-text"
          aria-label={label}
          aria-describedby={describedBy}
          aria-invalid={findings.some((f) => f.severity === "error") || undefined}
          value={value}
          wrap="off"
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          autoCorrect="off"
          onChange={(event) => {
            onChange(event.target.value);
            trackCursor();
          }}
          onSelect={trackCursor}
          onKeyDown={onKeyDown}
          onScroll={(event) => {
            if (gutter.current) gutter.current.scrollTop = event.currentTarget.scrollTop;
          }}
        />
      </div>
      <div className="osimg-editor-status">
        <span>
          Line {cursor.line}, column {cursor.column}
        </span>
        <span
          aria-live="polite"
          className={atCursor ? `osimg-editor-status-${atCursor.severity}` : undefined}
        >
          {atCursor ? atCursor.findings.map((f) => `${f.severity}: ${f.message}`).join(" · ") : ""}
        </span>
      </div>
    </div>
  );
}
