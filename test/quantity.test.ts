import { describe, expect, it } from "vitest";
import { formatBytes, parseQuantity } from "../src/units/quantity.ts";

const value = (text: string) => {
  const r = parseQuantity(text);
  if (!r.ok) throw new Error(r.message);
  return r.quantity.value;
};

describe("parseQuantity (Kubernetes semantics)", () => {
  it.each([
    ["1G", 1e9],
    ["1Gi", 2 ** 30],
    ["512M", 512e6],
    ["512Mi", 512 * 2 ** 20],
    ["1.5Gi", 1.5 * 2 ** 30],
    ["20G", 20e9],
    ["1k", 1000],
    ["1Ki", 1024],
    ["2T", 2e12],
    ["1Ti", 2 ** 40],
    ["2e9", 2e9],
    ["1E3", 1000],
    ["100", 100],
    [".5Gi", 2 ** 29],
    ["+1G", 1e9],
  ])("%s = %d bytes", (text, bytes) => {
    expect(value(text)).toBe(bytes);
  });

  it("keeps what the user wrote", () => {
    const r = parseQuantity("1.5Gi");
    expect(r.ok && r.quantity.text).toBe("1.5Gi");
  });

  it("rounds fractions of a byte up, like Kubernetes does for memory", () => {
    expect(value("1500m")).toBe(2);
  });

  it.each([
    ["8 GB", '"8G"'],
    ["8GB", '"8G"'],
    ["8gb", '"8G"'],
    ["8Gb", '"8Gi"'],
    ["8g", '"8G"'],
    ["512KB", '"512k"'],
  ])("refuses %s and suggests %s", (text, suggestion) => {
    const r = parseQuantity(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.hint).toContain(suggestion);
  });

  it.each([
    "",
    " 1G",
    "1G ",
    "-1G",
    "G",
    "1.2.3G",
    "abc",
    "1Zi",
    "0x10",
  ])("refuses %j with a message", (text) => {
    const r = parseQuantity(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message.length).toBeGreaterThan(0);
  });

  it("refuses values beyond exact integers", () => {
    expect(parseQuantity("9Ei").ok).toBe(false);
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1023, "1023 B"],
    [1024, "1 KiB"],
    [1.5 * 2 ** 30, "1.5 GiB"],
    [20e9, "18.6 GiB"],
  ])("%d -> %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
