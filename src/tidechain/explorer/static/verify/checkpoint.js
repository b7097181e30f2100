// C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint) signed by a quorum of
// validators, as src/tidechain/core/checkpoint.py reads them. The note text is
//
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n]...
//
// and a checkpoint is final once `quorum` distinct trusted validators signed it.

import { MAX_NAME_BYTES, MAX_TREE_SIZE } from "./limits.js";
import { decodeError, proofError } from "./errors.js";
import { compareCodePoints, decodeBase64, utf8Size } from "./text.js";
import { verifyNote } from "./note.js";
import { trustAtSize } from "./trust.js";

export const ROOT_BYTES = 32;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const MAX_SIZE_DIGITS = MAX_TREE_SIZE.toString().length;

function checkLine(value, what) {
  if (!value) throw decodeError(`checkpoint ${what} is empty`);
  if (value.includes("\n")) throw decodeError(`checkpoint ${what} contains a newline`);
}

/**
 * Parse a checkpoint note text strictly: origin, size (canonical decimal), 32-byte
 * root, then opaque non-empty extension lines. Returns {origin, size (BigInt), root,
 * extensions}.
 */
export function parseCheckpointBody(text) {
  if (!text.endsWith("\n")) throw decodeError("checkpoint text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw decodeError("checkpoint text needs origin, size and root lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!DECIMAL.test(sizeText) || sizeText.length > MAX_SIZE_DIGITS) {
    throw decodeError(`checkpoint size ${JSON.stringify(sizeText)} is not a canonical decimal`);
  }
  const size = BigInt(sizeText);
  const root = decodeBase64(rootText, "checkpoint root");
  checkLine(origin, "origin");
  if (utf8Size(origin) > MAX_NAME_BYTES) {
    throw decodeError(`checkpoint origin is longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (size > MAX_TREE_SIZE) throw decodeError(`checkpoint size ${size} is out of range`);
  if (root.length !== ROOT_BYTES) throw decodeError(`checkpoint root must be ${ROOT_BYTES} bytes`);
  for (const extension of extensions) checkLine(extension, "extension line");
  return { origin, size, root, extensions };
}

/**
 * Verify a parsed checkpoint note against a trust: the origin is the trusted one (when
 * the trust file names it), and `quorum` distinct validators valid at this size signed.
 * Returns {checkpoint, signers (names, sorted), quorum, validators (count at this size)}.
 */
export async function verifyCheckpointNote(note, trust) {
  // The body is read before the signatures only to give a clear error for a checkpoint
  // of another log; nothing is trusted until the quorum check passes.
  const checkpoint = parseCheckpointBody(note.text);
  if (trust.origin !== null && checkpoint.origin !== trust.origin) {
    throw proofError(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not the ` +
      `trusted origin ${JSON.stringify(trust.origin)}`);
  }
  const atSize = trustAtSize(trust, checkpoint.size); // the keys that may sign this size
  const verified = await verifyNote(note, atSize.validators);
  const signers = [...new Set(verified.map((v) => v.name))].sort(compareCodePoints);
  if (signers.length < atSize.quorum) {
    throw proofError(`checkpoint signed by ${signers.length} trusted validators, ` +
      `quorum is ${atSize.quorum}`);
  }
  return { checkpoint, signers, quorum: atSize.quorum, validators: atSize.validators.length };
}
