// RFC 9162 consistency proofs (section 2.1.4.2), verified in the browser, and the
// page's memory of the last checkpoint it saw: a node that serves a checkpoint which
// does not extend the one remembered has forked (or is another chain), and the page
// says so. The algorithm is the one of src/tidechain/core/merkle.py verify_consistency,
// step for step, with the same strictness: the old size is positive, every hash is 32
// bytes, equal sizes need an empty proof and equal roots.

import { concat, equal, fromBase64 } from "./bytes.js";
import { sha256 } from "./crypto.js";

const HASH_BYTES = 32;
const NODE_PREFIX = Uint8Array.of(0x01);
export const STORAGE_KEY = "tidechain.explorer.checkpoint";
const MAX_CHECKPOINT_CHARS = 16 * 1024; // a note with a few dozen signatures

export class ProofError extends Error {}

const nodeHash = async (left, right) => sha256(concat(NODE_PREFIX, left, right));

// Sizes are log sizes: integers below 2^53 in JavaScript numbers; the bit operations
// below need BigInt beyond 2^31, so they are done in BigInt throughout.
function bigSize(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProofError(`${what} must be a non-negative integer`);
  return BigInt(n);
}

function isPowerOfTwo(n) {
  return (n & (n - 1n)) === 0n;
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n) {
  return [...n.toString(2)].filter((c) => c === "1").length;
}

function trailingZeros(n) {
  return bitLength(n & -n) - 1;
}

/** Number of hashes in a proof between sizes 0 < m < n (core/merkle.py). */
export function consistencyLength(m, n) {
  const size1 = BigInt(m);
  const size2 = BigInt(n);
  const index = size1 - 1n;
  const inner = bitLength(index ^ (size2 - 1n));
  const border = popCount(index >> BigInt(inner));
  const shift = trailingZeros(size1);
  const seed = size1 === 1n << BigInt(shift) ? 0 : 1;
  return seed + (inner - shift) + border;
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) {
    throw new ProofError(`${what} must be ${HASH_BYTES} bytes`);
  }
}

/**
 * Check that the tree of `size2` leaves with `root2` extends the tree of `size1`
 * leaves with `root1`, given the proof (an array of 32-byte Uint8Arrays). Resolves
 * when it does; rejects with ProofError naming the reason otherwise.
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  const m = bigSize(size1, "old size");
  const n = bigSize(size2, "new size");
  if (m > n) throw new ProofError(`old size ${size1} is larger than new size ${size2}`);
  if (m === 0n) throw new ProofError("a consistency proof from the empty tree proves nothing");
  checkHash(root1, "old root");
  checkHash(root2, "new root");
  if (!Array.isArray(proof)) throw new ProofError("the proof must be a list of hashes");
  proof.forEach((p, i) => checkHash(p, `proof hash ${i}`));
  if (m === n) {
    if (proof.length) throw new ProofError(`a proof between equal sizes must be empty, not ${proof.length} hashes`);
    if (!equal(root1, root2)) throw new ProofError(`trees of equal size ${size1} have different roots`);
    return;
  }
  const expected = consistencyLength(m, n);
  if (proof.length !== expected) {
    throw new ProofError(`proof has ${proof.length} hashes; ${expected} expected from ${size1} to ${size2}`);
  }
  const path = isPowerOfTwo(m) ? [root1, ...proof] : [...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("consistency proof is longer than the tree is high");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (fn && !(fn & 1n)) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("consistency proof is shorter than the tree is high");
  if (!equal(fr, root1)) throw new ProofError(`consistency proof does not lead to the old root of size ${size1}`);
  if (!equal(sr, root2)) throw new ProofError(`consistency proof does not lead to the new root of size ${size2}`);
}

/**
 * The body of a C2SP tlog-checkpoint (a signed note): {origin, size, root (base64),
 * signers: [key names]}. Only its form is checked here; the signatures are checked
 * against a trust file by the receipt verifier (static/verify/).
 */
export function parseCheckpoint(text) {
  if (typeof text !== "string" || text.length > MAX_CHECKPOINT_CHARS) throw new ProofError("not a checkpoint");
  const split = text.indexOf("\n\n");
  if (split < 0) throw new ProofError("checkpoint has no signature block");
  const body = text.slice(0, split).split("\n");
  if (body.length < 3) throw new ProofError("checkpoint body needs origin, size and root");
  const [origin, sizeText, root] = body;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new ProofError("checkpoint size is not a decimal integer");
  }
  const rootBytes = fromBase64(root);
  checkHash(rootBytes, "checkpoint root");
  const signers = text.slice(split + 2).split("\n")
    .filter((line) => line.startsWith("\u2014 "))
    .map((line) => line.slice(2).split(" ")[0]);
  return { origin, size: Number(sizeText), root, signers };
}

/** The checkpoint this browser remembers for this node's address, or null. */
export function remembered() {
  try {
    const saved = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "null");
    if (saved && typeof saved.origin === "string" && Number.isSafeInteger(saved.size)
        && typeof saved.root === "string") return saved;
  } catch {
    // unreadable: as if nothing were remembered
  }
  return null;
}

export function remember(checkpoint) {
  const { origin, size, root } = checkpoint;
  window.localStorage.setItem(STORAGE_KEY, JSON.stringify({ origin, size, root, seen_ms: Date.now() }));
}

export function forget() {
  window.localStorage.removeItem(STORAGE_KEY);
}

/**
 * Compare the node's current checkpoint with the remembered one. `fetchProof(old, new)`
 * answers /v1/log/consistency's JSON. Resolves to {state, old, current, reason, proof}:
 * state "first" (nothing remembered), "same", "extends" (proof verified) or "fork".
 * Remembers the current checkpoint unless it is a fork: the alarm stays until the
 * visitor chooses to forget the old one.
 */
export async function checkLog(checkpointText, fetchProof) {
  const current = parseCheckpoint(checkpointText);
  const old = remembered();
  if (!old) {
    remember(current);
    return { state: "first", old: null, current };
  }
  const fork = (reason) => ({ state: "fork", old, current, reason });
  if (old.origin !== current.origin) {
    return fork(`the node's log is another chain: origin ${current.origin}, not ${old.origin}`);
  }
  if (current.size < old.size) {
    return fork(`the node's log has ${current.size} entries, fewer than the ${old.size} seen before`);
  }
  let oldRoot;
  try {
    oldRoot = fromBase64(old.root);
  } catch {
    return fork("the remembered root is not base64");
  }
  const newRoot = fromBase64(current.root);
  if (current.size === old.size) {
    if (!equal(oldRoot, newRoot)) return fork(`two different roots for the same size ${old.size}`);
    remember(current);
    return { state: "same", old, current };
  }
  const answer = await fetchProof(old.size, current.size);
  let proof;
  try {
    proof = answer.proof.map((p) => fromBase64(p));
    await verifyConsistency(old.size, current.size, proof, oldRoot, newRoot);
  } catch (err) {
    return fork(`the consistency proof from ${old.size} to ${current.size} does not verify: ${err.message}`);
  }
  remember(current);
  return { state: "extends", old, current, proof: answer.proof };
}
