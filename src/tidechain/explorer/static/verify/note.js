// C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, signature type 0x01,
// parsed and verified exactly as src/tidechain/core/note.py does:
//
//   <text ending in a newline>
//   <blank line>
//   — <key name> base64(4-byte key id || 64-byte signature)      (one or more lines)
//
// A verifier key is `name+hex8+base64(0x01 || 32-byte public key)`, its key id the first
// 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).

import { MAX_NAME_BYTES, MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES } from "./limits.js";
import { decodeError, proofError, tooLarge } from "./errors.js";
import { concatBytes, equalBytes, fromHex, toHex } from "./bytes.js";
import {
  decodeBase64, isPySpace, rejectControlChars, textFromInput, utf8Encode, utf8Size,
} from "./text.js";
import { sha256 } from "./sha256.js";
import { PUBLIC_KEY_BYTES, signatureProblem } from "./ed25519.js";

export const ED25519_SIGNATURE_TYPE = 0x01;
export const KEY_ID_BYTES = 4;
export const SIGNATURE_PREFIX = "\u2014 "; // em dash, space

const HEX8 = /^[0-9a-fA-F]{8}$/;
// A key name may hold no Unicode space or separator (the spec), and no control
// character or lone surrogate (ours). Python tests str.isspace() and the categories
// Zs, Zl, Zp, Cc, Cs; every character isspace() accepts is in Z* or Cc, so this is the
// same set.
const FORBIDDEN_IN_NAME = /[\p{Z}\p{Cc}\p{Cs}]/u;

/** Throw DecodeError unless `name` is a valid note key name (core/note.py). */
export function validateKeyName(name) {
  if (!name) throw decodeError("key name is empty");
  if (utf8Size(name) > MAX_NAME_BYTES) {
    throw decodeError(`key name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (name.includes("+")) throw decodeError(`key name ${JSON.stringify(name)} contains '+'`);
  const found = FORBIDDEN_IN_NAME.exec(name);
  if (found !== null) {
    const what = isPySpace(found[0]) || /\p{Z}/u.test(found[0]) ? "a space" : "a control character";
    throw decodeError(`key name ${JSON.stringify(name)} contains ${what}`);
  }
}

/** The 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]. */
export async function keyId(name, publicKey) {
  const material = concatBytes(utf8Encode(name), Uint8Array.of(0x0a, ED25519_SIGNATURE_TYPE),
    publicKey);
  return (await sha256(material)).slice(0, KEY_ID_BYTES);
}

/**
 * Parse `name+hex8+base64(0x01 || pubkey)`, checking that the key id matches.
 * Returns {name, keyId, publicKey}.
 */
export async function parseVerifierKey(text) {
  const what = "verifier key";
  // Split at the first two '+' only: base64 may itself contain '+'.
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) throw decodeError(`${what}: expected name+keyid+key`);
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  validateKeyName(name);
  if (!HEX8.test(idHex)) throw decodeError(`${what}: key id must be 8 hex digits`);
  const typed = decodeBase64(text.slice(second + 1), what);
  if (typed.length === 0 || typed[0] !== ED25519_SIGNATURE_TYPE) {
    throw decodeError(`${what}: unsupported signature type (only Ed25519, 0x01)`);
  }
  if (typed.length !== 1 + PUBLIC_KEY_BYTES) {
    throw decodeError(`${what}: Ed25519 key must be ${PUBLIC_KEY_BYTES} bytes`);
  }
  const publicKey = typed.slice(1);
  const claimed = fromHex(idHex);
  if (!equalBytes(claimed, await keyId(name, publicKey))) {
    throw decodeError(`verifier key ${JSON.stringify(name)}: key id does not match the key`);
  }
  return { name, keyId: claimed, publicKey };
}

function parseSignatureLine(line) {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw decodeError("signature line must start with an em dash and a space");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  const encoded = space < 0 ? "" : rest.slice(space + 1);
  if (space < 0 || !encoded) throw decodeError("signature line must be '\u2014 <name> <base64>'");
  validateKeyName(name);
  const raw = decodeBase64(encoded, `signature of ${JSON.stringify(name)}`);
  if (raw.length <= KEY_ID_BYTES) {
    throw decodeError(`signature of ${JSON.stringify(name)} is too short`);
  }
  return { name, keyId: raw.slice(0, KEY_ID_BYTES), signature: raw.slice(KEY_ID_BYTES) };
}

/**
 * Parse a signed note strictly, verifying nothing. Returns {text, signatures}, `text`
 * with its final newline, each signature {name, keyId, signature}.
 */
export function parseNote(data) {
  const text = textFromInput(data, "note");
  if (utf8Size(text) > MAX_NOTE_BYTES) throw tooLarge(`note is larger than ${MAX_NOTE_BYTES} bytes`);
  rejectControlChars(text, "note");
  // The text is separated from the signatures by the *last* blank line.
  const split = text.lastIndexOf("\n\n");
  if (split < 0) throw decodeError("note has no blank line before its signatures");
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (!block.endsWith("\n")) {
    throw decodeError("note must end with a signature line and a newline");
  }
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_NOTE_SIGNATURES) {
    throw tooLarge(`note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  }
  return { text: body, signatures: lines.map(parseSignatureLine) };
}

const slotOf = (name, id) => `${name}\n${toHex(id)}`; // a newline is never in a name

/**
 * Verify the signatures of known keys (`verifiers`: [{name, keyId, publicKey}]) on a
 * parsed note, as core/note.py `verify_note` does: signatures of unknown keys are
 * ignored (the spec says so); one that claims a known key but does not verify rejects
 * the whole note; at least one known key must have signed. Returns the distinct
 * verifiers that signed, in order of appearance.
 */
export async function verifyNote(note, verifiers) {
  const known = new Map();
  for (const verifier of verifiers) {
    const slot = slotOf(verifier.name, verifier.keyId);
    const other = known.get(slot);
    if (other !== undefined && !equalBytes(other.publicKey, verifier.publicKey)) {
      throw decodeError(`two different known keys share name and id ${JSON.stringify(verifier.name)}`);
    }
    known.set(slot, verifier);
  }
  const message = utf8Encode(note.text);
  const signers = new Map();
  for (const signature of note.signatures) {
    const verifier = known.get(slotOf(signature.name, signature.keyId));
    if (verifier === undefined) continue;
    const problem = await signatureProblem(verifier.publicKey, message, signature.signature);
    if (problem !== null) {
      throw proofError(`signature by ${JSON.stringify(signature.name)} does not verify (${problem})`);
    }
    if (!signers.has(slotOf(verifier.name, verifier.keyId))) {
      signers.set(slotOf(verifier.name, verifier.keyId), verifier);
    }
  }
  if (signers.size === 0) throw proofError("note has no signature from a known key");
  return [...signers.values()];
}
