"""What the node core is told (inputs) and what it asks its shell to do (effects).

`NodeCore.step(input) -> list[Effect]` (node/core.py) decides; the shell carries the
effects out, in order (docs/adr/0020). Writes are effects too: the core only ever
reads the store, so the simulator can run the very same core on an in-memory store,
with its own network and clock.

Order is the contract. A write is executed before anything after it in the list, and
a message is never sent before a write that precedes it: a vote goes out only once the
safety record that covers it is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidechain.consensus import Broadcast, CommitCertificate, Event, SendTo
from tidechain.core.errors import PeerError, Rejected
from tidechain.ledger.chain import PreparedBlock
from tidechain.ledger.runtime import MissingContractVersion
from tidechain.ledger.state_tree import StateTree
from tidechain.ledger.statesync import ImportedBlock
from tidechain.ledger.types import SignedTx, TxResult
from tidechain.node.wire import OutgoingMessage, PeerMessage, SyncBlocks

# --- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsensusEvent:
    """A consensus event from the shell: `Start` and `Tick` (its clock),
    `TransactionsAvailable`."""

    event: Event


@dataclass(frozen=True)
class PollSync:
    """Once per tick: block sync asks peers in turn, state sync sends its requests."""

    now_ms: int


@dataclass(frozen=True)
class PeerInput:
    """A decoded peer message; gossiped transactions' signatures already checked."""

    sender: str
    message: PeerMessage
    now_ms: int


@dataclass(frozen=True)
class Prefetch:
    """A full batch of synced blocks arrived: ask for the next one before applying it."""

    sender: str
    message: SyncBlocks
    now_ms: int


@dataclass(frozen=True)
class Submit:
    """Decoded, signature-checked transactions from clients (or a peer's gossip)."""

    txs: tuple[SignedTx, ...]
    now_ms: int
    from_peer: bool = False


@dataclass(frozen=True)
class Wake:
    """Transactions may be pending: let consensus start a round (after a submit has
    been answered, so a block is never built inside a submit request)."""


@dataclass(frozen=True)
class CertifiedBlock:
    """An executed block whose certificate the caller verified (tools that build a
    certified chain)."""

    prepared: PreparedBlock
    certificate: CommitCertificate


@dataclass(frozen=True)
class StateSyncStored:
    """The shell made `FinishStateSync` durable: switch the head to it."""

    now_ms: int


@dataclass(frozen=True)
class StoreFailed:
    """A state sync write failed (the import process, not a peer): start over later."""

    reason: str
    now_ms: int


NodeInput = (ConsensusEvent | PollSync | PeerInput | Prefetch | Submit | Wake | CertifiedBlock
             | StateSyncStored | StoreFailed)

# --- effects: writes --------------------------------------------------------------------


@dataclass(frozen=True)
class SaveSafety:
    """Make the replica's safety record (and its lock with the proof) durable before
    any message signed under it leaves."""

    state: bytes
    lock: bytes | None


@dataclass(frozen=True)
class CommitBlock:
    """Make a block, its certificate and its quorum checkpoint durable."""

    prepared: PreparedBlock
    certificate: bytes
    checkpoint: str


@dataclass(frozen=True)
class PrepareImports:
    """Start the state sync importer (it may fail: `StoreFailed`)."""


@dataclass(frozen=True)
class ImportBlocks:
    """Stage verified blocks beside the chain (state sync)."""

    blocks: tuple[tuple[ImportedBlock, bytes, str], ...]


@dataclass(frozen=True)
class ImportState:
    """Stage verified state records beside the chain (state sync)."""

    records: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class FinishStateSync:
    """Switch the store to what a state sync staged, in one transaction; the shell then
    answers `StateSyncStored` (or `StoreFailed`)."""

    blocks: int
    entries: int
    records: int
    state: StateTree = field(repr=False, compare=False)
    """The verified state, in memory: the store keeps its nodes (ADR 0021)."""


@dataclass(frozen=True)
class AbandonStateSync:
    """Drop what an unfinished state sync staged."""


Write = (SaveSafety | CommitBlock | PrepareImports | ImportBlocks | ImportState
         | FinishStateSync | AbandonStateSync)
STATE_SYNC_WRITES = (PrepareImports, ImportBlocks, ImportState, FinishStateSync)

# --- effects: messages and outcomes -----------------------------------------------------


@dataclass(frozen=True)
class Gossip:
    """Transactions clients gave this node, for the other validators' mempools."""

    txs: tuple[SignedTx, ...]


@dataclass(frozen=True)
class Reply:
    """Sync traffic to one peer."""

    peer: str
    message: OutgoingMessage


@dataclass(frozen=True)
class Committed:
    """What a waiting submitter learns when its transaction commits (or is dropped)."""

    tx_id: bytes
    log_index: int | None
    height: int | None
    result: TxResult | None
    rejection: Rejected | None = None


@dataclass(frozen=True)
class Admitted:
    """The answer to a `Submit`: None or the typed rejection, one per transaction."""

    outcomes: tuple[Rejected | None, ...]


@dataclass(frozen=True)
class CheckpointCommitted:
    """The head moved (consensus, block sync or state sync) and is durable: what
    background services attach to (event streams, witness cosigning, certificate
    warnings)."""

    height: int
    block_hash: bytes
    checkpoint: str


@dataclass(frozen=True)
class PeerFault:
    """A peer sent what no honest peer sends: the shell drops the connection and logs
    it by name (`PeerError`), after carrying out the effects before this one."""

    error: PeerError


@dataclass(frozen=True)
class Halted:
    """The chain needs a contract version this software lacks: the shell stops the
    process after carrying out the effects before this one."""

    reason: MissingContractVersion


Effect = (Write | Broadcast | SendTo | Gossip | Reply | Committed | Admitted
          | CheckpointCommitted | PeerFault | Halted)
