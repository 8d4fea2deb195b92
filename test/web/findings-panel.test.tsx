// @vitest-environment happy-dom
import { cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Finding } from "../../src/catalog/findings.ts";
import { FindingsPanel } from "../../web/src/components/FindingsPanel.tsx";

afterEach(cleanup);

const findings: Finding[] = [
  {
    severity: "error",
    code: "quantity.unit",
    path: "images[0].MIN_MEMORY",
    line: 12,
    column: 17,
    message: 'MIN_MEMORY: "2 GB" has an unknown unit " GB"',
    hint: 'write "2G" (10^n bytes) or "2Gi" (2^n bytes)',
  },
  {
    severity: "warning",
    code: "field.unknown",
    path: "images[1].OS_COLOR",
    line: 30,
    column: 5,
    message: "unknown field OS_COLOR",
  },
  { severity: "error", code: "yaml.syntax", path: "", line: 1, column: 1, message: "not a YAML mapping" },
];

const rows = () =>
  within(screen.getByRole("grid", { name: "Findings" }))
    .getAllByRole("row")
    .slice(1);

describe("FindingsPanel", () => {
  it("lists each finding with its severity, line:column, path, message and hint", () => {
    render(<FindingsPanel findings={findings} label="Findings" location="/etc/osimg/images.yaml" />);
    expect(rows()).toHaveLength(3);
    const [first, second, third] = rows().map((r) => r.textContent ?? "");
    expect(first).toContain("error");
    expect(first).toContain("12:17");
    expect(first).toContain("images[0].MIN_MEMORY");
    expect(first).toContain('"2 GB" has an unknown unit');
    expect(first).toContain('write "2G" (10^n bytes)');
    expect(second).toContain("warning");
    expect(second).toContain("30:5");
    expect(third).toContain("(document)");
    // Where the position points, for a hover.
    expect(screen.getByText("12:17").getAttribute("title")).toBe("/etc/osimg/images.yaml:12:17");
  });

  it("makes positions buttons that hand the finding back when asked to", () => {
    const onSelect = vi.fn();
    render(<FindingsPanel findings={findings} label="Findings" onSelect={onSelect} />);
    fireEvent.click(screen.getByRole("button", { name: "go to line 30, column 5" }));
    expect(onSelect).toHaveBeenCalledWith(findings[1]);
  });

  it("says so when there is nothing to report", () => {
    render(<FindingsPanel findings={[]} label="Findings" emptyText="No findings: every entry passes" />);
    expect(screen.queryByRole("grid")).toBeNull();
    expect(screen.getByRole("heading", { name: "No findings: every entry passes" })).toBeTruthy();
  });
});
