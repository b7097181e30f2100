// Typed rejections, as in src/tidechain/core/errors.py: bad input is a `Rejected` with
// a stable `code` and a human `reason`; anything else thrown is a bug in the verifier
// and is never reported as a verdict on the input.

export class Rejected extends Error {
  /** @param {string} code stable, machine-readable  @param {string} reason for people */
  constructor(code, reason) {
    super(reason);
    this.name = "Rejected";
    this.code = code;
    this.reason = reason;
  }
}

/** Bytes or text that are not a well-formed canonical encoding. */
export const decodeError = (reason) => new Rejected("malformed", reason);
/** Input beyond one of the bounds in limits.js. */
export const tooLarge = (reason) => new Rejected("too_large", reason);
/** A Merkle proof, signed note, checkpoint or receipt that does not verify. */
export const proofError = (reason) => new Rejected("proof_invalid", reason);
/** An Ed25519 signature that does not verify. */
export const badSignature = (reason) => new Rejected("bad_signature", reason);
/** A contract rule refused the value (evidence metadata). */
export const badArgument = (reason) => new Rejected("bad_argument", reason);

/**
 * Run `fn` (sync or async); a rejection inside is re-raised with `what` before its
 * reason, so the final reason names the verification step that failed, exactly as
 * `_step` does in src/tidechain/client/verify.py.
 */
export async function step(what, fn) {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof Rejected) throw new Rejected(error.code, `${what}: ${error.reason}`);
    throw error;
  }
}
