"""Every bound in tidechain, stated once, with the reason beside it.

Nothing elsewhere may hard-code a size, count or time bound: import it from here.
"""

from __future__ import annotations

# --- encoding -----------------------------------------------------------------
MAX_TX_BYTES = 16 * 1024
"""A deposit is ~300 bytes; 16 KiB leaves room for metadata and later contracts
while keeping a full block (MAX_BLOCK_TXS * MAX_TX_BYTES) under 64 MiB."""

MAX_CBOR_DEPTH = 16
"""Nesting bound for the decoder: our own structures are at most 5 deep."""

MAX_CBOR_ITEMS = 4096
"""Items in one array or map: bounds decoder work on hostile input."""

MAX_META_ENTRIES = 32
"""key=value metadata pairs on one deposit."""

MAX_META_KEY_BYTES = 64
MAX_META_VALUE_BYTES = 1024

MAX_NAME_BYTES = 128
"""Network names, origins, key names in notes."""

# --- transactions ---------------------------------------------------------------
MAX_TX_VALIDITY_MS = 24 * 3600 * 1000
"""A transaction's expiry may be at most this far past the latest block time, so
mempools never hold a transaction for longer than a day."""

# --- contract runtime (changing these changes consensus) ---------------------------
MAX_EVENTS_PER_TX = 16
MAX_WRITES_PER_TX = 64
MAX_INDEX_ENTRIES_PER_TX = 8
MAX_INDEX_KEY_BYTES = 64
"""A contract call is small; these bound the work one transaction can cause."""

# --- blocks and mempool ---------------------------------------------------------
MAX_BLOCK_TXS = 4000
"""Per block. At 5,000 tx/s and sub-second blocks this is never the bottleneck;
it bounds one SQLite transaction and one proposal message (< 64 MiB)."""

MAX_BLOCK_TXS_SHARED = 2000
"""Per block when other validators must re-execute it before voting: a block's build
and validation must stay well inside the consensus timeouts on a 2-core machine.
Measured on four validators on this machine: 4,000-transaction blocks once made rounds
time out (2026-11, before the compiled codec); on 2026-12-07, 2,000 gave 3,482-3,494
committed/s against 3,043-3,204 with 1,000 (fewer fsyncs and rounds per deposit) and
4,000 gave 3,565, with p99 finality 345-399 ms at half load."""

MIN_GOVERNED_TIMEOUT_MS = 100
"""Least base consensus timeout governance may set: below a tenth of a second a round
cannot carry a block between validators on different servers, and rounds would fail."""

MAX_GOVERNED_TIMEOUT_MS = 60_000
"""Most a base consensus timeout or its per-round delta may be set to by governance:
the default `timeout_max_ms`, so a governed value never exceeds the cap of a round."""

MAX_CONTRACT_VERSION = 1000
"""Highest contract version a governance decision may name: versions are small
integers counted up one release at a time."""

MAX_PENDING_ACTIVATIONS = 4
"""Contract-version activations of one contract decided but not yet in effect: bounds
the activation list a block reads for each contract."""

MEMPOOL_MAX_TXS = 50_000
"""Back-pressure point: ~10 s of target load. Past it, submit answers Busy."""

MEMPOOL_MAX_BYTES = 64 * 1024 * 1024

MAX_SEEN_TXS = 16_384
"""Recently decoded transactions a node remembers by their bytes (node/seen.py): a
few blocks' worth, so gossip and proposals of the same transaction meet."""

MAX_DROPPED_REMEMBERED = 10_000
"""Transactions dropped from the mempool (expired, replayed) whose reason a node keeps,
so a submitter asking later learns why; older reasons are forgotten first."""

MAX_SUBMIT_BATCH = 4000
"""Transactions in one POST /v1/tx/batch request (a CBOR array: at most MAX_CBOR_ITEMS)."""

MAX_HTTP_BODY_BYTES = MAX_SUBMIT_BATCH * MAX_TX_BYTES // 4
"""~20 MiB: a full batch of typical (<= 4 KiB) transactions."""

# --- consensus ------------------------------------------------------------------
MAX_PEER_MESSAGE_BYTES = MAX_BLOCK_TXS * MAX_TX_BYTES + 64 * 1024
"""A proposal carries its block: at most MAX_BLOCK_TXS transactions of MAX_TX_BYTES,
plus the header and signatures."""

MAX_SYNC_BLOCKS = 16
"""Blocks in one sync answer, which also stays under MAX_PEER_MESSAGE_BYTES (the
responder stops adding blocks before it would not); the requester asks again from
where the answer ended. Small answers keep one lagging node from starving the others."""

