// The trust file, read exactly as src/tidechain/core/trust.py reads it:
//
//   # a comment                  full-line comments only
//   origin <checkpoint origin>   optional, at most once
//   quorum <K>                   optional, at most once: 1 <= K <= n
//   <name>+<hex8>+<base64>       one C2SP verifier key per validator, optionally
//                                followed by `sizes=<first>-[<last>]` (ADR 0011)
//
// Without a quorum line the quorum is n - floor((n - 1) / 3). A key with a size range
// may sign only checkpoints whose size is in it; a checkpoint of size s is verified
// against the keys valid at s, with that set's quorum. Any other attribute is refused.

import { MAX_NAME_BYTES, MAX_TRUST_FILE_BYTES, MAX_VALIDATORS } from "./limits.js";
import { Rejected, decodeError, proofError, tooLarge } from "./errors.js";
import { toHex } from "./bytes.js";
import { pySplit, pyStrip, textFromInput, utf8Size } from "./text.js";
import { parseVerifierKey } from "./note.js";

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const MAX_QUORUM_DIGITS = 4;
const SIZES = /^sizes=(0|[1-9][0-9]{0,18})-(0|[1-9][0-9]{0,18})?$/;

/** n - floor((n - 1) / 3): the smallest quorum that tolerates floor((n - 1) / 3) faults. */
export function defaultQuorum(count) {
  return count - Math.floor((count - 1) / 3);
}

/** A size range {first, last} (BigInt, last null: open); ALWAYS is every size. */
const ALWAYS = Object.freeze({ first: 0n, last: null });

const isAlways = (range) => range.first === 0n && range.last === null;
const inRange = (size, range) => range.first <= size && (range.last === null || size <= range.last);
const overlaps = (a, b) =>
  (a.last === null || b.first <= a.last) && (b.last === null || a.first <= b.last);

function checkValidators(validators, ranges) {
  if (validators.length === 0) throw decodeError("trust file lists no validator key");
  if (validators.length > MAX_VALIDATORS) {
    throw tooLarge(`trust file lists more than ${MAX_VALIDATORS} validators`);
  }
  // A name appears again only for a rotated key, over sizes the other key did not sign.
  const byName = new Map();
  validators.forEach((verifier, i) => {
    const earlier = byName.get(verifier.name) ?? [];
    if (earlier.some((other) => overlaps(ranges[i], other))) {
      throw decodeError(`trust file lists a key name twice for overlapping sizes (${verifier.name})`);
    }
    earlier.push(ranges[i]);
    byName.set(verifier.name, earlier);
  });
  if (new Set(validators.map((v) => toHex(v.keyId))).size !== validators.length) {
    throw decodeError("trust file lists a key id twice");
  }
  // One key under two names would let one organisation count twice towards the quorum.
  if (new Set(validators.map((v) => toHex(v.publicKey))).size !== validators.length) {
    throw decodeError("trust file lists the same public key twice");
  }
}

function checkOrigin(origin) {
  if (!origin || origin !== pyStrip(origin) || origin.includes("\n")) {
    throw decodeError("trust file origin must be non-empty, without surrounding spaces");
  }
  if (utf8Size(origin) > MAX_NAME_BYTES) {
    throw decodeError(`trust file origin is longer than ${MAX_NAME_BYTES} bytes`);
  }
}

/** Build a trust as Trust.of does: the default quorum, open ranges dropped. */
function makeTrust(validators, quorum, origin, ranges) {
  const spans = ranges.every(isAlways) ? [] : ranges;
  const names = new Set(validators.map((v) => v.name)).size;
  const trust = {
    validators,
    quorum: quorum ?? defaultQuorum(names),
    origin,
    ranges: spans,
    quorumExplicit: quorum !== null,
  };
  checkValidators(validators, spans.length ? spans : validators.map(() => ALWAYS));
  if (!(trust.quorum >= 1 && trust.quorum <= validators.length)) {
    throw decodeError(`quorum ${trust.quorum} is not between 1 and ${validators.length} validators`);
  }
  if (origin !== null) checkOrigin(origin);
  return trust;
}

