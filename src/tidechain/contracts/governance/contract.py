"""Governance (治理): on-chain proposals and votes of the member organisations.

An admin of a registered organisation proposes an action; admins vote, one vote per
organisation. A proposal passes when its approvals are *more than* the threshold share
(default 2/3) of the organisations registered at the moment of the deciding vote, and
its action is applied at the start of its effective height by this contract's
begin-block hook (`begin_block`), as part of that block's state transition. Nothing is
restarted and no file is edited. See docs/governance.md and ADR 0008.

Actions: `add_org`, `remove_org`, `revoke_cert`, `set_param` (governance's own
parameters, the block-size limit and the consensus timeouts), `activate_contract` (a
contract version from a height), and the validator-set changes `add_validator`,
`remove_validator`, `replace_validator_key` (ADR 0011). The
effects on membership and on the validator set go through `contracts.members` (one
place for each rule). A validator change applied at the start of block H changes the
signers from H + 1 on; at most max(1, f) validators change per height (more wait for
the next height). The dry run also reports whether the validators known to be live
could still reach a quorum of the new set, and refuses the change if not
(`validator_removal`, `validator_addition`).

State in the `gov` namespace (CBOR values, integers in keys 8-byte big-endian):

* `p/` + id           -> the proposal record (see `_new_record`); the id is the log
                         index of the `propose` transaction
* `open`              -> ids of the proposals still open (at most MAX_OPEN_PROPOSALS)
* `due/` + height     -> ids of passed proposals to apply at the start of that block
* `param/` + name     -> a parameter set by governance (absent: its default)
* `version/` + name   -> a contract's activations, [[from height, version], ...]
                         (`runtime.contract_version_key`; absent: version 1)

Secondary index (derived from the `proposed` events by `index_rule`, not in the state
root): `gov/all`, empty key -> every proposal's id (its log index). The queries are in
`queries.py`, the descriptor (`APP`) in `__init__.py` (ADR 0013).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from tidechain.consensus.params import GOVERNED_TIMEOUTS
from tidechain.contracts import members
from tidechain.contracts.evidence.cosign import DEADLINE_PARAM, check_max_cosign
from tidechain.contracts.scf.contract import PARAMS as SCF_PARAMS
from tidechain.core import cbor
from tidechain.core.errors import ContractError, invariant
from tidechain.core.limits import (
    MAX_BLOCK_TXS,
    MAX_CONTRACT_VERSION,
    MAX_GOVERNED_TIMEOUT_MS,
    MAX_NAME_BYTES,
    MAX_PENDING_ACTIVATIONS,
    MIN_GOVERNED_TIMEOUT_MS,
)
from tidechain.ledger.chain import MAX_BLOCK_TXS_PARAM
from tidechain.ledger.runtime import (
    BASE_VERSION,
    CallContext,
    Contract,
    MethodSpec,
    Overlay,
    StateReader,
    activations,
    active_version,
    check_args,
    governed_param,
    namespaced,
)
from tidechain.ledger.types import Event

NAME = "gov"

ADD_ORG, REMOVE_ORG, REVOKE_CERT, SET_PARAM = "add_org", "remove_org", "revoke_cert", "set_param"
ACTIVATE_CONTRACT = "activate_contract"
ADD_VALIDATOR, REMOVE_VALIDATOR, REPLACE_VALIDATOR_KEY = (
    "add_validator", "remove_validator", "replace_validator_key")
VALIDATOR_ACTIONS = (ADD_VALIDATOR, REMOVE_VALIDATOR, REPLACE_VALIDATOR_KEY)
"""Changes of the validator set: each counts against the height's change budget."""
ACTIONS = (ADD_ORG, REMOVE_ORG, REVOKE_CERT, SET_PARAM, ACTIVATE_CONTRACT, *VALIDATOR_ACTIONS)

THRESHOLD = "gov.threshold"
VOTING_PERIOD_MS = "gov.voting_period_ms"
DEFAULT_THRESHOLD = (2, 3)
"""More than two thirds of the registered organisations."""
MAX_THRESHOLD_DENOMINATOR = 100
DEFAULT_VOTING_PERIOD_MS = 7 * 86_400_000
MIN_VOTING_PERIOD_MS = 60_000
MAX_VOTING_PERIOD_MS = 90 * 86_400_000
"""Votes are accepted while block time <= proposal time + voting period."""
MAX_OPEN_PROPOSALS = 32
"""Open proposals at once: bounds the `open` list and the work of each `propose`."""
MAX_DUE_PER_BLOCK = 32
"""Decisions applied at the start of one block; more move to the next block(s), so a
block's begin-block work stays bounded."""
MAX_EFFECTIVE_DELAY_BLOCKS = 1_000_000
"""How far ahead of the proposal an effective height may lie."""