SYNC_PROBE_MS = 2000
"""While no block commits, a node asks a peer (each in turn) this often for blocks
after its head; also how long an unanswered sync request waits before another."""

MAX_VALIDATORS = 64
"""Quorum certificates and trust files stay small; a consortium is tens of members."""

# --- state sync (ADR 0009) --------------------------------------------------------
STATE_SYNC_MIN_BLOCKS = 16
"""A node this many blocks (or more) behind its peers state-syncs instead of
re-executing; closer than that, block sync is cheaper than fetching the state."""

MAX_STATE_CHUNK_RECORDS = 4096
"""State records in one chunk (one CBOR array of keys, one of values: MAX_CBOR_ITEMS)."""

MAX_STATE_CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes of keys and values in one chunk: well under MAX_PEER_MESSAGE_BYTES."""

MAX_STATE_SYNC_DEPTH = 3
"""Prefix depth of the chunking: 16**3 = 4,096 chunks (one CBOR array in the offer),
so state sync serves states of up to 16M records at MAX_STATE_CHUNK_RECORDS each."""

MAX_SYNC_HEADERS = 512
"""Headers (with certificates, ~1 KiB each with 4 validators) in one answer."""

MAX_ENTRIES_ANSWER_BYTES = 4 * 1024 * 1024
"""Entry bytes in one answer (whole blocks; at least one block even if larger)."""

# --- genesis ------------------------------------------------------------------------
MAX_GENESIS_ORGS = 64
"""Founding organisations in a genesis: a consortium, not an open network."""

MAX_GENESIS_MEMBERS_PER_ORG = 64
"""Initial member certificates per founding organisation; the rest enrol on chain."""

MAX_CERT_DER_BYTES = 8 * 1024
"""One X.509 certificate's DER, checked before parsing (member certificates, org CAs,
genesis certificates). Ours are ~500 bytes; 8 KiB bounds parsing work on hostile input
while leaving room for long legal names."""

MAX_UBL_BYTES = 2 * 1024 * 1024
"""One UBL 2.1 invoice document to import. The real EN 16931 examples are 5-22 KiB; an
invoice of 16 lines never needs more than a few hundred KiB, even with long notes."""

CLOCK_PRECISION_MS = 500
"""How far apart two honest validators' clocks may be (NTP keeps them far closer). A
proposed block time more than this ahead of a validator's clock is refused."""

BLOCK_TIME_DELAY_MS = 3000
"""How old a new proposal's block time may be when it arrives (building and sending
the block), beyond CLOCK_PRECISION_MS; grows by a tenth per round, so a slow network
still agrees after a few rounds (proposer-based timestamps, docs/adr/0006)."""

BLOCK_INTERVAL_MS = 50
"""How long a proposer waits for more transactions before proposing a non-empty block."""

FUTURE_HEIGHT_WINDOW = 1
"""Messages for the next height are kept (peers that committed first already vote
there); anything further ahead means this node is behind and needs block sync, not
consensus messages, so it is dropped unread."""

MAX_ROUNDS_AHEAD = 8
"""Votes and proposals more than this many rounds ahead of ours are not stored (their
round is still counted for round skipping, one number per validator), so a faulty
peer cannot make us store votes for millions of rounds."""

MAX_ROUNDS_KEPT = 32
"""Rounds of votes and proposals kept per height. Older rounds are dropped first,
except the rounds we are locked on or hold a valid value from. Losing an old round
can only cost liveness (a polka we can no longer prove), never safety."""

MAX_PROPOSALS_PER_ROUND = 2
"""Distinct proposals kept per round: the first one seen, and one conflicting one from
an equivocating proposer (so we can still commit it if the network decides it). A
further one is kept only if f+1 validators voted for it."""

MAX_FUTURE_MESSAGES_PER_VALIDATOR = 8
"""Next-height messages buffered per validator: a proposal and two votes for a few
rounds. Per validator, so a faulty one cannot crowd out the honest ones."""

MAX_EVIDENCE = 128
"""Equivocation records kept (the newest); each is two signed statements, < 400 bytes."""

# --- proofs and receipts --------------------------------------------------------
MAX_PROOF_HASHES = 64
"""A Merkle path in a log of at most 2**63 entries has at most 63 hashes."""

MAX_RECEIPT_BYTES = 256 * 1024
MAX_TRUST_FILE_BYTES = 64 * 1024
MAX_NOTE_SIGNATURES = MAX_VALIDATORS + 16

