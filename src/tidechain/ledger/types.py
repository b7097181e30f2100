"""The ledger's data: transactions, log entries, block headers, genesis.

Every structure has exactly one byte form, its deterministic CBOR encoding
(`tidechain.core.cbor`, ADR 0001). Hashes are SHA-256 of those bytes. The layouts
below are published in docs/encoding.md with vectors; changing a field name or type
is a hard fork.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidechain.core import cbor
from tidechain.core.checkpoint import Checkpoint
from tidechain.core.crypto import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SigningKey, sha256, verify
from tidechain.core.errors import DecodeError, TooLarge, invariant
from tidechain.core.limits import (
    MAX_CBOR_DEPTH,
    MAX_CBOR_ITEMS,
    MAX_CERT_DER_BYTES,
    MAX_CONTRACT_VERSION,
    MAX_GENESIS_MEMBERS_PER_ORG,
    MAX_GENESIS_ORGS,
    MAX_NAME_BYTES,
    MAX_TX_BYTES,
    MAX_VALIDATORS,
)
from tidechain.identity.roles import Role

if TYPE_CHECKING:
    from tidechain.identity.certs import Member, OrgCa

FORMAT_VERSION = 1
HASH_BYTES = 32
TX_SIGNING_DOMAIN = b"tidechain/tx/v1\n"
"""Prefix of the bytes a transaction signature covers, so a transaction signature can
never be replayed as a signature on a note, vote or any other tidechain message."""

MIN_NONCE_BYTES = 8
MAX_NONCE_BYTES = 32
MAX_IDENT_BYTES = 64
"""Contract and method names."""


def _require_map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a CBOR map")
    return value


def _field(m: dict[str, Any], name: str, kind: type, what: str) -> Any:
    # Checked here too: `name in m` on a list or str would "work" and then m[name] would
    # raise TypeError, which is not a typed rejection.
    _require_map(m, what)
    if name not in m:
        raise DecodeError(f"{what}: missing field {name!r}")
    value = m[name]
    # bool is a subclass of int: never accept it where an integer is wanted.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError(f"{what}: field {name!r} must be {kind.__name__}")
    return value


def _exact_keys(m: dict[str, Any], keys: set[str], what: str) -> None:
    extra = set(m) - keys
    if extra:
        raise DecodeError(f"{what}: unknown field(s) {sorted(map(str, extra))}")


def _hash32(m: dict[str, Any], name: str, what: str) -> bytes:
    value: bytes = _field(m, name, bytes, what)
    if len(value) != HASH_BYTES:
        raise DecodeError(f"{what}: field {name!r} must be {HASH_BYTES} bytes")
    return value


def _uint(m: dict[str, Any], name: str, what: str) -> int:
    value: int = _field(m, name, int, what)
    if value < 0:
        raise DecodeError(f"{what}: field {name!r} must be non-negative")
    return value


def _ident(m: dict[str, Any], name: str, what: str) -> str:
    value: str = _field(m, name, str, what)
    if not value or len(value.encode()) > MAX_IDENT_BYTES or not value.isascii():
        raise DecodeError(f"{what}: field {name!r} must be 1..{MAX_IDENT_BYTES} ASCII chars")
    return value


def _note_name(value: str, what: str, *, allow_slash: bool) -> str:
    """A name that can appear in a C2SP signed note (origin line or key name): 1..
    MAX_NAME_BYTES of printable ASCII without space or '+' (the note format forbids
    both in key names, and a newline would end the origin line)."""
    ok = (
        0 < len(value) <= MAX_NAME_BYTES
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and "+" not in value
        and (allow_slash or "/" not in value)
    )
    if not ok:
        raise DecodeError(f"{what}: bad name {value[:MAX_NAME_BYTES]!r}")
    return value


def check_key_name(value: str, what: str) -> str:
    """A validator's C2SP key name (may contain '/'); DecodeError otherwise."""
    return _note_name(value, what, allow_slash=True)


