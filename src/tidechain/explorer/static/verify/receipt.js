// Receipts: C2SP transparency-log proofs (c2sp.org/tlog-proof@v1, `*.tlog-proof`), as
// src/tidechain/core/receipt.py reads them:
//
//   c2sp.org/tlog-proof@v1
//   extra <base64 of the log entry>
//   index <zero-based index>
//   <base64 audit path hash, leaf sibling first>   (zero or more lines)
//   <blank line>
//   <quorum-signed checkpoint note, verbatim>
//
// `extra` carries the log entry itself; it is unauthenticated until the inclusion
// proof of its leaf hash checks against the quorum-signed root.

import { MAX_PROOF_HASHES, MAX_RECEIPT_BYTES } from "./limits.js";
import { decodeError, proofError, tooLarge } from "./errors.js";
import { decodeBase64, rejectControlChars, textFromInput, utf8Size } from "./text.js";
import { parseNote } from "./note.js";
import { parseCheckpointBody, verifyCheckpointNote } from "./checkpoint.js";
import { HASH_BYTES, leafHash, verifyInclusion } from "./merkle.js";

export const HEADER = "c2sp.org/tlog-proof@v1";
/** A co-signed deposit's proof set (core/proofset.py): several receipts, not one. */
const PROOF_SET_HEADER = "tidechain.dev/proof-set@v1";
const EXTRA_PREFIX = "extra ";
const INDEX_LINE = /^index (0|[1-9][0-9]{0,18})$/;

function parseHead(lines) {
  if (lines.length === 0 || lines[0] !== HEADER) {
    throw decodeError(`receipt must start with ${JSON.stringify(HEADER)}`);
  }
  let rest = lines.slice(1);
  let extra = null;
  if (rest.length > 0 && rest[0].startsWith(EXTRA_PREFIX)) {
    extra = decodeBase64(rest[0].slice(EXTRA_PREFIX.length), "receipt extra");
    rest = rest.slice(1);
  }
  if (rest.length === 0) throw decodeError("receipt has no index line");
  const index = INDEX_LINE.exec(rest[0]);
  if (index === null) {
    throw decodeError("receipt index line must be 'index N' with N a canonical decimal");
  }
  const hashLines = rest.slice(1);
  if (hashLines.length > MAX_PROOF_HASHES) {
    throw tooLarge(`receipt has more than ${MAX_PROOF_HASHES} proof hashes`);
  }
  const proof = hashLines.map((line) => decodeBase64(line, "receipt proof hash"));
  return { extra, index: BigInt(index[1]), proof };
}

/**
 * Parse a receipt (string or UTF-8 bytes) strictly; its checkpoint must be a
 * well-formed signed checkpoint. Returns {index, proof, extra, note}; nothing in it is
 * trusted yet.
 */
export function parseReceipt(data) {
  const text = textFromInput(data, "receipt");
  if (utf8Size(text) > MAX_RECEIPT_BYTES) {
    throw tooLarge(`receipt is larger than ${MAX_RECEIPT_BYTES} bytes`);
  }
  rejectControlChars(text, "receipt");
  if (text.startsWith(`${PROOF_SET_HEADER}\n`)) {
    throw decodeError("this is a co-signed deposit's proof set, not a single receipt: " +
      "this page checks single receipts; check a proof set with `tide verify`");
  }
  // Proof lines are never empty, so the first blank line ends them.
  const blank = text.indexOf("\n\n");
  if (blank < 0) throw decodeError("receipt has no blank line before its checkpoint");
  const { extra, index, proof } = parseHead(text.slice(0, blank).split("\n"));
  const note = parseNote(text.slice(blank + 2));
  parseCheckpointBody(note.text);
  for (const node of proof) {
    if (node.length !== HASH_BYTES) throw decodeError(`proof hashes must be ${HASH_BYTES} bytes`);
  }
  if (extra !== null && extra.length === 0) {
    throw decodeError("receipt extra data is empty (omit the line instead)");
  }
  return { index, proof, extra, note };
}

/**
 * Check a receipt against a parsed trust file: the quorum-signed checkpoint, then the
 * inclusion of leaf_hash(extra) at `index`. Returns {index, entry, checkpoint, signers,
 * quorum, validators}; throws a Rejected naming the failed check.
 */
export async function verifyReceiptProof(data, trust) {
  const receipt = parseReceipt(data);
  const { checkpoint, signers, quorum, validators } =
    await verifyCheckpointNote(receipt.note, trust);
  if (receipt.extra === null) {
    throw proofError("receipt has no extra line: tidechain receipts carry the entry there");
  }
  if (receipt.index >= checkpoint.size) {
    throw proofError(`receipt index ${receipt.index} is outside the checkpoint of size ` +
      `${checkpoint.size}`);
  }
  await verifyInclusion(await leafHash(receipt.extra), receipt.index, checkpoint.size,
    receipt.proof, checkpoint.root);
  return { index: receipt.index, entry: receipt.extra, checkpoint, signers, quorum, validators };
}