MAX_NOTE_BYTES = 64 * 1024
"""A checkpoint note with MAX_NOTE_SIGNATURES signature lines is under 16 KiB."""

# --- the node's runtime -------------------------------------------------------------
TICK_MS = 10
"""Consensus timers are derived from ticks; 10 ms bounds the added commit latency."""
MAX_WAITERS = 100_000
"""Submitters blocked on a commit at once; beyond it `wait=true` answers Busy."""
VERIFY_THREADS = 2
"""libsodium releases the GIL during verification (PyNaCl calls it through cffi), so
two threads verify on both cores while the event loop keeps serving."""

# --- queries --------------------------------------------------------------------
MAX_QUERY_RESULTS = 1000
"""Rows one query returns (e.g. deposits of one digest); more need paging."""
DEFAULT_PAGE_SIZE = 50
"""Items on a page of a list when the caller gives no `limit`."""
MAX_PAGE_SIZE = 500
"""Items on one page at most: a page is one bounded read of the store and one answer."""
MAX_CURSOR_BYTES = 200
"""A cursor is a log index or a state key after a prefix (state keys are short)."""
MAX_TX_SCAN = 5_000
"""Log entries one page of a filtered transaction list reads at most; a page that
reaches it ends early with a `next` cursor, so a rare filter never scans the log."""

COMMIT_WAIT_MAX_MS = 60_000
"""Longest an API call may block waiting for a transaction to commit."""

# --- read rate limit (per caller) ---------------------------------------------------
READS_PER_S_PER_CALLER = 200
"""Sustained REST reads one caller (a member's key, or an anonymous caller's address)
may make per second: an explorer or an indexer paging through the log makes tens a
second, so honest clients should not meet it, while one caller alone cannot take all of
a node's read capacity away from the others and from consensus."""

READ_BURST_PER_CALLER = 2 * READS_PER_S_PER_CALLER
"""Reads a caller may make at once (the size of its bucket: two seconds' worth), so a
client opening a view that fans out into many reads, or catching up after a reconnect,
is not refused."""

MAX_API_READS_PER_S = 1_000_000
"""The highest per-caller rate node.toml may set (`api_reads_per_s`): effectively
unlimited, for a trusted indexer or a benchmark on loopback."""

MAX_RATE_LIMITED_CALLERS = 10_000
"""Callers whose read budget a node tracks at once (api/ratelimit.py). Anonymous callers
are keyed by their address, which a client chooses, so the map must be bounded; an
entry takes ~200 bytes (measured), so the whole map stays near 2 MiB. Past it, idle
callers are forgotten first, then the least recently seen, which costs at most one
extra burst per forgotten caller."""

# --- signed reads (RFC 9421, identity/httpsig.py, ADR 0015) -------------------------
DEFAULT_SIGNATURE_LIFETIME_S = 60
"""How long the SDK's request signatures stay valid (`expires - created`). A read is sent
the moment it is signed, so a minute covers a slow network and a retry, while a captured
signature is soon useless and the nonce book forgets it soon."""

MAX_SIGNATURE_LIFETIME_S = 300
"""Longest `expires - created` a node accepts. The nonce book must remember a nonce for
as long as its signature is acceptable, so this bounds how long an entry stays; five
minutes leaves room for clients that sign a little ahead of sending."""

MAX_CLOCK_SKEW_S = 30
"""How far a reader's clock may be from the node's: `created` up to this far in the
future and `expires` up to this far in the past still pass. NTP keeps machines within a
second; 30 s also admits a laptop without NTP, and only lengthens how long the nonce
book remembers each nonce by as much."""

MAX_NONCE_CHARS = 64
"""Characters in a signature's nonce. The SDK sends 22 (16 random bytes, base64url);
64 admits other clients' UUIDs or hex strings while bounding what the nonce book
stores per entry."""

MAX_REMEMBERED_NONCES = 300_000
"""Nonces a node's replay guard (NonceBook) remembers at once. A nonce is kept until its
signature expires plus MAX_CLOCK_SKEW_S (90 s at the default lifetime), so this admits
about 3,300 signed reads a second (about 900 if every client used the longest
lifetime), above the ~2,400 a node verifies on two cores (docs/benchmarks.md); at ~400
bytes an entry the book stays under 120 MiB. When it is full, new signed reads are
refused with Busy until entries expire: forgetting a nonce whose signature is still
acceptable would let that signature be replayed."""

MAX_SIGNATURE_FIELD_BYTES = 1024
"""Bytes of a Signature-Input or Signature header the node parses: ours are at most 260
and 95 bytes; the bound keeps the structured-field parser's work small on hostile input."""