async function readKey(line, draft) {
  const [keyText, ...attributes] = pySplit(line);
  let span = ALWAYS;
  for (const attribute of attributes) {
    const match = SIZES.exec(attribute);
    if (match === null) {
      throw decodeError(`unknown key attribute ${JSON.stringify(attribute.slice(0, 40))}`);
    }
    if (span !== ALWAYS) throw decodeError("repeated key attribute 'sizes'");
    const first = BigInt(match[1]);
    const last = match[2] === undefined ? null : BigInt(match[2]);
    if (last !== null && last < first) {
      throw decodeError(`size range ${JSON.stringify(attribute)} ends before it starts`);
    }
    span = { first, last };
  }
  if (draft.validators.length >= MAX_VALIDATORS) {
    throw tooLarge(`trust file lists more than ${MAX_VALIDATORS} validators`);
  }
  draft.validators.push(await parseVerifierKey(keyText));
  draft.ranges.push(span);
}

async function readLine(line, draft) {
  const space = line.indexOf(" ");
  const word = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? "" : line.slice(space + 1);
  if (word === "quorum") {
    if (draft.quorum !== null) throw decodeError("trust file has two quorum lines");
    const value = pyStrip(rest);
    if (!DECIMAL.test(value) || value.length > MAX_QUORUM_DIGITS) {
      throw decodeError(`quorum ${JSON.stringify(value)} is not a small decimal number`);
    }
    draft.quorum = Number(value);
  } else if (word === "origin") {
    if (draft.origin !== null) throw decodeError("trust file has two origin lines");
    const value = pyStrip(rest);
    checkOrigin(value);
    draft.origin = value;
  } else if (word.includes("+")) {
    await readKey(line, draft);
  } else {
    throw decodeError(`unknown trust file directive ${JSON.stringify(word)}`);
  }
}

/**
 * Parse a trust file (string or UTF-8 bytes). Returns {validators: [{name, keyId,
 * publicKey}], quorum, origin (string or null), ranges ([] or one per validator),
 * quorumExplicit}. A malformed line is a DecodeError naming its line number.
 */
export async function parseTrust(data) {
  const text = textFromInput(data, "trust file");
  if (utf8Size(text) > MAX_TRUST_FILE_BYTES) {
    throw tooLarge(`trust file is larger than ${MAX_TRUST_FILE_BYTES} bytes`);
  }
  const draft = { validators: [], ranges: [], quorum: null, origin: null };
  const lines = text.split("\n");
  for (let number = 1; number <= lines.length; number++) {
    const raw = lines[number - 1];
    const line = pyStrip(raw.endsWith("\r") ? raw.slice(0, -1) : raw);
    if (!line || line.startsWith("#")) continue;
    try {
      await readLine(line, draft);
    } catch (error) {
      if (error instanceof Rejected && error.code === "malformed") {
        throw decodeError(`trust file line ${number}: ${error.reason}`);
      }
      throw error;
    }
  }
  return makeTrust(draft.validators, draft.quorum, draft.origin, draft.ranges);
}

/**
 * The keys that may sign a checkpoint of `size` (BigInt), with that set's quorum, as
 * Trust.at_size does. Throws ProofError if none may, or too few for the quorum.
 */
export function trustAtSize(trust, size) {
  if (trust.ranges.length === 0) return trust;
  const keys = trust.validators.filter((_, i) => inRange(size, trust.ranges[i]));
  if (keys.length === 0) {
    throw proofError(`the trust file lists no key for a checkpoint of size ${size}`);
  }
  const quorum = trust.quorumExplicit ? trust.quorum : defaultQuorum(keys.length);
  if (quorum > keys.length) {
    throw proofError(`the trust file's quorum ${quorum} exceeds the ${keys.length} keys ` +
      `valid for a checkpoint of size ${size}`);
  }
  return { validators: keys, quorum, origin: trust.origin, ranges: [], quorumExplicit: true };
}