def _format_version(m: dict[str, Any], what: str) -> None:
    version = _uint(m, "v", what)
    if version != FORMAT_VERSION:
        raise DecodeError(f"{what}: unsupported format version {version}")


# --- transactions ------------------------------------------------------------------


@dataclass(frozen=True)
class TxBody:
    """What the submitter signs."""

    chain_id: bytes
    sender: bytes  # Ed25519 public key
    nonce: bytes  # unique per transaction, chosen by the client
    expires_ms: int  # block time after which the transaction may not be committed
    contract: str
    method: str
    args: dict[str, Any]

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "chain": self.chain_id,
            "from": self.sender,
            "nonce": self.nonce,
            "exp": self.expires_ms,
            "contract": self.contract,
            "method": self.method,
            "args": self.args,
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def from_cbor(cls, value: Any) -> TxBody:
        what = "transaction body"
        m = _require_map(value, what)
        _exact_keys(m, {"v", "chain", "from", "nonce", "exp", "contract", "method", "args"}, what)
        _format_version(m, what)
        sender: bytes = _field(m, "from", bytes, what)
        if len(sender) != PUBLIC_KEY_BYTES:
            raise DecodeError(f"{what}: 'from' must be a {PUBLIC_KEY_BYTES}-byte Ed25519 key")
        nonce: bytes = _field(m, "nonce", bytes, what)
        if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
            raise DecodeError(f"{what}: nonce must be {MIN_NONCE_BYTES}..{MAX_NONCE_BYTES} bytes")
        args = _require_map(_field(m, "args", dict, what), f"{what} args")
        return cls(
            chain_id=_hash32(m, "chain", what),
            sender=sender,
            nonce=nonce,
            expires_ms=_uint(m, "exp", what),
            contract=_ident(m, "contract", what),
            method=_ident(m, "method", what),
            args=args,
        )


