"""Co-signed deposits (evidence v2, issue 15): every rule with its refusal code, on an
in-process chain whose genesis starts evidence at version 2. The four-validator test
with real processes and receipts is tests/test_cosign_cluster.py; the offline proof of
each state is tests/test_cosign_proof.py."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ADMIN_KEY, GENESIS_TIME_MS, key, member_cert, org_ca
from tests.scf_net import ScfNet, pub
from tidechain.contracts import evidence
from tidechain.contracts.evidence import cosign, queries
from tidechain.core.crypto import sha256
from tidechain.identity import Role
from tidechain.ledger.access import Reader, ReadForbidden, Unauthenticated
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator

TALLY, CARRIER, PORT, PORT2, OUTSIDER, TALLY2 = range(500, 506)
ADMINS = {"carrier-co": 510, "port-co": 511, "other-co": 512}
"""Every genesis organisation needs an admin."""
DOC = sha256(b"tally report 2026-12-07 vessel TIDE STAR")
DAY_MS = 86_400_000
VALID_UNTIL_MS = GENESIS_TIME_MS + 2 * 365 * DAY_MS


def _org(name: str, members: list[tuple[int, tuple[Role, ...]]]) -> GenesisOrg:
    return GenesisOrg(org_ca(name), tuple(member_cert(n, roles, org=name,
                                                      not_after_ms=VALID_UNTIL_MS)
                                          for n, roles in members))


@functools.cache
def shipping_genesis(versions: tuple[tuple[str, int], ...] = (("evidence", 2),)) -> Genesis:
    """A tally company, a carrier, a port (two members), and an outsider's org."""
    return Genesis(
        "cosign-net", GENESIS_TIME_MS,
        (GenesisValidator("cosign-net/node0", key(1000).public_key),),
        (_org("test-org", [(ADMIN_KEY, (Role.ADMIN,)), (TALLY, (Role.DEPOSITOR,)),
                           (TALLY2, (Role.DEPOSITOR,))]),
         _org("carrier-co", [(ADMINS["carrier-co"], (Role.ADMIN,)), (CARRIER, (Role.CARRIER,))]),
         _org("port-co", [(ADMINS["port-co"], (Role.ADMIN,)), (PORT, (Role.ENTERPRISE,)),
                          (PORT2, (Role.ENTERPRISE,))]),
         _org("other-co", [(ADMINS["other-co"], (Role.ADMIN,)),
                           (OUTSIDER, (Role.CARRIER, Role.DEPOSITOR))])),
        versions)


class Net(ScfNet):
    def ev(self, signer: int, method: str, args: dict[str, Any], advance_ms: int = 1) -> str:
        return self.call(signer, "evidence", method, args, advance_ms).error

    def record(self, index: int) -> dict[str, Any]:
        found = evidence.get_deposit(self.chain.state, index)
        assert found is not None
        return found

    def set_param(self, name: str, value: Any) -> str:
        """Propose `gov.set_param` and pass it by every organisation's admin."""
        from tidechain.client import txbuilder as tb

        error = self.call(ADMIN_KEY, "gov", "propose", tb.propose_args(
            "set_param", {"name": name, "value": value})).error
        if error:
            return error
        proposal = self.last_log_index
        for admin in (ADMIN_KEY, *ADMINS.values()):
            error = self.call(admin, "gov", "vote", tb.vote_args(proposal, True)).error
            assert error in ("", "closed"), error  # closed: it passed already
        self.run()
        return ""

    def status(self, index: int) -> str:
        return queries.deposit_from_record(self.record(index), self.chain.head_time_ms).status


SLOTS = [{"key": pub(CARRIER)}, {"org": "port-co", "role": "enterprise"},
         {"key": pub(OUTSIDER)}]


def tally(net: Net, threshold: int = 2, **extra: Any) -> int:
    assert net.ev(TALLY, "deposit", {"digest": DOC, "cosigners": SLOTS,
                                     "threshold": threshold, **extra}) == ""
    return net.last_log_index