OPEN, PASSED, REJECTED, EXPIRED, APPLIED, FAILED = (
    "open", "passed", "rejected", "expired", "applied", "failed")

OPEN_KEY = b"open"


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def proposal_key(proposal_id: int) -> bytes:
    return b"p/" + _u64(proposal_id)


def due_key(height: int) -> bytes:
    return b"due/" + _u64(height)


def param_key(name: str) -> bytes:
    return b"param/" + name.encode("ascii")


def version_key(contract: str) -> bytes:
    """In this namespace: `runtime.contract_version_key` is the same key, namespaced."""
    return b"version/" + contract.encode("ascii")


# --- small helpers ------------------------------------------------------------------------


def _uint_arg(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ContractError(f"'{name}' must be a non-negative integer", code="bad_argument")
    return value


def _decode(raw: bytes, kind: type, what: str) -> Any:
    """A value this contract wrote: anything else is our bug, not bad input."""
    value = cbor.decode(raw)
    invariant(isinstance(value, kind), f"corrupt {what} in state")
    return value


def _id_list(ctx: CallContext, key: bytes) -> list[int]:
    raw = ctx.get(key)
    return [] if raw is None else list(_decode(raw, list, "id list"))


def _put_id_list(ctx: CallContext, key: bytes, ids: list[int]) -> None:
    if ids:
        ctx.put(key, cbor.encode(ids))
    elif ctx.get(key) is not None:
        ctx.delete(key)


def members_context(gov: CallContext) -> CallContext:
    """A context on the `members` namespace over the same pending state: governance is
    the one contract that changes membership, and only through `members` functions."""
    return CallContext(contract=members.NAME, caller=gov.caller, height=gov.height,
                       time_ms=gov.time_ms, log_index=gov.log_index, tx_id=gov.tx_id,
                       _state=gov._state, events=gov.events)


# --- parameters ---------------------------------------------------------------------------


def check_threshold(value: Any) -> tuple[int, int]:
    """A threshold [numerator, denominator]: a fraction in [1/2, 1), denominator at most
    MAX_THRESHOLD_DENOMINATOR. A proposal passes with approvals > fraction * orgs."""
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ContractError(f"{THRESHOLD} is [numerator, denominator]", code="bad_argument")
    num, den = value
    if not 0 < den <= MAX_THRESHOLD_DENOMINATOR or not (2 * num >= den and num < den):
        raise ContractError(f"{THRESHOLD} must be a fraction in [1/2, 1) with a denominator "
                            f"of at most {MAX_THRESHOLD_DENOMINATOR}", code="bad_argument")
    return num, den


def check_voting_period(value: Any) -> int:
    period = _uint_arg(value, VOTING_PERIOD_MS)
    if not MIN_VOTING_PERIOD_MS <= period <= MAX_VOTING_PERIOD_MS:
        raise ContractError(f"{VOTING_PERIOD_MS} must be in {MIN_VOTING_PERIOD_MS}.."
                            f"{MAX_VOTING_PERIOD_MS}", code="bad_argument")
    return period


MAX_BLOCK_TXS_NAME = MAX_BLOCK_TXS_PARAM
"""`consensus.max_block_txs`: transactions per block, 1..MAX_BLOCK_TXS. The ledger
reads it (`Chain.max_block_txs`): every validator refuses a larger block."""
TIMEOUT_PREFIX = "consensus."
"""`consensus.<field>` for each of ConsensusParams' GOVERNED_TIMEOUTS."""


def check_max_block_txs(value: Any) -> int:
    size = _uint_arg(value, MAX_BLOCK_TXS_NAME)
    if not 1 <= size <= MAX_BLOCK_TXS:
        raise ContractError(f"{MAX_BLOCK_TXS_NAME} must be in 1..{MAX_BLOCK_TXS}",
                            code="bad_argument")
    return size


def _timeout_check(field: str) -> Callable[[Any], int]:
    """The check of one governed timeout: a base in MIN..MAX_GOVERNED_TIMEOUT_MS (a round
    needs time to carry a block), a per-round delta in 0..MAX_GOVERNED_TIMEOUT_MS."""
    name = TIMEOUT_PREFIX + field
    low = 0 if field.endswith("_delta_ms") else MIN_GOVERNED_TIMEOUT_MS

    def check(value: Any) -> int:
        ms = _uint_arg(value, name)
        if not low <= ms <= MAX_GOVERNED_TIMEOUT_MS:
            raise ContractError(f"{name} must be in {low}..{MAX_GOVERNED_TIMEOUT_MS} ms",
                                code="bad_argument")
        return ms

    return check


PARAMS: dict[str, Callable[[Any], Any]] = {
    THRESHOLD: check_threshold, VOTING_PERIOD_MS: check_voting_period,
    MAX_BLOCK_TXS_NAME: check_max_block_txs,
    **{TIMEOUT_PREFIX + field: _timeout_check(field) for field in GOVERNED_TIMEOUTS},
    **SCF_PARAMS,
    DEADLINE_PARAM: check_max_cosign,
}
"""The parameters governance may set, each with its check. Consensus parameters apply
from the height after the block that set them, on every node, with no restart: the
ledger reads the block size, the node rebuilds its replica with the timeouts."""


def _param(state: StateReader, name: str) -> Any:
    return governed_param(state, name)


def consensus_timeouts(state: StateReader) -> dict[str, int]:
    """The consensus timeouts governance has set (ConsensusParams field -> ms); fields
    never set are absent (the node's configuration applies)."""
    found: dict[str, int] = {}
    for field in GOVERNED_TIMEOUTS:
        value = _param(state, TIMEOUT_PREFIX + field)
        if value is not None:
            found[field] = int(value)
    return found


def threshold(state: StateReader) -> tuple[int, int]:
    """The passing threshold as (numerator, denominator)."""
    value = _param(state, THRESHOLD)
    return DEFAULT_THRESHOLD if value is None else (int(value[0]), int(value[1]))


def voting_period_ms(state: StateReader) -> int:
    value = _param(state, VOTING_PERIOD_MS)
    return DEFAULT_VOTING_PERIOD_MS if value is None else int(value)


def passes(approvals: int, orgs: int, share: tuple[int, int]) -> bool:
    """More than `share` of `orgs` approve (strictly: 2 of 3 is not more than 2/3)."""
    num, den = share
    return orgs > 0 and approvals * den > num * orgs


# --- validator-set dry run ----------------------------------------------------------------


@dataclass(frozen=True)
class QuorumCheck:
    """What removing validators would leave: the remaining set, its quorum (n - f) and
    the faults it tolerates, how many of the remaining are known to be live, and
    whether that is enough to decide."""

    remaining: tuple[str, ...]
    quorum: int
    tolerated_faults: int
    live: int
    can_reach_quorum: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"remaining": list(self.remaining), "quorum": self.quorum,
                "tolerated_faults": self.tolerated_faults, "live": self.live,
                "can_reach_quorum": self.can_reach_quorum, "reason": self.reason}