@dataclass(frozen=True)
class SignedTx:
    """A transaction as submitted and as stored in blocks: the exact signed body bytes
    and the signature. `tx_id` = SHA-256(body bytes)."""

    body_bytes: bytes
    signature: bytes
    body: TxBody = field(compare=False)
    tx_id: bytes = field(compare=False)
    encoded: bytes = field(default=b"", compare=False, repr=False)
    """The envelope's canonical bytes, computed once (or kept from a strict decode)."""

    def __post_init__(self) -> None:
        if not self.encoded:
            object.__setattr__(self, "encoded", cbor.encode(self.to_cbor()))

    def to_cbor(self) -> dict[str, Any]:
        return {"body": self.body_bytes, "sig": self.signature}

    def encode(self) -> bytes:
        return self.encoded

    def verify_signature(self) -> None:
        """Raise BadSignature unless the sender signed the body."""
        verify(self.body.sender, TX_SIGNING_DOMAIN + self.body_bytes, self.signature)

    @classmethod
    def create(cls, body: TxBody, key: SigningKey) -> SignedTx:
        body_bytes = body.encode()
        signature = key.sign(TX_SIGNING_DOMAIN + body_bytes)
        tx = cls(body_bytes, signature, body, sha256(body_bytes))
        # The limit is on the envelope, the bytes `decode` sees: checking only the body
        # would let us create a transaction that every node refuses.
        envelope_bytes = len(tx.encode())
        if envelope_bytes > MAX_TX_BYTES:
            raise TooLarge(f"transaction is {envelope_bytes} bytes, limit {MAX_TX_BYTES}")
        return tx

    @classmethod
    def from_cbor(cls, value: Any, encoded: bytes = b"") -> SignedTx:
        what = "transaction"
        if isinstance(value, cbor.Encoded):  # as `to_cbor` returns it
            return cls.decode(value.data)
        m = _require_map(value, what)
        _exact_keys(m, {"body", "sig"}, what)
        body_bytes: bytes = _field(m, "body", bytes, what)
        if len(body_bytes) > MAX_TX_BYTES:
            raise TooLarge(f"{what}: body is {len(body_bytes)} bytes, limit {MAX_TX_BYTES}")
        signature: bytes = _field(m, "sig", bytes, what)
        if len(signature) != SIGNATURE_BYTES:
            raise DecodeError(f"{what}: signature must be {SIGNATURE_BYTES} bytes")
        body = TxBody.from_cbor(cbor.decode(body_bytes))
        return cls(body_bytes, signature, body, sha256(body_bytes), encoded)

    @classmethod
    def decode(cls, data: bytes) -> SignedTx:
        """Decode a transaction from untrusted bytes (size-checked, strict)."""
        _check_tx_size(data)
        if _decode_signed_tx is not None and type(data) is bytes:
            # The compiled twin of `from_cbor`'s checks: every transaction a node is
            # sent comes through here (4 of its 5.3 µs were these checks in Python).
            try:
                (body_bytes, signature, chain_id, sender, nonce, expires_ms, contract, method,
                 args) = _decode_signed_tx(data, MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, _TX_LIMITS)
            except ValueError:
                pass  # refused: the reference below raises the typed rejection
            else:
                # Built without the dataclasses' __init__: a frozen one sets each field
                # through object.__setattr__, which cost more than the compiled checks
                # themselves (3.35 -> 2.42 us per decode in a micro-benchmark, 2026-12-07).
                # The attributes are exactly the constructors'; `__post_init__` has
                # nothing to do, as `encoded` is given. tests/test_tx_native.py compares
                # every attribute with the reference decoder's.
                body = _new(TxBody)
                vars(body).update(chain_id=chain_id, sender=sender, nonce=nonce,
                                  expires_ms=expires_ms, contract=contract, method=method,
                                  args=args)
                tx = _new(cls)
                vars(tx).update(body_bytes=body_bytes, signature=signature, body=body,
                                tx_id=sha256(body_bytes), encoded=data)
                return tx
        # The decoder is strict, so `data` is exactly the canonical encoding: keep it.
        return cls.from_cbor(cbor.decode(data), bytes(data))

    @classmethod
    def decode_reference(cls, data: bytes) -> SignedTx:
        """`decode` in Python alone: the specification its compiled twin is tested
        against (tests/test_tx_native.py)."""
        _check_tx_size(data)
        return cls.from_cbor(cbor.decode_reference(data), bytes(data))


def _check_tx_size(data: bytes) -> None:
    if len(data) > MAX_TX_BYTES:
        raise TooLarge(f"transaction is {len(data)} bytes, limit {MAX_TX_BYTES}")


_decode_signed_tx = cbor.compiled("decode_signed_tx")
_new = object.__new__
_TX_LIMITS = (FORMAT_VERSION, HASH_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, MIN_NONCE_BYTES,
              MAX_NONCE_BYTES, MAX_IDENT_BYTES, MAX_TX_BYTES)
"""The bounds the compiled twin checks, passed to it so they live only here."""


# --- results and log entries -------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.kind, "data": self.data}

    @classmethod
    def from_cbor(cls, value: Any) -> Event:
        what = "event"
        m = _require_map(value, what)
        _exact_keys(m, {"type", "data"}, what)
        return cls(_field(m, "type", str, what), _field(m, "data", dict, what))


@dataclass(frozen=True)
class TxResult:
    """Outcome of executing a committed transaction. A failed transaction is still
    committed (its nonce is spent) but changes no state."""

    ok: bool
    events: tuple[Event, ...] = ()
    error: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        # to_cbor writes only one branch's fields; anything else would be silently lost.
        if self.ok:
            invariant(not self.error and not self.reason, "a successful result has no error")
        else:
            invariant(not self.events, "a failed result has no events")

    def to_cbor(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "events": [e.to_cbor() for e in self.events]}
        return {"ok": False, "error": self.error, "reason": self.reason}

    @classmethod
    def from_cbor(cls, value: Any) -> TxResult:
        what = "result"
        m = _require_map(value, what)
        if _field(m, "ok", bool, what):
            _exact_keys(m, {"ok", "events"}, what)
            events = tuple(Event.from_cbor(e) for e in _field(m, "events", list, what))
            return cls(True, events)
        _exact_keys(m, {"ok", "error", "reason"}, what)
        return cls(False, (), _field(m, "error", str, what), _field(m, "reason", str, what))


