// Every bound the verifier enforces, stated once, with the same values and reasons as
// src/tidechain/core/limits.py (tests/test_js_verifier.py checks that they agree): a
// browser given a hostile file must refuse it for the same reason `tide verify` would,
// and before doing much work on it.

/** A receipt file: one entry, a Merkle path and a checkpoint are a few KiB. */
export const MAX_RECEIPT_BYTES = 256 * 1024;

/** A Merkle path in a log of at most 2**63 entries has at most 63 hashes. */
export const MAX_PROOF_HASHES = 64;

/** A trust file lists at most MAX_VALIDATORS keys, each under 200 bytes. */
export const MAX_TRUST_FILE_BYTES = 64 * 1024;

/** Quorum certificates and trust files stay small; a consortium is tens of members. */
export const MAX_VALIDATORS = 64;

/** Signature lines on one note: every validator, plus some unknown witnesses. */
export const MAX_NOTE_SIGNATURES = MAX_VALIDATORS + 16;

/** A checkpoint note with MAX_NOTE_SIGNATURES signature lines is under 16 KiB. */
export const MAX_NOTE_BYTES = 64 * 1024;

/** Network names, origins, key names in notes (UTF-8 bytes). */
export const MAX_NAME_BYTES = 128;

/** Nesting bound of the CBOR decoder: our own structures are at most 5 deep. */
export const MAX_CBOR_DEPTH = 16;

/** Items in one CBOR array or map: bounds decoder work on hostile input. */
export const MAX_CBOR_ITEMS = 4096;

/** A signed transaction envelope (and so its body) is at most 16 KiB. */
export const MAX_TX_BYTES = 16 * 1024;

/** key=value metadata pairs on one deposit, and their sizes in UTF-8 bytes. */
export const MAX_META_ENTRIES = 32;
export const MAX_META_KEY_BYTES = 64;
export const MAX_META_VALUE_BYTES = 1024;

/** Sizes beyond a signed 64-bit integer are refused (core/checkpoint.py MAX_TREE_SIZE). */
export const MAX_TREE_SIZE = 2n ** 63n - 1n;

/**
 * A document the page hashes: WebCrypto does not stream, so the tab holds it whole.
 * Larger documents are for `tide verify`, which hashes them in chunks.
 */
export const MAX_DOCUMENT_BYTES = 512 * 1024 * 1024;