def validator_addition(validators: Sequence[str], add: str,
                       live: Collection[str] | None = None) -> QuorumCheck:
    """Whether the set plus `add` can reach a quorum: the added validator is counted
    as live (its operator starts its node before the change takes effect), the others
    as `live` says (None: all)."""
    grown = (*validators, add)
    n = len(grown)
    quorum = bft_quorum(n)
    alive = n if live is None else len(set(validators) & set(live)) + 1
    ok = alive >= quorum
    reason = (f"{alive} of the {n} validators would be live; a quorum is {quorum}"
              + ("" if ok else ": the network could not commit blocks"))
    return QuorumCheck(grown, quorum, (n - 1) // 3, alive, ok, reason)


def bft_quorum(n: int) -> int:
    """n - f with f = floor((n - 1) / 3): the votes a set of n validators needs."""
    return n - (n - 1) // 3 if n > 0 else 0


def validator_removal(validators: Sequence[str], remove: Collection[str],
                      live: Collection[str] | None = None) -> QuorumCheck:
    """Whether the validator set minus `remove` can still reach a quorum: it must not be
    empty, and the validators known to be live (`live`; None: assume all are) among
    the remaining must number at least the remaining set's quorum."""
    unknown = sorted(set(remove) - set(validators))
    remaining = tuple(v for v in validators if v not in set(remove))
    n = len(remaining)
    quorum = bft_quorum(n)
    alive = n if live is None else len(set(remaining) & set(live))
    if unknown:
        return QuorumCheck(remaining, quorum, 0, alive, False,
                           f"not a validator: {', '.join(unknown)}")
    if n == 0:
        return QuorumCheck(remaining, 0, 0, 0, False, "no validator would remain")
    ok = alive >= quorum
    reason = (f"{alive} of the remaining {n} validators are live; a quorum is {quorum}"
              + ("" if ok else ": the network could not commit blocks"))
    return QuorumCheck(remaining, quorum, (n - 1) // 3, alive, ok, reason)


# --- actions: check, apply ----------------------------------------------------------------


def check_action(gov: CallContext, action: Any, args: Any, *, applying: bool = False
                 ) -> dict[str, Any]:
    """The action's arguments, checked against the state and normalised (what is
    stored in the proposal). Raises ContractError for anything the chain would refuse.
    `applying`: the check again at application, where a height that has passed since
    the proposal is no longer an error (an activation then counts from the next block)."""
    if action not in ACTIONS:
        raise ContractError(f"unknown action {str(action)[:40]!r}; one of "
                            f"{', '.join(ACTIONS)}", code="bad_argument")
    if not isinstance(args, dict):
        raise ContractError("'args' must be a map", code="bad_argument")
    m = members_context(gov)
    if action in VALIDATOR_ACTIONS:
        return _check_validator_action(m, action, args)
    if action == ADD_ORG:
        check_args(args, {"ca", "members"}, action)
        ders = args.get("members")
        if (not isinstance(args.get("ca"), bytes) or not isinstance(ders, list)
                or not all(isinstance(d, bytes) for d in ders)):
            raise ContractError("add_org needs 'ca' (DER) and 'members' (a list of DER)",
                                code="bad_argument")
        members.verify_new_org(m, args["ca"], ders)
        return {"ca": args["ca"], "members": ders}
    if action == REMOVE_ORG:
        check_args(args, {"org"}, action)
        org_id = args.get("org")
        if not isinstance(org_id, str):
            raise ContractError("remove_org needs 'org' (an org id)", code="bad_argument")
        members.check_org_removal(m, org_id)
        return {"org": org_id}
    if action == REVOKE_CERT:
        check_args(args, {"ca", "serial"}, action)
        fingerprint = members.check_fingerprint(args.get("ca"))
        serial = members.check_serial(args.get("serial"))
        members.active_ca_org(m, fingerprint)
        if m.get(members.revoked_key(fingerprint, serial)) is not None:
            raise ContractError(f"serial {serial} is already revoked", code="duplicate")
        return {"ca": fingerprint, "serial": serial.to_bytes(members.SERIAL_BYTES, "big")}
    if action == ACTIVATE_CONTRACT:
        return _check_activation(gov, args, applying)
    check_args(args, {"name", "value"}, action)
    name = args.get("name")
    if name not in PARAMS:
        raise ContractError(f"parameter {str(name)[:40]!r} cannot be set; settable: "
                            f"{', '.join(sorted(PARAMS))}", code="bad_argument")
    value = PARAMS[name](args.get("value"))
    return {"name": name, "value": list(value) if isinstance(value, tuple) else value}


def _check_activation(gov: CallContext, args: dict[str, Any], applying: bool
                      ) -> dict[str, Any]:
    """{contract, version, height}: a contract name, a version 1..MAX_CONTRACT_VERSION,
    and the height it serves from (0: the block after the decision applies). Which
    versions exist is a question about each node's software, not about the chain, so
    it is not checked here (a node lacking one stops at its height); the dry run
    checks it against the asking node's software."""
    check_args(args, {"contract", "version", "height"}, ACTIVATE_CONTRACT)
    contract, version = args.get("contract"), args.get("version")
    if (not isinstance(contract, str) or not contract.isascii() or not contract
            or len(contract) > MAX_NAME_BYTES):
        raise ContractError("activate_contract needs 'contract' (a contract name)",
                            code="bad_argument")
    if (not isinstance(version, int) or isinstance(version, bool)
            or not 1 <= version <= MAX_CONTRACT_VERSION):
        raise ContractError(f"'version' must be in 1..{MAX_CONTRACT_VERSION}",
                            code="bad_argument")
    height = (_uint_arg(args.get("height"), "height") if applying
              else _effective_height(gov, args.get("height")))
    pending = [h for h, _ in activations(gov._state, contract) if h > gov.height]
    if len(pending) >= MAX_PENDING_ACTIVATIONS:
        raise ContractError(f"{contract} has {MAX_PENDING_ACTIVATIONS} activations pending "
                            "already", code="too_many_activations")
    return {"contract": contract, "version": version, "height": height}


def _apply_activation(gov: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Record the activation: from its height, or from the block after this one if that
    height has come already (a decision never changes a block that has begun). The
    list keeps the version in force now and the later ones, ascending by height; one at
    the same height as an earlier decision replaces it."""
    contract, version = args["contract"], args["version"]
    from_height = max(args["height"], gov.height + 1)
    kept = [(h, v) for h, v in activations(gov._state, contract) if h != from_height]
    current = active_version(gov._state, contract, gov.height)
    later = [(h, v) for h, v in kept if h > gov.height]
    entries = [(gov.height, current), *later] if current != BASE_VERSION else later
    entries = sorted([*entries, (from_height, version)])
    gov.put(version_key(contract), cbor.encode([[h, v] for h, v in entries]))
    return {"contract": contract, "version": version, "from_height": from_height}


def _check_validator_action(m: CallContext, action: str, args: dict[str, Any]
                            ) -> dict[str, Any]:
    if action == ADD_VALIDATOR:
        check_args(args, {"name", "key", "org", "address", "tls"}, action)
        record = members.check_new_validator(m, args)
        return {"name": record.name, "key": record.public_key, "org": record.org,
                "address": record.address, "tls": record.tls_fingerprint}
    if action == REMOVE_VALIDATOR:
        check_args(args, {"validator"}, action)
        removed = members.check_validator_removal(m, args.get("validator"))
        names = [r.name for r in members.validator_records(m)]
        # On chain nobody knows who is live: every validator is assumed to be. The dry
        # run (`dry_run`) judges with the live validators a node sees.
        check = validator_removal(names, [removed.name])
        if not check.can_reach_quorum:
            raise ContractError(check.reason, code="no_quorum")
        return {"validator": removed.name}
    check_args(args, {"validator", "key"}, action)
    replaced = members.check_key_replacement(m, args.get("validator"), args.get("key"))
    return {"validator": replaced.name, "key": replaced.public_key}


def _apply_validator_action(m: CallContext, action: str, args: dict[str, Any]
                            ) -> dict[str, Any]:
    if action == ADD_VALIDATOR:
        record = members.check_new_validator(m, args)
        new = members.apply_validator_change(m, None, record)
    elif action == REMOVE_VALIDATOR:
        new = members.apply_validator_change(m, args["validator"], None)
    else:
        record = members.check_key_replacement(m, args["validator"], args["key"])
        new = members.apply_validator_change(m, args["validator"], record)
    return {"validators": [r.name for r in new], "from_height": m.height + 1,
            "quorum": bft_quorum(len(new))}


def apply_action(gov: CallContext, action: str, args: dict[str, Any], record_id: int,
                 approvers: Sequence[bytes] = ()) -> dict[str, Any]:
    """Apply a checked action to the state of `gov`; return what changed. The checks
    run again first: the state may have changed since the proposal."""
    args = check_action(gov, action, args, applying=True)
    m = members_context(gov)
    if action in VALIDATOR_ACTIONS:
        return _apply_validator_action(m, action, args)
    if action == ADD_ORG:
        org = members.verify_new_org(m, args["ca"], args["members"])
        members.register_org(m, org, record_id)
        return {"org_added": org.ca.org_id, "ca": org.ca.fingerprint.hex(),
                "members": [{"key": x.public_key.hex(), "name": x.name,
                             "roles": sorted(r.value for r in x.roles)} for x in org.members]}
    if action == REMOVE_ORG:
        _require_admin_outside(gov, args["org"], approvers)
        members.remove_org(m, args["org"])
        return {"org_removed": args["org"]}
    if action == REVOKE_CERT:
        serial = int.from_bytes(args["serial"], "big")
        org_id = members.active_ca_org(m, args["ca"])
        members.revoke_certificate(m, args["ca"], serial, org_id)
        return {"revoked": {"org": org_id, "ca": args["ca"].hex(), "serial": serial}}
    if action == ACTIVATE_CONTRACT:
        return _apply_activation(gov, args)
    gov.put(param_key(args["name"]), cbor.encode(args["value"]))
    effect: dict[str, Any] = {"param": args["name"], "value": args["value"]}
    if args["name"].startswith(TIMEOUT_PREFIX):
        effect["from_height"] = gov.height + 1
    return effect


def _require_admin_outside(gov: CallContext, org_id: str, approvers: Sequence[bytes]) -> None:
    """Removing an organisation must leave an admin somewhere: one of the approving
    admins (or, in a dry run, the proposer) from another organisation still counts."""
    state = gov._state
    for key in approvers:
        record = members.member_of(state, key)
        if record is not None and record["org"] != org_id and members.is_admin(
                state, key, gov.time_ms):
            return
    raise ContractError(f"removing {org_id!r} would leave no known admin in another "
                        "organisation", code="no_admin_left")


# --- methods --------------------------------------------------------------------------------


def _caller_org(ctx: CallContext) -> str:
    record = members.member_of(ctx._state, ctx.caller)
    invariant(record is not None, "caller passed authorize without a member record")
    assert record is not None
    return str(record["org"])


def _effective_height(ctx: CallContext, value: Any) -> int:
    """0: as soon as it passes; else a height after this block, within reach."""
    height = _uint_arg(0 if value is None else value, "effective_height")
    if height and not ctx.height < height <= ctx.height + MAX_EFFECTIVE_DELAY_BLOCKS:
        raise ContractError(f"'effective_height' must be after this block ({ctx.height}) "
                            f"and at most {MAX_EFFECTIVE_DELAY_BLOCKS} blocks ahead",
                            code="bad_argument")
    return height


def _new_record(ctx: CallContext, action: str, args: dict[str, Any],
                effective_height: int) -> dict[str, Any]:
    return {
        "id": ctx.log_index, "action": action, "args": args,
        "effective_height": effective_height,  # 0: the block after it passes
        "proposer": ctx.caller, "org": _caller_org(ctx), "height": ctx.height,
        "time": ctx.time_ms, "deadline": ctx.time_ms + voting_period_ms(ctx._state),
        "votes": [],  # {org, key, approve, height}, one per organisation
        "status": OPEN, "decided_height": None, "apply_height": None, "reason": "",
        "effect": None,
    }


def _load(ctx: CallContext, proposal_id: int) -> dict[str, Any]:
    raw = ctx.get(proposal_key(proposal_id))
    if raw is None:
        raise ContractError(f"no proposal {proposal_id}", code="not_found")
    record: dict[str, Any] = _decode(raw, dict, "proposal")
    return record


def _prune_open(ctx: CallContext) -> list[int]:
    """The open list without proposals whose voting period has ended."""
    return [i for i in _id_list(ctx, OPEN_KEY) if _load(ctx, i)["deadline"] >= ctx.time_ms]


def propose(ctx: CallContext, args: dict[str, Any]) -> None:
    """Propose an action {action, args, effective_height}; its id is this transaction's
    log index. Votes are separate: proposing is not voting."""
    check_args(args, {"action", "args", "effective_height"}, "propose")
    action = args.get("action")
    checked = check_action(ctx, action, args.get("args", {}))
    effective = _effective_height(ctx, args.get("effective_height"))
    still_open = _prune_open(ctx)
    if len(still_open) >= MAX_OPEN_PROPOSALS:
        raise ContractError(f"{MAX_OPEN_PROPOSALS} proposals are open already",
                            code="too_many_proposals")
    record = _new_record(ctx, str(action), checked, effective)
    ctx.put(proposal_key(ctx.log_index), cbor.encode(record))
    _put_id_list(ctx, OPEN_KEY, [*still_open, ctx.log_index])
    ctx.emit("proposed", {"id": ctx.log_index, "action": action, "org": record["org"]})


def tally(state: StateReader, votes: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(approvals, rejections, registered orgs), counting only the votes of
    organisations registered now."""
    registered = set(members.orgs(state))
    approvals = sum(1 for v in votes if v["approve"] and v["org"] in registered)
    rejections = sum(1 for v in votes if not v["approve"] and v["org"] in registered)
    return approvals, rejections, len(registered)


def vote(ctx: CallContext, args: dict[str, Any]) -> None:
    """Vote {proposal, approve} for the caller's organisation: one vote per
    organisation, a second is refused (`duplicate`). The vote that makes approvals
    exceed the threshold passes the proposal; one that makes that impossible rejects
    it."""
    check_args(args, {"proposal", "approve"}, "vote")
    proposal_id = _uint_arg(args.get("proposal"), "proposal")
    approve = args.get("approve")
    if not isinstance(approve, bool):
        raise ContractError("'approve' must be true or false", code="bad_argument")
    record = _load(ctx, proposal_id)
    if record["status"] != OPEN:
        raise ContractError(f"proposal {proposal_id} is {record['status']}", code="closed")
    if ctx.time_ms > record["deadline"]:
        raise ContractError(f"proposal {proposal_id} expired at block time "
                            f"{record['deadline']}", code="expired")
    org = _caller_org(ctx)
    if any(v["org"] == org for v in record["votes"]):
        raise ContractError(f"organisation {org!r} has voted on proposal {proposal_id}",
                            code="duplicate")
    record["votes"].append({"org": org, "key": ctx.caller, "approve": approve,
                            "height": ctx.height})
    _decide(ctx, record)
    ctx.put(proposal_key(proposal_id), cbor.encode(record))
    ctx.emit("voted", {"id": proposal_id, "org": org, "approve": approve,
                       "status": record["status"]})


def _decide(ctx: CallContext, record: dict[str, Any]) -> None:
    approvals, rejections, orgs = tally(ctx._state, record["votes"])
    share = threshold(ctx._state)
    if passes(approvals, orgs, share):
        record["status"] = PASSED
        apply_height = max(record["effective_height"], ctx.height + 1)
        while len(_id_list(ctx, due_key(apply_height))) >= MAX_DUE_PER_BLOCK:
            apply_height += 1
        record["apply_height"] = apply_height
        _put_id_list(ctx, due_key(apply_height), [*_id_list(ctx, due_key(apply_height)),
                                                  record["id"]])
    elif not passes(orgs - rejections, orgs, share):
        record["status"] = REJECTED
    else:
        return
    record["decided_height"] = ctx.height
    _put_id_list(ctx, OPEN_KEY, [i for i in _id_list(ctx, OPEN_KEY) if i != record["id"]])


# --- the begin-block hook ---------------------------------------------------------------------


def begin_block(state: Overlay, height: int, time_ms: int, log_size: int) -> None:
    """Apply the proposals due at `height`, in the order they passed. Each applies in
    its own overlay: one that can no longer apply (its org was removed meanwhile, its
    certificate expired) is recorded as failed with the reason, and changes nothing.
    Never raises: a stale decision cannot make a block invalid."""
    raw = state.get(namespaced(NAME, due_key(height)))
    if raw is None:
        return
    # The hook's own bookkeeping is written directly: the per-transaction write limit
    # is for transactions (each application below runs under it in its own overlay).
    state.writes[namespaced(NAME, due_key(height))] = None
    deferred: list[int] = []
    for proposal_id in _decode(raw, list, "due list"):
        record_key = namespaced(NAME, proposal_key(proposal_id))
        stored = state.get(record_key)
        invariant(stored is not None, f"due proposal {proposal_id} missing")
        assert stored is not None
        record: dict[str, Any] = _decode(stored, dict, "proposal")
        trial = Overlay(state)
        ctx = _hook_context(trial, height, time_ms, log_size)
        if record["action"] in VALIDATOR_ACTIONS and members.change_budget(
                members_context(ctx)) <= 0:
            # This height's validator changes are spent: the next height applies it.
            record["apply_height"] = height + 1
            deferred.append(proposal_id)
            state.writes[record_key] = cbor.encode(record)
            continue
        approvers = [v["key"] for v in record["votes"] if v["approve"]]
        try:
            record["effect"] = apply_action(ctx, record["action"], record["args"],
                                            proposal_id, approvers)
            record["status"] = APPLIED
            state.merge(trial.writes)
        except ContractError as exc:
            record["status"], record["reason"] = FAILED, f"{exc.code}: {exc.reason}"
        state.writes[record_key] = cbor.encode(record)
    if deferred:
        next_key = namespaced(NAME, due_key(height + 1))
        later = state.get(next_key)
        already = [] if later is None else list(_decode(later, list, "due list"))
        state.writes[next_key] = cbor.encode([*deferred, *already])


def _hook_context(state: Overlay, height: int, time_ms: int, log_size: int) -> CallContext:
    # No caller and no transaction: the hook acts for the consortium's decision.
    return CallContext(contract=NAME, caller=b"", height=height, time_ms=time_ms,
                       log_index=log_size, tx_id=b"", _state=state)


# --- dry run and queries ------------------------------------------------------------------------


def dry_run(state: StateReader, proposer: bytes, args: dict[str, Any], height: int,
            time_ms: int, *, admins: Sequence[bytes] = (), validators: Sequence[str] = (),
            live: Collection[str] | None = None,
            software: Mapping[str, Collection[int]] | None = None) -> dict[str, Any]:
    """What a `propose {args}` would do if it passed and applied now, against `state`
    (the committed head) at block `height` and `time_ms`: `{ok: true, effect}` or
    `{ok: false, error, reason}`. Nothing is written. `admins` are admin keys that
    would approve (a removal must leave one outside the removed organisation; the
    proposer counts too). For `remove_validator` it reports whether the remaining
    validators could still reach a quorum (`validators`, `live`). For
    `activate_contract` it refuses (`unknown_version`) a version missing from
    `software` (contract name -> versions this node has; None: not checked)."""
    action = args.get("action")
    ctx = CallContext(contract=NAME, caller=proposer, height=height, time_ms=time_ms,
                      log_index=0, tx_id=b"", _state=Overlay(state))
    try:
        check_args(args, {"action", "args", "effective_height"}, "propose")
        _effective_height(ctx, args.get("effective_height"))
        checked = check_action(ctx, action, args.get("args", {}))
        effect = apply_action(ctx, str(action), checked, 0, [proposer, *admins])
    except ContractError as exc:
        return {"ok": False, "action": str(action), "error": exc.code, "reason": exc.reason}
    if action in VALIDATOR_ACTIONS:
        return _with_quorum_check(str(action), checked, effect, validators, live)
    if action == ACTIVATE_CONTRACT and software is not None:
        missing = missing_version(software, checked["contract"], checked["version"])
        if missing:
            return {"ok": False, "action": action, "error": "unknown_version",
                    "reason": missing}
    return {"ok": True, "action": action, "effect": effect}


def missing_version(software: Mapping[str, Collection[int]], contract: str, version: int
                    ) -> str:
    """Why this node's software cannot serve `contract` at `version` ("" if it can)."""
    have = software.get(contract)
    if have is None:
        return f"this node's software has no contract {contract!r}"
    if version not in have:
        return (f"this node's software has no version {version} of contract {contract!r} "
                f"(it has {', '.join(map(str, sorted(have)))}); every node needs it before "
                "the activation height, or it stops there")
    return ""


def _with_quorum_check(action: str, args: dict[str, Any], effect: dict[str, Any],
                       validators: Sequence[str], live: Collection[str] | None
                       ) -> dict[str, Any]:
    """A validator change's dry run, judged with the validators seen live: refused if
    the new set could not reach a quorum with them. A replaced key counts as not live
    (its node signs with the old key until its operator switches)."""
    if action == ADD_VALIDATOR:
        check = validator_addition(validators, args["name"], live)
    elif action == REMOVE_VALIDATOR:
        check = validator_removal(validators, [args["validator"]], live)
    else:
        others = validator_removal(validators, [args["validator"]], live)
        n = len(validators)
        ok = others.live >= bft_quorum(n)
        check = QuorumCheck(tuple(validators), bft_quorum(n), (n - 1) // 3, others.live, ok,
                            f"{others.live} of the {n} validators are live besides the one "
                            f"whose key changes; a quorum is {bft_quorum(n)}"
                            + ("" if ok else ": the network could not commit blocks"))
    if not check.can_reach_quorum:
        return {"ok": False, "action": action, "error": "no_quorum",
                "reason": check.reason, "quorum": check.to_json()}
    return {"ok": True, "action": action, "effect": effect, "quorum": check.to_json()}


def decode_proposal(raw: bytes) -> dict[str, Any]:
    record: dict[str, Any] = _decode(raw, dict, "proposal")
    return record


def status_at(record: dict[str, Any], time_ms: int) -> str:
    """The proposal's status at block time `time_ms`: an open proposal past its
    deadline is expired (it can no longer pass)."""
    if record["status"] == OPEN and time_ms > record["deadline"]:
        return EXPIRED
    return str(record["status"])


def get_proposal(state: StateReader, proposal_id: int) -> dict[str, Any] | None:
    raw = state.get(namespaced(NAME, proposal_key(proposal_id)))
    return None if raw is None else decode_proposal(raw)


Action = Literal["add_org", "remove_org", "revoke_cert", "set_param", "activate_contract",
                 "add_validator", "remove_validator", "replace_validator_key"]
"""`ACTIONS` as a type (a test keeps the two equal)."""
Height = Annotated[int, msgspec.Meta(ge=0, description="a block height (0: as soon as "
                                                       "it passes)")]


class ProposeArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`args` are the action's own (docs/governance.md lists them per action)."""

    action: Action
    args: dict[str, Any] = {}
    effective_height: Height | None = None


class VoteArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    proposal: Annotated[int, msgspec.Meta(ge=0, description="the proposal's id")]
    approve: bool


ALL_INDEX = "all"


def index_rule(events: Sequence[Event]) -> list[tuple[str, bytes]]:
    """The secondary-index rows of a successful call: every `proposed` event files the
    proposal (its id is the call's log index) under `all` (ADR 0013)."""
    return [(ALL_INDEX, b"") for event in events if event.kind == "proposed"]


CONTRACT = Contract(
    name=NAME,
    methods={
        "propose": MethodSpec(propose, members.ADMIN_ONLY, "propose a consortium decision "
                              "{action, args, effective_height}", ProposeArgs),
        "vote": MethodSpec(vote, members.ADMIN_ONLY,
                           "vote for the caller's org {proposal, approve}", VoteArgs),
    },
    description="Governance: proposals and votes of the member organisations.",
    begin_block=begin_block,
)