def test_pending_then_effective_at_the_kth_signature() -> None:
    net = Net(shipping_genesis())
    at = tally(net)
    assert net.status(at) == cosign.PENDING
    assert net.ev(CARRIER, "sign", {"of": at, "digest": DOC}) == ""
    assert net.status(at) == cosign.PENDING
    assert net.ev(PORT, "sign", {"of": at, "digest": DOC}) == ""
    second = net.last_log_index
    record = net.record(at)
    assert net.status(at) == cosign.EFFECTIVE
    assert record["effective"] == {"index": second, "height": net.chain.height,
                                   "time": net.chain.head_time_ms}
    assert [s["slot"] for s in record["signed"]] == [0, 1]
    # the third named party may still sign before the deadline; effective stays put
    assert net.ev(OUTSIDER, "sign", {"of": at, "digest": DOC}) == ""
    assert net.record(at)["effective"]["index"] == second


def test_refusals_name_their_reason() -> None:
    net = Net(shipping_genesis())
    at = tally(net)
    assert net.ev(TALLY2, "sign", {"of": at, "digest": DOC}) == "not_a_cosigner"
    assert net.ev(CARRIER, "sign", {"of": at, "digest": sha256(b"other")}) == "digest_mismatch"
    assert net.ev(CARRIER, "sign", {"of": at, "digest": DOC}) == ""
    assert net.ev(CARRIER, "sign", {"of": at, "digest": DOC}) == "already_signed"
    assert net.ev(PORT, "sign", {"of": at, "digest": DOC}) == ""
    # the port's slot is filled by PORT: a second port member matches nothing open
    assert net.ev(PORT2, "sign", {"of": at, "digest": DOC}) == "already_signed"
    assert net.ev(CARRIER, "sign", {"of": at + 100, "digest": DOC}) == "not_found"
    assert net.ev(TALLY, "deposit", {"digest": DOC}) == ""
    plain = net.last_log_index
    assert net.ev(CARRIER, "sign", {"of": plain, "digest": DOC}) == "not_cosigned"
    # the regulator reads and never signs: not a role `sign` admits
    bad = [({"cosigners": []}, "bad_argument"),
           ({"cosigners": SLOTS, "threshold": 4}, "bad_argument"),
           ({"cosigners": SLOTS, "threshold": 0}, "bad_argument"),
           ({"cosigners": [SLOTS[0], SLOTS[0]]}, "bad_argument"),
           ({"cosigners": [{"org": "port-co", "role": "regulator"}]}, "bad_argument"),
           ({"cosigners": [{"key": b"short"}]}, "bad_argument"),
           ({"cosigners": [{"key": pub(1), "org": "x"}]}, "bad_argument"),
           ({"cosigners": [SLOTS[0]] * 7}, "bad_argument"),
           ({"threshold": 1}, "bad_argument"),
           ({"cosigners": SLOTS, "deadline": GENESIS_TIME_MS}, "bad_argument"),
           ({"cosigners": SLOTS, "deadline": GENESIS_TIME_MS + 400 * DAY_MS}, "bad_argument"),
           ({"public": "yes"}, "bad_argument")]
    for extra, code in bad:
        assert net.ev(TALLY, "deposit", {"digest": DOC, **extra}) == code, extra


def test_lapses_at_its_deadline() -> None:
    net = Net(shipping_genesis())
    deadline = net.now + 10 * 60_000
    at = tally(net, deadline=deadline)
    assert net.ev(CARRIER, "sign", {"of": at, "digest": DOC}) == ""
    net.run(advance_ms=10 * 60_000)
    assert net.status(at) == cosign.LAPSED
    assert net.ev(PORT, "sign", {"of": at, "digest": DOC}) == "lapsed"
    assert net.record(at)["effective"] is None


def test_default_deadline_is_the_governed_window() -> None:
    net = Net(shipping_genesis())
    at = tally(net)
    assert net.record(at)["cosign"]["deadline"] == net.chain.head_time_ms + 30 * DAY_MS
    assert net.set_param(cosign.DEADLINE_PARAM, DAY_MS) == ""
    at = tally(net)
    assert net.record(at)["cosign"]["deadline"] == net.chain.head_time_ms + DAY_MS
    assert net.set_param(cosign.DEADLINE_PARAM, 400 * DAY_MS) == "bad_argument"


