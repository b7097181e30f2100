// RFC 9162 (RFC 6962) inclusion proofs over SHA-256, as src/tidechain/core/merkle.py
// checks them: leaf = H(0x00 || entry), node = H(0x01 || left || right). Lengths and
// sizes are checked before any hashing, so a bad proof is refused with a reason that
// says what is wrong, and a hostile one costs nothing. Indices and sizes are BigInt:
// a log may grow past 2**53 entries.

import { MAX_PROOF_HASHES } from "./limits.js";
import { proofError } from "./errors.js";
import { concatBytes, equalBytes, toHex } from "./bytes.js";
import { sha256 } from "./sha256.js";

export const HASH_BYTES = 32;
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

export function leafHash(entry) {
  return sha256(concatBytes(LEAF_PREFIX, entry));
}

export function nodeHash(left, right) {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function bitCount(n) {
  let count = 0;
  for (; n > 0n; n >>= 1n) count += Number(n & 1n);
  return count;
}

/**
 * Hashes in the audit path of `index` in a tree of `size`: `inner` levels below the
 * point where the paths to `index` and to the last leaf split, then one per set bit
 * of the index above it, along the tree's right edge.
 */
function inclusionLength(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  return inner + bitCount(index >> BigInt(inner));
}

function checkHash(value, what) {
  if (value.length !== HASH_BYTES) {
    throw proofError(`${what} must be ${HASH_BYTES} bytes, got ${value.length}`);
  }
}

/**
 * Check that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with
 * `root`, per RFC 9162 section 2.1.3.2. Throws ProofError naming the reason.
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  checkHash(root, "root");
  if (size <= 0n) throw proofError(`tree size must be positive, got ${size}`);
  if (!(index >= 0n && index < size)) {
    throw proofError(`leaf index ${index} is outside a tree of size ${size}`);
  }
  checkHash(leaf, "leaf hash");
  if (proof.length > MAX_PROOF_HASHES) {
    throw proofError(`proof has ${proof.length} hashes, more than ${MAX_PROOF_HASHES}`);
  }
  const expected = inclusionLength(index, size);
  if (proof.length !== expected) {
    throw proofError(`proof has ${proof.length} hashes, expected ${expected}`);
  }
  proof.forEach((p, position) => checkHash(p, `proof hash ${position}`));

  // RFC 9162 section 2.1.3.2, steps 2 to 5, with fn, sn and r as named there.
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw proofError("inclusion proof is longer than the tree is high");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (fn !== 0n && (fn & 1n) === 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw proofError("inclusion proof is shorter than the tree is high");
  if (!equalBytes(r, root)) {
    throw proofError(`inclusion proof for leaf ${index} of ${size} leads to root ` +
      `${toHex(r)}, not ${toHex(root)}`);
  }
}