@dataclass(frozen=True)
class LogEntry:
    """One entry of the global log: a committed transaction with where, when and how
    it was committed. Its canonical bytes are the Merkle leaf data and the `extra` of
    a receipt."""

    tx: SignedTx
    height: int
    time_ms: int
    result: TxResult

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "tx": cbor.Encoded(self.tx.encoded),  # spliced: encoded once, on arrival
            "height": self.height,
            "time": self.time_ms,
            "result": self.result.to_cbor(),
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> LogEntry:
        return cls.from_cbor(cbor.decode(data))

    @classmethod
    def from_cbor(cls, value: Any) -> LogEntry:
        what = "log entry"
        m = _require_map(value, what)
        _exact_keys(m, {"v", "tx", "height", "time", "result"}, what)
        _format_version(m, what)
        tx = m.get("tx")
        if not isinstance(tx, cbor.Encoded):  # `to_cbor` splices the envelope pre-encoded
            tx = _field(m, "tx", dict, what)
        return cls(
            tx=SignedTx.from_cbor(tx),
            height=_uint(m, "height", what),
            time_ms=_uint(m, "time", what),
            result=TxResult.from_cbor(_field(m, "result", dict, what)),
        )


# --- blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockHeader:
    chain_id: bytes
    height: int
    prev_hash: bytes
    time_ms: int
    proposer: str
    tx_root: bytes  # RFC 6962 root over the transactions' encodings, in block order
    tx_count: int
    log_size: int  # after this block
    log_root: bytes
    state_root: bytes
    validators_hash: bytes
    """The validator set that signs the *next* block: the set in this block's resulting
    state (ADR 0011). Block h is signed by the set block h - 1 names (block 1: the
    genesis set), so the chain of sets follows from the genesis and the headers."""

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "chain": self.chain_id,
            "height": self.height,
            "prev": self.prev_hash,
            "time": self.time_ms,
            "proposer": self.proposer,
            "txroot": self.tx_root,
            "txcount": self.tx_count,
            "logsize": self.log_size,
            "logroot": self.log_root,
            "state": self.state_root,
            "validators": self.validators_hash,
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @functools.cached_property
    def block_hash(self) -> bytes:
        return sha256(self.encode())

    def checkpoint_body(self, origin: str) -> bytes:
        """The C2SP checkpoint this block produces, which validators sign."""
        return checkpoint_body(origin, self.log_size, self.log_root).encode()

    @classmethod
    def from_cbor(cls, value: Any) -> BlockHeader:
        what = "block header"
        m = _require_map(value, what)
        keys = {"v", "chain", "height", "prev", "time", "proposer", "txroot", "txcount",
                "logsize", "logroot", "state", "validators"}
        _exact_keys(m, keys, what)
        _format_version(m, what)
        return cls(
            chain_id=_hash32(m, "chain", what),
            height=_uint(m, "height", what),
            prev_hash=_hash32(m, "prev", what),
            time_ms=_uint(m, "time", what),
            proposer=_field(m, "proposer", str, what),
            tx_root=_hash32(m, "txroot", what),
            tx_count=_uint(m, "txcount", what),
            log_size=_uint(m, "logsize", what),
            log_root=_hash32(m, "logroot", what),
            state_root=_hash32(m, "state", what),
            validators_hash=_hash32(m, "validators", what),
        )


# --- genesis -----------------------------------------------------------------------


