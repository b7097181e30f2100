"""Membership (成员管理): organisations, their CAs, their enrolled members, revocations;
and the permission check every transaction passes before its method runs.

An organisation enrols its own members: one of its admins submits `enrol` with a
member certificate issued by one of the organisation's active CAs (docs/identity.md).
The founding organisations come from the genesis; later ones are registered, and
organisations removed or certificates revoked by consortium decision, through the
governance contract (contracts/governance.py), which applies its decisions through the
functions of this module (`verify_new_org`, `register_org`, `remove_org`,
`revoke_certificate`) so that each rule lives in one place. The application's queries
are in `queries.py`, its descriptor (`APP`) in `__init__.py` (ADR 0013).

State in the `members` namespace (CBOR values):

* `orgs`                          -> the registered org ids, in registration order
* `org/` + org id                 -> {id, legal_name, uscc, cas: [CA DER, ...]}
* `ca/` + CA fingerprint (32)     -> the org id, while that CA is active
* `member/` + Ed25519 key (32)    -> {org, name, roles, ca, serial, not_before,
                                      not_after, enrolled}
* `revoked/` + fingerprint + serial (20 bytes, big-endian) -> {height, time}
* `validators`, `vsets`, `vset/` + height -> the validator set and its history
                                    (layout in `ledger.validators`, ADR 0011)
* `vkey/` + Ed25519 key (32)      -> the validator name that key was registered for
                                    (a consensus key serves one validator, once)
* `vchanged`                      -> [height, validator changes applied at it]

A member counts (may call methods) while its record exists, its CA is active, its
(CA, serial) is not revoked and its certificate's notAfter is not before the block
time. Those are three reads of small keys per transaction; the member record's decoding
is cached by its bytes (`_standing`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from tidechain.core import cbor
from tidechain.core.crypto import PUBLIC_KEY_BYTES, sha256
from tidechain.core.errors import ContractError, Rejected, invariant
from tidechain.core.limits import MAX_VALIDATORS
from tidechain.identity.certs import Member, OrgCa, parse_org_ca, verify_member_cert_with_ca
from tidechain.identity.roles import ROLE_NAMES, Role
from tidechain.ledger import validators as vset
from tidechain.ledger.access import Unauthenticated
from tidechain.ledger.runtime import (
    CallContext,
    Contract,
    Forbidden,
    MethodSpec,
    StateReader,
    check_args,
    namespaced,
    stored_list,
)
from tidechain.ledger.types import (
    Genesis,
    GenesisOrg,
    VerifiedOrg,
    check_key_name,
    verify_genesis_orgs,
)
from tidechain.ledger.validators import ValidatorRecord

NAME = "members"
FINGERPRINT_BYTES = 32
SERIAL_BYTES = 20
"""RFC 5280 serials are at most 20 octets; revocation keys hold them at that width."""
MAX_ACTIVE_CAS = 4
"""Active CAs per organisation: several only while a CA is being rotated."""
_SERIAL_LIMIT = 1 << 159
MAX_ORGS = 64
"""Registered organisations: a consortium, not an open network (the genesis bound)."""
MAX_NEW_ORG_MEMBERS = 16
"""Initial member certificates of an organisation registered by governance: they
must fit one transaction (16 KiB) and one application's writes (64); the rest enrol
on chain."""

ORGS_KEY = b"orgs"


def org_key(org_id: str) -> bytes:
    return b"org/" + org_id.encode("ascii")


def ca_key(fingerprint: bytes) -> bytes:
    return b"ca/" + fingerprint


def member_key(public_key: bytes) -> bytes:
    return b"member/" + public_key


def revoked_key(fingerprint: bytes, serial: int) -> bytes:
    return b"revoked/" + fingerprint + serial.to_bytes(SERIAL_BYTES, "big")


def validator_key_key(public_key: bytes) -> bytes:
    return b"vkey/" + public_key


VALIDATOR_CHANGES_KEY = b"vchanged"
MAX_NAME_TEXT = 128
"""How much of a refused name an error message quotes."""


def _roles_text(roles: Iterable[Role | str]) -> str:
    return "{" + ", ".join(sorted(str(r) for r in roles)) + "}"


# --- records ---------------------------------------------------------------------------


def _org_record(ca: OrgCa, cas: list[bytes]) -> bytes:
    return cbor.encode({"id": ca.org_id, "legal_name": ca.legal_name, "uscc": ca.uscc,
                        "cas": cas})


def _member_record(member: Member, enrolled: int | None) -> bytes:
    return cbor.encode({
        "org": member.org_id,
        "name": member.name,
        "roles": sorted(r.value for r in member.roles),
        "ca": member.ca_fingerprint,
        "serial": member.serial.to_bytes(SERIAL_BYTES, "big"),
        "not_before": member.not_before_ms,
        "not_after": member.not_after_ms,
        "enrolled": enrolled,  # log index of the enrol transaction; None: genesis
    })


def _decode(raw: bytes, what: str) -> dict[str, Any]:
    """A record this contract wrote: anything else is our bug, not bad input."""
    value = cbor.decode(raw)
    invariant(isinstance(value, dict), f"corrupt {what} record in state")
    record: dict[str, Any] = value
    return record


def _genesis_state(genesis: Genesis) -> Mapping[bytes, bytes]:
    """The founding organisations and their members, verified at genesis time."""
    state: dict[bytes, bytes] = {}
    org_ids: list[str] = []
    for org in genesis.verified_orgs:
        org_ids.append(org.ca.org_id)
        state[org_key(org.ca.org_id)] = _org_record(org.ca, [org.ca_der])
        state[ca_key(org.ca.fingerprint)] = cbor.encode(org.ca.org_id)
        for member in org.members:
            state[member_key(member.public_key)] = _member_record(member, None)
    if org_ids:
        state[ORGS_KEY] = cbor.encode(org_ids)
    records = vset.genesis_records(genesis)
    if records:
        state[vset.SET_KEY] = vset.encode_set(records)
        for record in records:
            state[validator_key_key(record.public_key)] = cbor.encode(record.name)
    return state


# --- the permission check ----------------------------------------------------------------


def authorize(state: StateReader, caller: bytes, method: str, roles: frozenset[Role],
              time_ms: int) -> None:
    """Return if `caller` is a member in good standing at `time_ms` holding one of
    `roles`; raise Forbidden naming what is missing otherwise. Deterministic: it reads
    only the world state given (a block's pending state, or the committed head)."""
    standing = _standing_at(state, caller, time_ms, "caller", block_time=True)
    if isinstance(standing, str):
        raise Forbidden(f"{standing}; {_needs(method, roles)}")
    if roles.isdisjoint(standing.roles):
        raise Forbidden(f"caller has roles {_roles_text(standing.roles)}; "
                        f"{_needs(method, roles)}")


def reader_roles(state: StateReader, key: bytes, time_ms: int) -> frozenset[Role]:
    """The roles of `key` as a reader: the same standing checks as a write's (enrolled,
    certificate valid at `time_ms`, its CA still the organisation's, not revoked);
    `Unauthenticated` (401) naming what fails otherwise (ADR 0015)."""
    return reader_standing(state, key, time_ms)[1]


def reader_standing(state: StateReader, key: bytes,
                    time_ms: int) -> tuple[str, frozenset[Role]]:
    """The organisation and roles of `key` as a reader, in one standing check
    (`reader_roles`' rules; a record may name its parties by organisation)."""
    standing = _standing_at(state, key, time_ms, "key")
    if isinstance(standing, str):
        raise Unauthenticated(standing)
    return standing.org, frozenset(Role(r) for r in standing.roles if r in ROLE_NAMES)


def member_org_roles(state: StateReader, key: bytes,
                     time_ms: int) -> tuple[str, frozenset[Role]] | str:
    """The organisation and roles of member `key` in good standing at `time_ms`, or why
    it has none: what another application checks when it names parties by organisation
    and role (evidence co-signers), with the same standing rules as `authorize`."""
    standing = _standing_at(state, key, time_ms, "key", block_time=True)
    if isinstance(standing, str):
        return standing
    return standing.org, frozenset(Role(r) for r in standing.roles if r in ROLE_NAMES)


def _standing_at(state: StateReader, key: bytes, time_ms: int, subject: str, *,
                 block_time: bool = False) -> _Standing | str:
    """The standing of member `key` at `time_ms`, or why it has none (the reason names
    the key as `subject`): not enrolled, its certificate expired, its CA removed from
    its organisation, or revoked. On every transaction's path: text only on failure."""
    raw = state.get(_MEMBER_PREFIX + key) if len(key) == PUBLIC_KEY_BYTES else None
    if raw is None:
        return f"{subject} {key.hex()[:16]}... is not an enrolled member"
    standing = _standing(raw)
    if standing.not_after_ms < time_ms:
        when = f" (block time {time_ms} ms)" if block_time else ""
        return (f"the member certificate of {subject} {key.hex()[:16]}... expired at "
                f"{standing.not_after_ms} ms{when}")
    if state.get(standing.ca_state_key) is None:
        return (f"the member certificate of {subject} {key.hex()[:16]}... was issued by a "
                f"CA that organisation {standing.org!r} no longer has")
    if state.get(standing.revoked_state_key) is not None:
        return (f"the member certificate of {subject} {key.hex()[:16]}... (serial "
                f"{standing.serial}) is revoked")
    return standing


def _needs(method: str, roles: frozenset[Role]) -> str:
    return f"{method} needs one of {_roles_text(roles)}"


_MEMBER_PREFIX = namespaced(NAME, member_key(b""))


@dataclass(frozen=True)
class _Standing:
    """What the permission check needs from a member record, with its state keys."""

    org: str
    roles: frozenset[str]
    not_after_ms: int
    serial: int
    ca_state_key: bytes
    revoked_state_key: bytes


@functools.lru_cache(maxsize=4096)
def _standing(raw: bytes) -> _Standing:
    """Decoded once per distinct record bytes: a pure function of its argument, so the
    cache needs no invalidation (a changed record is different bytes). Measured on
    2,000 deposits: the check added 19 us per transaction without it, noise with it."""
    record = _decode(raw, "member")
    serial = int.from_bytes(record["serial"], "big")
    return _Standing(
        org=record["org"], roles=frozenset(record["roles"]), not_after_ms=record["not_after"],
        serial=serial, ca_state_key=namespaced(NAME, ca_key(record["ca"])),
        revoked_state_key=namespaced(NAME, revoked_key(record["ca"], serial)))


# --- methods ------------------------------------------------------------------------------


def _bytes_arg(args: dict[str, Any], name: str) -> bytes:
    value = args.get(name)
    if not isinstance(value, bytes) or not value:
        raise ContractError(f"'{name}' must be a byte string", code="bad_argument")
    return value


def check_fingerprint(value: Any) -> bytes:
    """A CA fingerprint argument: the SHA-256 of its DER. Shared with clients."""
    if not isinstance(value, bytes) or len(value) != FINGERPRINT_BYTES:
        raise ContractError(f"CA fingerprint must be {FINGERPRINT_BYTES} bytes",
                            code="bad_argument")
    return value


def check_serial(value: Any) -> int:
    """A certificate serial argument: a positive integer below 2^159. Shared with
    clients."""
    if isinstance(value, bytes) and 0 < len(value) <= SERIAL_BYTES:
        value = int.from_bytes(value, "big")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < _SERIAL_LIMIT:
        raise ContractError("'serial' must be a positive integer below 2**159 (or its "
                            f"big-endian bytes, at most {SERIAL_BYTES})", code="bad_argument")
    return value


def _caller_org(ctx: CallContext) -> dict[str, Any]:
    """The caller's organisation record (the caller passed `authorize` already)."""
    member = _decode(_required(ctx, member_key(ctx.caller), "caller's member"), "member")
    return _decode(_required(ctx, org_key(member["org"]), "caller's organisation"), "org")


def _required(ctx: CallContext, key: bytes, what: str) -> bytes:
    raw = ctx.get(key)
    invariant(raw is not None, f"{what} record missing")
    assert raw is not None  # for mypy; invariant() has checked it
    return raw


def _active_cas(ctx: CallContext, org: dict[str, Any]) -> list[OrgCa]:
    """The organisation's CAs, parsed; a CA outside its validity at block time is left
    out (its members' certificates cannot be valid either)."""
    cas: list[OrgCa] = []
    for der in org["cas"]:
        try:
            cas.append(parse_org_ca(der, ctx.time_ms))
        except Rejected:
            continue
    return cas


def _as_contract_error(exc: Rejected) -> ContractError:
    return ContractError(exc.reason, code=exc.code)


def _verify_member(ctx: CallContext, org: dict[str, Any], cert: bytes) -> Member:
    """Verify `cert` against the organisation's active CAs at block time."""
    cas = _active_cas(ctx, org)
    for ca in cas:
        try:
            return verify_member_cert_with_ca(cert, ca, ctx.time_ms)
        except Rejected as exc:
            if exc.code != "cert_untrusted" or len(cas) == 1:
                raise _as_contract_error(exc) from None
    raise ContractError(f"the certificate is not issued by an active CA of organisation "
                        f"{org['id']!r}", code="cert_untrusted")


def enrol(ctx: CallContext, args: dict[str, Any]) -> None:
    """Enrol (or renew) a member of the caller's organisation from its certificate.
    Re-enrolling a key replaces its record, e.g. with a renewed certificate."""
    check_args(args, {"cert"})
    org = _caller_org(ctx)
    member = _verify_member(ctx, org, _bytes_arg(args, "cert"))
    if ctx.get(revoked_key(member.ca_fingerprint, member.serial)) is not None:
        raise ContractError(f"certificate serial {member.serial} is revoked",
                            code="cert_revoked")
    existing = ctx.get(member_key(member.public_key))
    if existing is not None and _decode(existing, "member")["org"] != org["id"]:
        raise Forbidden("this key is enrolled by another organisation")
    ctx.put(member_key(member.public_key), _member_record(member, ctx.log_index))
    ctx.emit("enrolled", {"org": member.org_id, "key": member.public_key,
                          "name": member.name, "roles": sorted(r.value for r in member.roles),
                          "serial": member.serial.to_bytes(SERIAL_BYTES, "big")})


def add_ca(ctx: CallContext, args: dict[str, Any]) -> None:
    """Register another CA certificate for the caller's organisation (CA rotation):
    same org id and USCC, at most MAX_ACTIVE_CAS at once."""
    check_args(args, {"ca"})
    org = _caller_org(ctx)
    der = _bytes_arg(args, "ca")
    try:
        ca = parse_org_ca(der, ctx.time_ms)
    except Rejected as exc:
        raise _as_contract_error(exc) from None
    if ca.org_id != org["id"] or ca.uscc != org["uscc"]:
        raise Forbidden(f"the CA is for {ca.org_id!r} ({ca.uscc}), not the caller's "
                        f"organisation {org['id']!r} ({org['uscc']})")
    if ctx.get(ca_key(ca.fingerprint)) is not None:
        raise ContractError("this CA is already registered", code="duplicate")
    if len(org["cas"]) >= MAX_ACTIVE_CAS:
        raise ContractError(f"organisation {org['id']!r} already has {MAX_ACTIVE_CAS} "
                            "CAs: remove one first", code="too_many_cas")
    ctx.put(org_key(ca.org_id), _org_record(ca, [*org["cas"], der]))
    ctx.put(ca_key(ca.fingerprint), cbor.encode(ca.org_id))
    ctx.emit("ca_added", {"org": ca.org_id, "fingerprint": ca.fingerprint})


def remove_ca(ctx: CallContext, args: dict[str, Any]) -> None:
    """Retire one of the caller's organisation's CAs: its members stop counting from
    the next transaction on. Never the last CA, nor the caller's own (an admin would
    lock itself out: enrol again under the new CA first)."""
    check_args(args, {"fingerprint"})
    fingerprint = check_fingerprint(args.get("fingerprint"))
    org = _caller_org(ctx)
    remaining = [der for der in org["cas"] if parse_fingerprint(der) != fingerprint]
    if len(remaining) == len(org["cas"]):
        raise ContractError(f"organisation {org['id']!r} has no CA {fingerprint.hex()}",
                            code="not_found")
    if not remaining:
        raise ContractError("cannot remove an organisation's last CA", code="last_ca")
    caller = _decode(_required(ctx, member_key(ctx.caller), "caller's member"), "member")
    if caller["ca"] == fingerprint:
        raise ContractError("the caller's own certificate is from this CA: enrol the "
                            "caller under another CA first", code="own_ca")
    ctx.put(org_key(org["id"]), cbor.encode(org | {"cas": remaining}))
    ctx.delete(ca_key(fingerprint))
    ctx.emit("ca_removed", {"org": org["id"], "fingerprint": fingerprint})


def revoke(ctx: CallContext, args: dict[str, Any]) -> None:
    """Revoke the certificate (CA fingerprint, serial) of one of the caller's
    organisation's active CAs: the member it certifies stops counting from the next
    transaction on, and that certificate can never be enrolled again."""
    check_args(args, {"ca", "serial"})
    fingerprint = check_fingerprint(args.get("ca"))
    serial = check_serial(args.get("serial"))
    org = _caller_org(ctx)
    if ctx.get(ca_key(fingerprint)) is None or all(
            parse_fingerprint(der) != fingerprint for der in org["cas"]):
        raise ContractError(f"organisation {org['id']!r} has no active CA "
                            f"{fingerprint.hex()}", code="not_found")
    revoke_certificate(ctx, fingerprint, serial, org["id"])


def revoke_certificate(ctx: CallContext, fingerprint: bytes, serial: int, org_id: str) -> None:
    """Record the revocation of (CA `fingerprint`, `serial`) of organisation `org_id`:
    the one rule shared by `revoke` (an org's own admin) and governance."""
    key = revoked_key(fingerprint, serial)
    if ctx.get(key) is not None:
        raise ContractError(f"serial {serial} is already revoked", code="duplicate")
    ctx.put(key, cbor.encode({"height": ctx.height, "time": ctx.time_ms}))
    ctx.emit("revoked", {"org": org_id, "ca": fingerprint,
                         "serial": serial.to_bytes(SERIAL_BYTES, "big")})


def active_ca_org(ctx: CallContext, fingerprint: bytes) -> str:
    """The organisation whose active CA `fingerprint` is; ContractError otherwise."""
    raw = ctx.get(ca_key(fingerprint))
    if raw is None:
        raise ContractError(f"no active CA {fingerprint.hex()}", code="not_found")
    return str(cbor.decode(raw))


# --- organisations registered and removed by governance -----------------------------------


def verify_new_org(ctx: CallContext, ca_der: bytes, member_ders: list[bytes]) -> VerifiedOrg:
    """Verify an organisation to register at block time, exactly as a founding one
    (CA valid, members certified by it, at least one admin) and against the chain: a new
    org id, a new CA, keys not enrolled anywhere, room under MAX_ORGS."""
    if not 0 < len(member_ders) <= MAX_NEW_ORG_MEMBERS:
        raise ContractError(f"an organisation is registered with 1..{MAX_NEW_ORG_MEMBERS} "
                            "member certificates", code="bad_argument")
    try:
        (org,) = verify_genesis_orgs((GenesisOrg(ca_der, tuple(member_ders)),), ctx.time_ms)
    except Rejected as exc:
        raise _as_contract_error(exc) from None
    registered = _org_ids(ctx)
    if org.ca.org_id in registered:
        raise ContractError(f"organisation {org.ca.org_id!r} is already registered",
                            code="duplicate")
    if len(registered) >= MAX_ORGS:
        raise ContractError(f"already {MAX_ORGS} organisations", code="too_many_orgs")
    if ctx.get(ca_key(org.ca.fingerprint)) is not None:
        raise ContractError("this CA is already registered", code="duplicate")
    for member in org.members:
        if ctx.get(member_key(member.public_key)) is not None:
            raise ContractError(f"key {member.public_key.hex()} is already enrolled",
                                code="duplicate")
        if ctx.get(revoked_key(member.ca_fingerprint, member.serial)) is not None:
            raise ContractError(f"certificate serial {member.serial} is revoked",
                                code="cert_revoked")
    return org


def register_org(ctx: CallContext, org: VerifiedOrg, enrolled: int) -> None:
    """Register a verified organisation with its CA and initial members; `enrolled`
    is the log index of the decision (the governance proposal)."""
    ctx.put(ORGS_KEY, cbor.encode([*_org_ids(ctx), org.ca.org_id]))
    ctx.put(org_key(org.ca.org_id), _org_record(org.ca, [org.ca_der]))
    ctx.put(ca_key(org.ca.fingerprint), cbor.encode(org.ca.org_id))
    for member in org.members:
        ctx.put(member_key(member.public_key), _member_record(member, enrolled))
    ctx.emit("org_added", {"org": org.ca.org_id, "fingerprint": org.ca.fingerprint,
                           "members": len(org.members)})


def check_org_removal(ctx: CallContext, org_id: str) -> dict[str, Any]:
    """The organisation record, if `org_id` may be removed: registered, and not the
    last organisation."""
    registered = _org_ids(ctx)
    raw = ctx.get(org_key(org_id)) if org_id.isascii() else None
    if raw is None or org_id not in registered:
        raise ContractError(f"no organisation {org_id!r}", code="not_found")
    if len(registered) == 1:
        raise ContractError("cannot remove the last organisation", code="last_org")
    return _decode(raw, "org")


def remove_org(ctx: CallContext, org_id: str) -> None:
    """Remove an organisation: its CAs stop being active, so every member they
    certified stops counting (member records stay, as history)."""
    record = check_org_removal(ctx, org_id)
    ctx.put(ORGS_KEY, cbor.encode([o for o in _org_ids(ctx) if o != org_id]))
    ctx.delete(org_key(org_id))
    for der in record["cas"]:
        ctx.delete(ca_key(parse_fingerprint(der)))
    ctx.emit("org_removed", {"org": org_id})


# --- validators changed by governance (ADR 0011) ------------------------------------------


def validator_records(ctx: CallContext) -> list[ValidatorRecord]:
    """The current validator set (the one signing the next block), in set order."""
    raw = ctx.get(vset.SET_KEY)
    invariant(raw is not None, "validator set missing from state")
    assert raw is not None
    return list(vset.decode_set(raw))


def change_budget(ctx: CallContext) -> int:
    """Validator changes (an add, a removal or a key replacement each count one) still
    allowed at this height: at most max(1, f) of the set that signs this block, so that
    consecutive sets share all but a minority of signers (ADR 0011, point 5)."""
    raw = ctx.get(VALIDATOR_CHANGES_KEY)
    if raw is None or int(cbor.decode(raw)[0]) != ctx.height:
        size, done = len(validator_records(ctx)), 0
    else:
        _, size, done = (int(v) for v in cbor.decode(raw))
    return max(1, (size - 1) // 3) - done


def _count_change(ctx: CallContext) -> None:
    raw = ctx.get(VALIDATOR_CHANGES_KEY)
    if raw is None or int(cbor.decode(raw)[0]) != ctx.height:
        size, done = len(validator_records(ctx)), 0
    else:
        _, size, done = (int(v) for v in cbor.decode(raw))
    ctx.put(VALIDATOR_CHANGES_KEY, cbor.encode([ctx.height, size, done + 1]))


def _validator_named(ctx: CallContext, name: Any) -> ValidatorRecord:
    if not isinstance(name, str):
        raise ContractError("'validator' must be a validator's key name", code="bad_argument")
    for record in validator_records(ctx):
        if record.name == name:
            return record
    raise ContractError(f"no validator {name[:MAX_NAME_TEXT]!r}", code="not_found")


def _check_new_key(ctx: CallContext, key: Any) -> bytes:
    if not isinstance(key, bytes) or len(key) != PUBLIC_KEY_BYTES:
        raise ContractError(f"'key' must be a {PUBLIC_KEY_BYTES}-byte Ed25519 public key",
                            code="bad_argument")
    used_by = ctx.get(validator_key_key(key))
    if used_by is not None:
        # A key serves one validator name, once: the trust file could not tell the
        # heights of two uses apart, and one key under two names would count twice.
        raise ContractError(f"key {key.hex()} was registered for validator "
                            f"{cbor.decode(used_by)!r} already", code="duplicate")
    return key


def check_new_validator(ctx: CallContext, args: dict[str, Any]) -> ValidatorRecord:
    """A validator to add {name, key, org, address, tls}: a new name and a key never
    used, of a registered organisation, with room under MAX_VALIDATORS."""
    name, org_id = args.get("name"), args.get("org")
    address, tls = args.get("address", ""), args.get("tls", b"")
    if not isinstance(name, str):
        raise ContractError("'name' must be a key name", code="bad_argument")
    try:
        check_key_name(name, "validator")
    except Rejected as exc:
        raise ContractError(exc.reason, code="bad_argument") from None
    key = _check_new_key(ctx, args.get("key"))
    if not isinstance(org_id, str) or org_id not in _org_ids(ctx):
        raise ContractError(f"'org' must be a registered organisation, not "
                            f"{str(org_id)[:MAX_NAME_TEXT]!r}", code="not_found")
    if (not isinstance(address, str) or len(address.encode()) > vset.MAX_ADDRESS_BYTES
            or not address.isascii() or " " in address):
        raise ContractError("'address' must be host:port", code="bad_argument")
    if not isinstance(tls, bytes) or len(tls) not in (0, vset.TLS_FINGERPRINT_BYTES):
        raise ContractError(f"'tls' must be a {vset.TLS_FINGERPRINT_BYTES}-byte certificate "
                            "fingerprint (or empty)", code="bad_argument")
    current = validator_records(ctx)
    if any(r.name == name for r in current):
        raise ContractError(f"{name!r} is a validator already", code="duplicate")
    # Peers know each other by the name without the network's prefix (the TLS name):
    # a new validator must carry the same prefix and a transport name of its own, or
    # its organisation could be admitted under an existing node's name.
    prefixes = {r.name.split("/", 1)[0] + "/" for r in current if "/" in r.name}
    if prefixes and not any(name.startswith(p) for p in prefixes):
        raise ContractError(f"a validator's name must start with the network's "
                            f"{sorted(prefixes)[0]!r}", code="bad_argument")
    transport = name.split("/", 1)[-1]
    if any(r.name.split("/", 1)[-1] == transport for r in current):
        raise ContractError(f"a validator is already known to its peers as {transport!r}",
                            code="duplicate")
    if len(current) >= MAX_VALIDATORS:
        raise ContractError(f"already {MAX_VALIDATORS} validators", code="too_many_validators")
    return ValidatorRecord(name, key, org_id, address, tls)


def check_validator_removal(ctx: CallContext, name: Any) -> ValidatorRecord:
    """The validator to remove: in the set, and not the last one."""
    record = _validator_named(ctx, name)
    if len(validator_records(ctx)) == 1:
        raise ContractError("cannot remove the last validator", code="last_validator")
    return record


def check_key_replacement(ctx: CallContext, name: Any, key: Any) -> ValidatorRecord:
    """The validator `name` with its consensus key replaced by `key` (never used)."""
    record = _validator_named(ctx, name)
    new_key = _check_new_key(ctx, key)
    return ValidatorRecord(record.name, new_key, record.org, record.address,
                           record.tls_fingerprint)


def apply_validator_change(ctx: CallContext, remove: str | None,
                           add: ValidatorRecord | None) -> list[ValidatorRecord]:
    """Change the set from the next height on: drop `remove`, then put `add` in its
    place (a key replacement keeps the position) or at the end. Records the new set
    as the one signing from height + 1 (its history), counts the change against this
    height's budget, and returns the new set."""
    invariant(change_budget(ctx) > 0, "validator change over the height's budget")
    current = validator_records(ctx)
    position = next((i for i, r in enumerate(current) if r.name == remove), len(current))
    new = [r for r in current if r.name != remove]
    if add is not None:
        new.insert(min(position, len(new)), add)
        ctx.put(validator_key_key(add.public_key), cbor.encode(add.name))
    invariant(0 < len(new) <= MAX_VALIDATORS, "validator set size out of bounds")
    _count_change(ctx)
    encoded = vset.encode_set(new)
    ctx.put(vset.SET_KEY, encoded)
    start = ctx.height + 1
    ctx.put(vset.snapshot_key(start), encoded)
    heights = _change_heights(ctx)
    if not heights or heights[-1] != start:
        if len(heights) >= vset.MAX_SET_CHANGES:
            raise ContractError("the validator set has changed too often",
                                code="too_many_changes")
        ctx.put(vset.HISTORY_KEY, cbor.encode([*heights, start]))
    ctx.emit("validators_changed", {"height": start, "removed": remove,
                                    "added": None if add is None else add.to_cbor(),
                                    "validators": [r.name for r in new]})
    return new


def _change_heights(ctx: CallContext) -> list[int]:
    return [int(h) for h in stored_list(ctx.get(vset.HISTORY_KEY), "validator set history")]


def _org_ids(ctx: CallContext) -> list[str]:
    value = stored_list(ctx.get(ORGS_KEY), "org list")
    return [str(v) for v in value]


def is_admin(state: StateReader, public_key: bytes, time_ms: int) -> bool:
    """Whether `public_key` is an admin in good standing at `time_ms`."""
    try:
        authorize(state, public_key, "admin check", ADMIN_ONLY, time_ms)
    except Forbidden:
        return False
    return True


def parse_fingerprint(ca_der: bytes) -> bytes:
    """The fingerprint the chain names a CA by: SHA-256 of its DER."""
    return sha256(ca_der)


ADMIN_ONLY = frozenset({Role.ADMIN})
"""The roles of methods only an org's admin may call (governance's too)."""

Der = Annotated[bytes, msgspec.Meta(min_length=1, description="a DER certificate")]
Fingerprint = Annotated[bytes, msgspec.Meta(
    min_length=FINGERPRINT_BYTES, max_length=FINGERPRINT_BYTES,
    description="a CA's fingerprint: SHA-256 of its DER (32 bytes)")]
Serial = Annotated[int, msgspec.Meta(gt=0, description="a certificate serial")] | Annotated[
    bytes, msgspec.Meta(min_length=1, max_length=SERIAL_BYTES,
                        description="a certificate serial, big-endian bytes")]


class EnrolArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cert: Der


class AddCaArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ca: Der


class RemoveCaArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fingerprint: Fingerprint


class RevokeArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ca: Fingerprint
    serial: Serial


CONTRACT = Contract(
    name=NAME,
    methods={
        "enrol": MethodSpec(enrol, ADMIN_ONLY, "enrol or renew a member of the caller's org "
                            "from a certificate {cert}", EnrolArgs),
        "add_ca": MethodSpec(add_ca, ADMIN_ONLY, "register another CA of the caller's org {ca}",
                             AddCaArgs),
        "remove_ca": MethodSpec(remove_ca, ADMIN_ONLY, "retire one of the caller's org's CAs "
                                "{fingerprint} (never the last)", RemoveCaArgs),
        "revoke": MethodSpec(revoke, ADMIN_ONLY, "revoke a member certificate {ca, serial} of "
                             "the caller's org", RevokeArgs),
    },
    description="Membership: organisations, their CAs and members; revocations.",
    genesis=_genesis_state,
)


# --- queries over committed state ---------------------------------------------------------


def member_of(state: StateReader, public_key: bytes) -> dict[str, Any] | None:
    """The member record of `public_key`, or None if it was never enrolled."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        return None
    raw = state.get(namespaced(NAME, member_key(public_key)))
    return None if raw is None else _decode(raw, "member")


def decode_member(raw: bytes) -> dict[str, Any]:
    """A member record as stored."""
    return _decode(raw, "member")


def member_status(state: StateReader, record: dict[str, Any], time_ms: int) -> str:
    """"active", "expired", "revoked" or "ca_removed" at `time_ms`."""
    if state.get(namespaced(NAME, revoked_key(
            record["ca"], int.from_bytes(record["serial"], "big")))) is not None:
        return "revoked"
    if state.get(namespaced(NAME, ca_key(record["ca"]))) is None:
        return "ca_removed"
    if record["not_after"] < time_ms:
        return "expired"
    return "active"


def org(state: StateReader, org_id: str) -> dict[str, Any] | None:
    """The organisation record of `org_id`, or None."""
    if not org_id.isascii():
        return None
    raw = state.get(namespaced(NAME, org_key(org_id)))
    return None if raw is None else _decode(raw, "org")


def orgs(state: StateReader) -> list[str]:
    """The registered org ids, in registration order."""
    value = stored_list(state.get(namespaced(NAME, ORGS_KEY)), "org list")
    return [str(v) for v in value]


