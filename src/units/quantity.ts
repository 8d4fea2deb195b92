// Kubernetes resource quantities ("1G", "512Mi", "1.5Gi", "2e9"): the one parser used everywhere.
// Semantics follow k8s.io/apimachinery/pkg/api/resource: decimal SI suffixes are powers of 1000,
// binary ones powers of 1024, and a value in bytes is rounded up to a whole byte.

export interface Quantity {
  /** What the user wrote, kept for output. */
  readonly text: string;
  /** The value in base units (bytes for memory and storage), rounded up to an integer. */
  readonly value: number;
}

export type QuantityResult = { ok: true; quantity: Quantity } | { ok: false; message: string; hint?: string };

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const SHAPE = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)$/;
const EXPONENT = /^[eE]([+-]?\d+)$/;

function multiplierOf(suffix: string): number | undefined {
  if (suffix in BINARY) return BINARY[suffix];
  if (suffix in DECIMAL) return DECIMAL[suffix];
  const exp = EXPONENT.exec(suffix);
  if (exp) return 10 ** Number(exp[1]);
  return undefined;
}

/** Suggests the quantity the user most likely meant, for the common ways of getting it wrong. */
function suggestionFor(number: string, suffix: string): string | undefined {
  const compact = suffix.replace(/\s+/g, "");
  const unit = /^([kKmMgGtTpPeE])(i?)([bB]?)$/.exec(compact);
  if (!unit) return undefined;
  const letter = unit[1] === "k" || unit[1] === "K" ? "k" : (unit[1] as string).toUpperCase();
  const decimal = `${number}${letter}`;
  const binary = `${number}${letter === "k" ? "K" : letter}i`;
  return `write "${decimal}" (10^n bytes) or "${binary}" (2^n bytes)`;
}

export function parseQuantity(text: string): QuantityResult {
  if (text.trim() === "")
    return { ok: false, message: "empty quantity", hint: 'write a value such as "2G" or "2Gi"' };
  if (text !== text.trim()) {
    return { ok: false, message: `"${text}" has surrounding spaces`, hint: `write "${text.trim()}"` };
  }
  const shape = SHAPE.exec(text);
  if (!shape) {
    return {
      ok: false,
      message: `"${text}" is not a quantity`,
      hint: 'write a number with an optional suffix, such as "2G" or "512Mi"',
    };
  }
  const [, sign, number = "", suffix = ""] = shape;
  if (sign === "-")
    return { ok: false, message: `"${text}" is negative`, hint: "quantities here must be positive" };
  const multiplier = multiplierOf(suffix);
  if (multiplier === undefined) {
    const suggestion = suggestionFor(number, suffix);
    return {
      ok: false,
      message: `"${text}" has an unknown unit "${suffix}"`,
      hint:
        suggestion ??
        "units are k, M, G, T, P, E (powers of 1000) or Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024)",
    };
  }
  const value = Math.ceil(Number(number) * multiplier);
  if (!Number.isSafeInteger(value)) {
    return { ok: false, message: `"${text}" is too large`, hint: "use a value below 8 PiB" };
  }
  return { ok: true, quantity: { text, value } };
}

/** Bytes below which a memory or disk size is certainly a missing or wrong unit ("512" or "512m"). */
export const IMPLAUSIBLE_BYTES = 2 ** 20;

/** A short human form, in binary units: 1073741824 -> "1 GiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}
