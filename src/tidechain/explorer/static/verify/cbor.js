// A strict decoder of deterministic CBOR (RFC 8949 section 4.2.1), refusing exactly
// what src/tidechain/core/cbor.py refuses (docs/encoding.md): non-shortest heads,
// indefinite lengths, unsorted or duplicate map keys, map keys other than integers and
// text, floats, tags, simple values other than false/true/null, invalid UTF-8,
// trailing bytes, nesting deeper than MAX_CBOR_DEPTH and more than MAX_CBOR_ITEMS items.
// So one value has one byte string, and a signature over bytes is one over a value.
//
// Values: integers are BigInt (the format is 64-bit: heights, times and arguments may
// exceed 2**53), byte strings Uint8Array, text strings string, arrays Array, maps Map
// (keys BigInt or string, so the integer 1 and the text "1" stay apart), and
// true / false / null. No encoder is needed: what is signed or hashed is always checked
// over the exact bytes received (the transaction body travels as a byte string).

import { MAX_CBOR_DEPTH, MAX_CBOR_ITEMS } from "./limits.js";
import { decodeError, tooLarge } from "./errors.js";
import { compareBytes } from "./bytes.js";

const MAJOR_UINT = 0;
const MAJOR_NEGINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;
const MAJOR_SIMPLE = 7;
const KEY_MAJORS = new Set([MAJOR_UINT, MAJOR_NEGINT, MAJOR_TEXT]);

const SIMPLE_FALSE = 20;
const SIMPLE_TRUE = 21;
const SIMPLE_NULL = 22;
const INFO_INDEFINITE = 31;

// Each width of head argument, with the smallest value that needs it: a value below
// that bound had a shorter head, so the encoding is not the deterministic one.
const ARGUMENT_WIDTHS = new Map([
  [24, { bytes: 1, least: 24n }],
  [25, { bytes: 2, least: 0x100n }],
  [26, { bytes: 4, least: 0x10000n }],
  [27, { bytes: 8, least: 0x100000000n }],
]);

// Python's "utf-8" codec and the WHATWG decoder in fatal mode refuse the same
// sequences (overlong forms, surrogates, beyond U+10FFFF); ignoreBOM keeps a leading
// U+FEFF as a character, as Python does.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decode exactly one deterministic CBOR item occupying all of `bytes`. */
export function decode(bytes) {
  if (!(bytes instanceof Uint8Array)) throw decodeError("CBOR input must be bytes");
  const [value, end] = decodeAt(bytes, 0, 0);
  if (end !== bytes.length) {
    throw decodeError(`${bytes.length - end} trailing bytes after the CBOR item`);
  }
  return value;
}

/** [argument (BigInt), next position] of a head whose additional information is `info`. */
function readArgument(buf, pos, info) {
  if (info < 24) return [BigInt(info), pos];
  const width = ARGUMENT_WIDTHS.get(info);
  if (width === undefined) {
    if (info === INFO_INDEFINITE) {
      throw decodeError("indefinite-length CBOR items are not deterministic");
    }
    throw decodeError(`reserved CBOR additional information ${info}`);
  }
  if (pos + width.bytes > buf.length) throw decodeError("truncated CBOR argument");
  let arg = 0n;
  for (let i = 0; i < width.bytes; i++) arg = (arg << 8n) | BigInt(buf[pos + i]);
  if (arg < width.least) {
    throw decodeError("non-canonical CBOR: argument not in shortest form");
  }
  return [arg, pos + width.bytes];
}

function checkItemCount(count, kind) {
  if (count > BigInt(MAX_CBOR_ITEMS)) {
    throw tooLarge(`CBOR ${kind} of ${count} items exceeds ${MAX_CBOR_ITEMS}`);
  }
}

function decodeAt(buf, pos, depth) {
  if (depth > MAX_CBOR_DEPTH) throw tooLarge(`CBOR nesting deeper than ${MAX_CBOR_DEPTH}`);
  if (pos >= buf.length) throw decodeError("truncated CBOR input");
  const initial = buf[pos];
  const major = initial >> 5;
  const info = initial & 0x1f;
  pos += 1;
  if (major === MAJOR_SIMPLE) {
    if (info === SIMPLE_FALSE) return [false, pos];
    if (info === SIMPLE_TRUE) return [true, pos];
    if (info === SIMPLE_NULL) return [null, pos];
    throw decodeError("floats, undefined and other simple values are not allowed");
  }
  let arg;
  [arg, pos] = readArgument(buf, pos, info);
  switch (major) {
    case MAJOR_UINT:
      return [arg, pos];
    case MAJOR_NEGINT:
      return [-1n - arg, pos];
    case MAJOR_BYTES:
    case MAJOR_TEXT: {
      if (arg > BigInt(buf.length - pos)) throw decodeError("truncated CBOR string");
      const end = pos + Number(arg);
      const raw = buf.slice(pos, end);
      if (major === MAJOR_BYTES) return [raw, end];
      try {
        return [UTF8.decode(raw), end];
      } catch {
        throw decodeError("CBOR text string is not valid UTF-8");
      }
    }
    case MAJOR_ARRAY: {
      checkItemCount(arg, "array");
      const items = [];
      for (let i = 0n; i < arg; i++) {
        let item;
        [item, pos] = decodeAt(buf, pos, depth + 1);
        items.push(item);
      }
      return [items, pos];
    }
    case MAJOR_MAP:
      return decodeMap(buf, pos, depth, arg);
    case MAJOR_TAG:
      throw decodeError(`CBOR tags (major type ${major}) are not allowed`);
    default:
      throw new Error(`unreachable CBOR major type ${major}`);
  }
}

function decodeMap(buf, pos, depth, count) {
  checkItemCount(count, "map");
  const result = new Map();
  let previousKey = null;
  for (let i = 0n; i < count; i++) {
    const keyStart = pos;
    if (keyStart >= buf.length) throw decodeError("truncated CBOR input");
    if (!KEY_MAJORS.has(buf[keyStart] >> 5)) {
      throw decodeError("CBOR map keys must be integers or text strings");
    }
    let key;
    [key, pos] = decodeAt(buf, pos, depth + 1);
    // Keys are ordered by their own encodings, bytewise, with no duplicates.
    const keyBytes = buf.subarray(keyStart, pos);
    if (previousKey !== null && compareBytes(keyBytes, previousKey) <= 0) {
      throw decodeError("CBOR map keys not in deterministic order (or duplicated)");
    }
    previousKey = keyBytes;
    let item;
    [item, pos] = decodeAt(buf, pos, depth + 1);
    result.set(key, item);
  }
  return [result, pos];
}
