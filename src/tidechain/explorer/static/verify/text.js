// Text as src/tidechain/core/note.py reads it: strict UTF-8, canonical base64, no
// control characters, and Python's idea of whitespace where the trust file uses it.

import { decodeError } from "./errors.js";

// fatal: malformed UTF-8 is refused, never replaced by U+FFFD. ignoreBOM: a leading
// byte-order mark stays in the text (Python's "utf-8" codec keeps it), so a file that
// starts with one is refused by the header check exactly as `tide verify` refuses it.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const ENCODER = new TextEncoder();

/** Strictly decode UTF-8 bytes; DecodeError naming `what` otherwise. */
export function utf8Decode(bytes, what) {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw decodeError(`${what}: not valid UTF-8`);
  }
}

export function utf8Encode(text) {
  return ENCODER.encode(text);
}

// A lone surrogate has no UTF-8 form; Python refuses such a string before reading it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The text of a file given as bytes (decoded strictly) or as a string (checked). */
export function textFromInput(data, what) {
  if (typeof data === "string") {
    if (LONE_SURROGATE.test(data)) throw decodeError(`${what}: not valid UTF-8`);
    return data;
  }
  return utf8Decode(data, what);
}

/** Length of `text` in UTF-8 bytes (the unit of every text bound). */
export function utf8Size(text) {
  return ENCODER.encode(text).length;
}

// The signed-note spec forbids ASCII control characters other than newline.
const CONTROL_CHAR = /[\x00-\x09\x0b-\x1f]/;

export function rejectControlChars(text, what) {
  const found = CONTROL_CHAR.exec(text);
  if (found !== null) {
    const code = found[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw decodeError(`${what} contains control character U+${code}`);
  }
}

// --- base64 (RFC 4648 section 4), canonical spelling only ------------------------------

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const SEXTET = new Map([...ALPHABET].map((c, i) => [c, i]));
const BASE64_SHAPE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function encodeBase64(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63];
    out += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? ALPHABET[n & 63] : "=";
  }
  return out;
}

/**
 * Decode standard base64, accepting only the one spelling `encodeBase64` produces
 * (padding present, unused bits zero), as core/note.py `decode_base64` does: one note
 * has one spelling, so a flipped bit never goes unnoticed.
 */
export function decodeBase64(text, what) {
  if (!BASE64_SHAPE.test(text)) throw decodeError(`${what}: not valid base64`);
  const body = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((body.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of body) {
    value = ((value << 6) | SEXTET.get(char)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  if (encodeBase64(out) !== text) throw decodeError(`${what}: base64 is not in canonical form`);
  return out;
}

// --- Python's str.strip() and str.split() --------------------------------------------
// The trust file is read with Python's whitespace rules (core/trust.py). They differ
// from JavaScript's trim(): Python strips U+001C..U+001F and U+0085, and keeps U+FEFF.
// These are the characters for which Python's str.isspace() is true.

export const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003" +
  "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
const PY_SPACES = new Set(PY_SPACE);

export function isPySpace(char) {
  return PY_SPACES.has(char);
}

/** Python's `text.strip()`. */
export function pyStrip(text) {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACES.has(text[start])) start++;
  while (end > start && PY_SPACES.has(text[end - 1])) end--;
  return text.slice(start, end);
}

/** Python's `text.split()`: runs of whitespace separate, no empty parts. */
export function pySplit(text) {
  const parts = [];
  let current = "";
  for (const char of text) {
    if (PY_SPACES.has(char)) {
      if (current) parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  if (current) parts.push(current);
  return parts;
}

/** Order strings by code point, as Python's sorted() does (not by UTF-16 unit). */
export function compareCodePoints(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
