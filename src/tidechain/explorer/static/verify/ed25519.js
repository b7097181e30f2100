// Ed25519 signature checks that accept exactly what libsodium's
// crypto_sign_verify_detached accepts, which is what `tide verify` runs (PyNaCl,
// core/crypto.py). Verification engines disagree at the edges, and a verifier that
// accepts more than the node is a verifier that can be fooled:
//
// * WebCrypto (OpenSSL in Node, BoringSSL in Chromium) and @noble/ed25519's default
//   both accept a small-order public key. For the identity point as key, the signature
//   R = identity, S = 0 verifies *every* message, so one such key in a trust file would
//   let anybody sign any checkpoint. libsodium refuses small-order keys and small-order
//   R, and keys whose encoding is not canonical (y >= p): so do we, before any verify.
// * libsodium refuses S >= L (a malleable signature): so do we.
// * libsodium checks the cofactorless equation, encode([S]B - [k]A) == R bytewise, as
//   OpenSSL and BoringSSL do. noble's verify() checks the cofactored one (ZIP-215, and
//   its strict mode too), which also accepts some signatures under a key with a torsion
//   component that libsodium refuses. So the noble fallback below uses noble's curve
//   arithmetic with libsodium's equation, not noble's verify().
//
// With these checks first, WebCrypto and the fallback agree with libsodium; the tests
// check all three on forged and mixed-order keys.

import { Point } from "../vendor/noble-ed25519-3.2.0/index.js";
import { sha512 } from "../vendor/noble-hashes-2.4.0/sha2.js";
import { bigIntFromLE, concatBytes, equalBytes, fromHex } from "./bytes.js";

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

/** The field prime p = 2**255 - 19. */
const P = 2n ** 255n - 19n;
/** The order L of the prime-order subgroup (RFC 8032). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const SIGN_BIT = 0x80;

/**
 * libsodium's blocklist (ge25519_has_small_order), compared with the sign bit of the
 * last byte cleared: y = 0 (order 4), y = 1 (identity), the two y of the order-8
 * points, y = p - 1 (order 2), and the non-canonical y = p and y = p + 1. With both
 * signs of x this covers the encodings of all 8 small-order points.
 */
export const SMALL_ORDER_ENCODINGS = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(fromHex);

/** The y coordinate's encoding: the 32 bytes with the sign bit of x cleared. */
function withoutSignBit(encoding) {
  const y = encoding.slice();
  y[31] &= ~SIGN_BIT;
  return y;
}

/** Whether a 32-byte point encoding is one of the small-order points (either x sign). */
export function isSmallOrderEncoding(encoding) {
  const y = withoutSignBit(encoding);
  return SMALL_ORDER_ENCODINGS.some((blocked) => equalBytes(y, blocked));
}

/** Whether the encoded y (sign bit ignored) is below p, its one canonical spelling. */
export function isCanonicalEncoding(encoding) {
  return bigIntFromLE(withoutSignBit(encoding)) < P;
}

/** Why `publicKey` can never verify a signature here, or null if it may. */
export function publicKeyProblem(publicKey) {
  if (publicKey.length !== PUBLIC_KEY_BYTES) {
    return `an Ed25519 public key is ${PUBLIC_KEY_BYTES} bytes, not ${publicKey.length}`;
  }
  if (!isCanonicalEncoding(publicKey)) return "the public key is not canonically encoded (y >= p)";
  if (isSmallOrderEncoding(publicKey)) {
    return "the public key is a small-order point, for which signatures prove nothing";
  }
  return null;
}

/** Why `signature` is refused before any curve arithmetic, or null. */
function signatureShapeProblem(signature) {
  if (signature.length !== SIGNATURE_BYTES) {
    return `an Ed25519 signature is ${SIGNATURE_BYTES} bytes, not ${signature.length}`;
  }
  if (isSmallOrderEncoding(signature.subarray(0, 32))) {
    return "the signature's R is a small-order point";
  }
  if (bigIntFromLE(signature.subarray(32)) >= L) {
    return "the signature is not canonical (S >= L)";
  }
  return null;
}

// --- engines ------------------------------------------------------------------------

let webCryptoAllowed = true;
let webCryptoProbe = null; // Promise<SubtleCrypto | null>, once per page
let lastBackend = null;

/** Allow (default) or forbid WebCrypto, e.g. to test the fallback. */
export function setWebCryptoAllowed(allowed) {
  webCryptoAllowed = allowed;
}

/** "webcrypto" or "noble": which engine checked the last signature equation. */
export function ed25519Backend() {
  return lastBackend;
}

// RFC 8032's base point, a key every engine that supports Ed25519 imports.
const BASE_POINT = fromHex("5866666666666666666666666666666666666666666666666666666666666666");

/** crypto.subtle if it does Ed25519 (Node 20, Chromium 137+, Firefox 129+), else null. */
function webCryptoEd25519() {
  if (!webCryptoAllowed) return Promise.resolve(null);
  if (webCryptoProbe === null) {
    const subtle = globalThis.crypto?.subtle;
    webCryptoProbe = subtle === undefined
      ? Promise.resolve(null)
      : subtle.importKey("raw", BASE_POINT, { name: "Ed25519" }, false, ["verify"])
        .then(() => subtle, () => null);
  }
  return webCryptoProbe;
}

async function verifyWebCrypto(subtle, publicKey, message, signature) {
  let key;
  try {
    key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    return false; // not a point on the curve: libsodium refuses it too
  }
  return subtle.verify({ name: "Ed25519" }, key, signature, message);
}

/** libsodium's equation with noble's arithmetic: encode([S]B - [k]A) == R. */
function verifyNoble(publicKey, message, signature) {
  let A;
  try {
    A = Point.fromBytes(publicKey, false);
  } catch {
    return false; // not a point on the curve
  }
  const R = signature.subarray(0, 32);
  const S = bigIntFromLE(signature.subarray(32));
  const k = bigIntFromLE(sha512(concatBytes(R, publicKey, message))) % L;
  const check = Point.BASE.multiply(S, false).subtract(A.multiply(k, false));
  return equalBytes(check.toBytes(), R);
}

/**
 * Why the Ed25519 `signature` of `message` under `publicKey` is refused, or null when
 * it verifies. All three are Uint8Array.
 */
export async function signatureProblem(publicKey, message, signature) {
  const problem = publicKeyProblem(publicKey) ?? signatureShapeProblem(signature);
  if (problem !== null) return problem;
  const subtle = await webCryptoEd25519();
  let valid;
  if (subtle !== null) {
    lastBackend = "webcrypto";
    valid = await verifyWebCrypto(subtle, publicKey, message, signature);
  } else {
    lastBackend = "noble";
    valid = verifyNoble(publicKey, message, signature);
  }
  return valid ? null : "the Ed25519 signature does not verify";
}