@dataclass(frozen=True)
class GenesisValidator:
    name: str  # C2SP key name, "<network>/<node>"
    public_key: bytes

    @classmethod
    def from_cbor(cls, value: Any) -> GenesisValidator:
        what = "genesis validator"
        m = _require_map(value, what)
        _exact_keys(m, {"name", "key"}, what)
        key: bytes = _field(m, "key", bytes, what)
        if len(key) != PUBLIC_KEY_BYTES:
            raise DecodeError(f"{what}: 'key' must be a {PUBLIC_KEY_BYTES}-byte Ed25519 key")
        return cls(_note_name(_field(m, "name", str, what), what, allow_slash=True), key)


@dataclass(frozen=True)
class GenesisOrg:
    """A founding organisation: its CA certificate and its initial members'
    certificates (DER). The org id, legal name and USCC are read from the CA."""

    ca: bytes
    members: tuple[bytes, ...]

    def to_cbor(self) -> dict[str, Any]:
        return {"ca": self.ca, "members": list(self.members)}

    @classmethod
    def from_cbor(cls, value: Any) -> GenesisOrg:
        what = "genesis organisation"
        m = _require_map(value, what)
        _exact_keys(m, {"ca", "members"}, what)
        ca: bytes = _field(m, "ca", bytes, what)
        members: list[Any] = _field(m, "members", list, what)
        if len(members) > MAX_GENESIS_MEMBERS_PER_ORG:
            raise TooLarge(f"{what}: {len(members)} members, limit {MAX_GENESIS_MEMBERS_PER_ORG}")
        for der in [ca, *members]:
            if not isinstance(der, bytes):
                raise DecodeError(f"{what}: certificates must be byte strings")
            if len(der) > MAX_CERT_DER_BYTES:
                raise TooLarge(f"{what}: a certificate over {MAX_CERT_DER_BYTES} bytes")
        return cls(ca, tuple(members))


@dataclass(frozen=True)
class VerifiedOrg:
    """A founding organisation with its certificates verified at genesis time."""

    ca: OrgCa
    ca_der: bytes
    members: tuple[Member, ...]


def verify_genesis_orgs(orgs: tuple[GenesisOrg, ...], time_ms: int) -> list[VerifiedOrg]:
    """Verify every founding organisation's CA and members at the genesis time: CAs
    valid and distinct, org ids distinct, members certified by their org's CA, each key
    enrolled once, at least one admin per organisation. Raises a Rejected subclass."""
    if not orgs:
        return []
    # Imported here: cryptography's x509 loads `socket` (via `email`), which the offline
    # verifier, a reader of geneses without organisations, must not import.
    from tidechain.identity.certs import parse_org_ca, verify_member_cert_with_ca

    if len(orgs) > MAX_GENESIS_ORGS:
        raise TooLarge(f"genesis: {len(orgs)} organisations, limit {MAX_GENESIS_ORGS}")
    verified: list[VerifiedOrg] = []
    org_ids: set[str] = set()
    keys: set[bytes] = set()
    for org in orgs:
        ca = parse_org_ca(org.ca, time_ms)
        if ca.org_id in org_ids:
            raise DecodeError(f"genesis: organisation {ca.org_id!r} appears twice")
        org_ids.add(ca.org_id)
        members = tuple(verify_member_cert_with_ca(der, ca, time_ms) for der in org.members)
        for member in members:
            if member.public_key in keys:
                raise DecodeError(f"genesis: key {member.public_key.hex()} enrolled twice")
            keys.add(member.public_key)
        if not any(Role.ADMIN in member.roles for member in members):
            raise DecodeError(f"genesis: organisation {ca.org_id!r} has no admin member")
        verified.append(VerifiedOrg(ca, org.ca, members))
    return verified


