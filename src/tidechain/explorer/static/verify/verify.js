// The browser's `tide verify`: a receipt file and a trust file (and, optionally, the
// document), checked with no node and no network, refusing everything
// src/tidechain/client/verify.py `verify_deposit_receipt` refuses. Step by step:
//
// 1. the checkpoint in the receipt is signed by a quorum of the validators the trust
//    file lists (and is of the trusted log, when the trust file names its origin);
// 2. the receipt's entry is in that log at the stated index (RFC 9162 inclusion proof);
// 3. the entry is a well-formed tidechain log entry whose transaction carries a valid
//    Ed25519 signature of its sender and belongs to the log's chain;
// 4. the transaction is an evidence deposit (or amendment) that succeeded on chain;
// 5. when a document is given, its SHA-256 is the deposited digest.
//
// Each failed step gives {ok: false, code, reason} with the reason naming the step.

import { Rejected, decodeError, proofError, step } from "./errors.js";
import { equalBytes, jsonInt, toHex } from "./bytes.js";
import { parseTrust } from "./trust.js";
import { verifyReceiptProof } from "./receipt.js";
import {
  checkEntryChain, decodeLogEntry, depositArgs, isCosigned, verifyTxSignature,
} from "./entry.js";
import { sha256, sha256Backend, setWebCryptoAllowed as allowSha256 } from "./sha256.js";
import { ed25519Backend, setWebCryptoAllowed as allowEd25519 } from "./ed25519.js";

/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: four-digit years only. */
const MIN_TIME_MS = -62135596800000n;
const MAX_TIME_MS = 253402300799999n;

/** Block time as ISO-8601 UTC with milliseconds (core/timefmt.py), or null out of range. */
export function isoUtc(timeMs) {
  if (timeMs < MIN_TIME_MS || timeMs > MAX_TIME_MS) return null;
  return new Date(Number(timeMs)).toISOString();
}

/** Use the browser's WebCrypto where it exists (default), or force the pure-JS engines. */
export function useWebCrypto(allowed) {
  allowSha256(allowed);
  allowEd25519(allowed);
}

/** Which engines did the last SHA-256 and Ed25519 work: "webcrypto" or "noble". */
export function cryptoBackends() {
  return { sha256: sha256Backend(), ed25519: ed25519Backend() };
}

/** Parse a trust file, the reason prefixed as `tide verify` prefixes it. */
export function loadTrust(trustText) {
  return step("trust file is not valid", () => parseTrust(trustText));
}

/**
 * What a receipt already verified against a trust file proves about an evidence
 * deposit (client/verify.py `deposit_proven`); throws a Rejected naming the step.
 */
export async function depositProven(verified, documentDigest = null) {
  const entry = await step("the receipt's entry is not a valid tidechain log entry",
    () => decodeLogEntry(verified.entry));
  await step("the transaction in the receipt is not validly signed by its sender",
    () => verifyTxSignature(entry.tx));
  const { digest, meta, amends } = await step("the receipt is not for an evidence deposit",
    () => {
      checkEntryChain(entry, verified.checkpoint.origin);
      return depositArgs(entry);
    });
  if (documentDigest !== null) {
    await step("document does not match", () => {
      if (!equalBytes(documentDigest, digest)) {
        throw proofError(`the document's SHA-256 is ${toHex(documentDigest)}, but the receipt ` +
          `is for ${toHex(digest)}: a different or modified document`);
      }
    });
  }
  // `tide verify` prints the block time and refuses one no four-digit year can show (a
  // chain whose validators keep their clocks never makes one): so do we.
  const time = isoUtc(entry.timeMs);
  if (time === null) {
    throw decodeError(`the block time ${entry.timeMs} ms is out of range (years 1 to 9999)`);
  }
  const body = entry.tx.body;
  return {
    digest: toHex(digest),
    meta: Object.fromEntries([...meta].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    depositor: toHex(body.sender),
    contract: body.contract,
    method: body.method,
    call: `${body.contract}.${body.method}`,
    amends: amends === null ? null : jsonInt(amends),
    height: jsonInt(entry.height),
    time_ms: jsonInt(entry.timeMs),
    time,
    log_index: jsonInt(verified.index),
    tx_id: toHex(entry.tx.txId),
    chain_id: toHex(body.chainId),
    origin: verified.checkpoint.origin,
    checkpoint_size: jsonInt(verified.checkpoint.size),
    signers: verified.signers,
    quorum: verified.quorum,
    validators: verified.validators,
    cosigned: isCosigned(entry),
  };
}

/** The verification as a promise of the proven facts; throws Rejected. */
export async function verifyDepositReceipt(receiptText, trustText, documentBytes = null) {
  const trust = await loadTrust(trustText);
  const verified = await step("receipt does not verify against the trust file",
    () => verifyReceiptProof(receiptText, trust));
  const documentDigest = documentBytes === null ? null : await sha256(documentBytes);
  return depositProven(verified, documentDigest);
}

/**
 * Verify an evidence receipt offline. `receiptText` and `trustText` are strings or
 * UTF-8 bytes; `documentBytes`, when given (a Uint8Array), must hash to the deposited
 * digest. Returns {ok: true, proven} or {ok: false, code, reason}. Anything thrown
 * that is not a rejection is a bug and propagates: it is never a verdict.
 */
export async function verifyReceipt(receiptText, trustText, documentBytes = null) {
  try {
    return { ok: true, proven: await verifyDepositReceipt(receiptText, trustText, documentBytes) };
  } catch (error) {
    if (error instanceof Rejected) return { ok: false, code: error.code, reason: error.reason };
    throw error;
  }
}