def test_version_1_keeps_its_rules() -> None:
    """A network started before v2 (no `versions` in its genesis) refuses v2's arguments
    and methods until governance activates v2; its records then read the same."""
    net = Net(shipping_genesis(()))
    assert net.ev(TALLY, "deposit", {"digest": DOC, "cosigners": SLOTS}) == "bad_argument"
    assert net.ev(CARRIER, "sign", {"of": 0, "digest": DOC}) == "unknown_method"
    assert net.ev(TALLY, "deposit", {"digest": DOC, "meta": {"k": "v"}}) == ""
    old = net.last_log_index
    before = net.record(old)
    assert "public" not in before and "cosign" not in before
    assert queries.deposit_from_record(before, net.now).status == cosign.EFFECTIVE


def test_publish_opens_a_deposit_and_its_signatures_to_anyone() -> None:
    net = Net(shipping_genesis())
    at = tally(net)
    assert net.ev(CARRIER, "sign", {"of": at, "digest": DOC}) == ""
    view = net.view()
    anonymous = Reader(None)
    query = evidence.QUERIES["deposit"]  # (this in-process chain keeps no index pages)
    params = queries.DepositParams(index=at)
    with pytest.raises(Unauthenticated):  # hidden reads as members-only, as a missing one
        query.answer(view, params, None, anonymous, "deposit")
    assert net.ev(CARRIER, "publish", {"of": at}) == "forbidden"  # CARRIER is no depositor
    assert net.ev(TALLY2, "publish", {"of": at}) == "forbidden"
    assert net.ev(TALLY, "publish", {"of": at}) == ""
    assert net.ev(TALLY, "publish", {"of": at}) == "already_public"
    found = query.answer(net.view(), params, None, anonymous, "deposit")
    assert found.public and found.status == cosign.PENDING
    # entries: the deposit and its signature are public; a refused attempt is not
    audience = evidence.APP.record_audience
    assert audience is not None
    assert audience(net.chain.state, at, "deposit", {}, True).public  # type: ignore[union-attr]
    assert audience(net.chain.state, at + 1, "sign", {"of": at}, True).public  # type: ignore[union-attr]
    assert audience(net.chain.state, at + 1, "sign", {"of": at}, False) is None


def test_cosigners_read_what_they_must_sign() -> None:
    net = Net(shipping_genesis())
    at = tally(net)
    query = evidence.QUERIES["deposit"]
    params = queries.DepositParams(index=at)
    port = Reader(pub(PORT2), frozenset({Role.ENTERPRISE}), "port-co")
    outsider_org = Reader(pub(TALLY2), frozenset({Role.DEPOSITOR}), "test-org")
    assert query.answer(net.view(), params, None, port, "deposit").index == at
    with pytest.raises(ReadForbidden):
        query.answer(net.view(), params, None, outsider_org, "deposit")
    # (`awaiting` reads the index pages this in-process chain does not keep: it is
    # tested on real nodes, tests/test_cosign_cluster.py)


SEEN: Counter[str] = Counter()
"""What the property below exercised, so that it cannot hold vacuously."""


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([CARRIER, PORT, PORT2, OUTSIDER, TALLY2]), max_size=8),
       st.integers(1, 3))
def test_effective_exactly_when_k_distinct_slots_signed(signers: list[int],
                                                        threshold: int) -> None:
    """Whatever order members try to sign in, the deposit is effective exactly when
    `threshold` distinct slots are filled, by distinct members, each slot once, and at
    the block of the threshold-th signature."""
    net = Net(shipping_genesis())
    at = tally(net, threshold=threshold)
    filled: list[int] = []
    became: int | None = None
    for signer in signers:
        error = net.ev(signer, "sign", {"of": at, "digest": DOC})
        record = net.record(at)
        SEEN[error or "signed"] += 1
        if error == "":
            filled.append(signer)
            if len(filled) == threshold:
                became = net.last_log_index
        assert len(record["signed"]) == len(filled)
    record = net.record(at)
    keys = [s["key"] for s in record["signed"]]
    assert len(set(keys)) == len(keys)
    assert len({s["slot"] for s in record["signed"]}) == len(keys)
    effective = net.status(at) == cosign.EFFECTIVE
    assert effective == (len(filled) >= threshold)
    assert (record["effective"] or {}).get("index") == became
    SEEN["effective" if effective else "pending"] += 1


def test_the_property_exercised_every_outcome() -> None:
    """Runs after the property above (file order): every outcome was met."""
    for outcome in ("signed", "already_signed", "not_a_cosigner", "effective", "pending"):
        assert SEEN[outcome] > 0, (outcome, SEEN)
    print(f"\nco-signing outcomes exercised: {dict(SEEN)}")