@dataclass(frozen=True)
class Genesis:
    name: str
    time_ms: int
    validators: tuple[GenesisValidator, ...]
    orgs: tuple[GenesisOrg, ...] = ()
    """Founding organisations; their CAs and members are the chain's first members."""
    versions: tuple[tuple[str, int], ...] = ()
    """Contract versions in force from the first block, by name, instead of version 1
    (a new network starts on the newest rules without a governance vote). Encoded only
    when present, so genesis files written before it keep their chain ids."""
    verified_orgs: tuple[VerifiedOrg, ...] = field(init=False, repr=False, compare=False)
    """`orgs` as verified at construction (the members contract's genesis state)."""

    def __post_init__(self) -> None:
        # Certificates are checked when a genesis is built or decoded, so a node never
        # starts (and `tide init` never writes) a network whose members cannot act.
        # Kept, so that nothing verifies them again.
        object.__setattr__(self, "verified_orgs",
                           tuple(verify_genesis_orgs(self.orgs, self.time_ms)))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "name": self.name,
            "time": self.time_ms,
            "validators": [{"name": v.name, "key": v.public_key} for v in self.validators],
            "orgs": [org.to_cbor() for org in self.orgs],
            **({"versions": [[name, v] for name, v in self.versions]} if self.versions else {}),
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    # Cached: read on every peer message and transaction check, and the fields never
    # change (frozen). `cached_property` writes the instance dict, past the frozen guard.
    @functools.cached_property
    def chain_id(self) -> bytes:
        return sha256(self.encode())

    @functools.cached_property
    def origin(self) -> str:
        """The C2SP checkpoint origin: unique per network (name + chain id prefix)."""
        return f"tidechain/{self.name}/{self.chain_id[:8].hex()}"

    @property
    def validators_hash(self) -> bytes:
        return sha256(cbor.encode(self.to_cbor()["validators"]))

    @classmethod
    def decode(cls, data: bytes) -> Genesis:
        what = "genesis"
        m = _require_map(cbor.decode(data), what)
        _exact_keys(m, {"v", "name", "time", "validators", "orgs", "versions"}, what)
        _format_version(m, what)
        # No '/' in the network name: it sits between two '/' in the checkpoint origin.
        name = _note_name(_field(m, "name", str, what), what, allow_slash=False)
        entries: list[Any] = _field(m, "validators", list, what)
        if len(entries) > MAX_VALIDATORS:
            raise TooLarge(f"{what}: {len(entries)} validators, limit {MAX_VALIDATORS}")
        validators = tuple(GenesisValidator.from_cbor(v) for v in entries)
        org_entries: list[Any] = _field(m, "orgs", list, what)
        if len(org_entries) > MAX_GENESIS_ORGS:
            raise TooLarge(f"{what}: {len(org_entries)} organisations, limit {MAX_GENESIS_ORGS}")
        orgs = tuple(GenesisOrg.from_cbor(o) for o in org_entries)
        versions = _genesis_versions(m.get("versions"), what) if "versions" in m else ()
        return cls(name, _uint(m, "time", what), validators, orgs, versions)


MAX_GENESIS_VERSIONS = 32
"""Contracts a genesis may start on a later version: more than the software has."""


def _genesis_versions(value: Any, what: str) -> tuple[tuple[str, int], ...]:
    """[[contract name, version], ...]: names ascending and distinct, versions 2..MAX."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_GENESIS_VERSIONS:
        raise DecodeError(f"{what}: 'versions' must list 1..{MAX_GENESIS_VERSIONS} pairs")
    pairs: list[tuple[str, int]] = []
    for pair in value:
        if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                or not isinstance(pair[1], int) or isinstance(pair[1], bool)
                or not 0 < len(pair[0]) <= MAX_NAME_BYTES or not pair[0].isascii()
                or not 1 < pair[1] <= MAX_CONTRACT_VERSION):
            raise DecodeError(f"{what}: 'versions' entries are [contract name, version "
                              f"2..{MAX_CONTRACT_VERSION}]")
        pairs.append((pair[0], pair[1]))
    if [p[0] for p in pairs] != sorted({p[0] for p in pairs}):
        raise DecodeError(f"{what}: 'versions' must name each contract once, ascending")
    return tuple(pairs)


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The C2SP tlog-checkpoint note body for a log state."""
    return Checkpoint(origin, size, root).body()
