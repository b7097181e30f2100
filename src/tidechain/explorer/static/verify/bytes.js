// Small helpers on Uint8Array: hex, concatenation, comparison.

const HEX_DIGITS = "0123456789abcdef";

/** Lowercase hex of `bytes`. */
export function toHex(bytes) {
  let out = "";
  for (const byte of bytes) out += HEX_DIGITS[byte >> 4] + HEX_DIGITS[byte & 15];
  return out;
}

/** Bytes of an even-length hex string (either case); throws TypeError otherwise. */
export function fromHex(hex) {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError("not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Bytewise lexicographic order: negative, zero or positive, like Python's bytes `<`. */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function equalBytes(a, b) {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/** Unsigned little-endian integer of `bytes`, as a BigInt. */
export function bigIntFromLE(bytes) {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  return value;
}

/** A JSON-friendly integer: a Number when exact, else its decimal text. */
export function jsonInt(value) {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value.toString();
}
