"""Governance: proposals and votes of the member organisations, applied at their
effective height by the begin-block hook; the dry run; a real node through the CLI."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import DAY_MS, GENESIS_TIME_MS, ca_seed, key, org_ca
from tests.nodes import RunningNode, running_node, tide
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import read_key
from tidechain.client.sdk import Client
from tidechain.client.txbuilder import call_tx, propose_args
from tidechain.contracts import default_registry, governance, members
from tidechain.core.crypto import SigningKey, sha256
from tidechain.identity import (
    Role,
    issue_member_cert,
    org_code_check_char,
    uscc_check_char,
    validate_uscc,
)
from tidechain.ledger.chain import Chain, PreparedBlock
from tidechain.ledger.runtime import Forbidden
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxBody

ORGS = ["alpha", "beta", "gamma", "delta"]
ADMIN = {org: 50 + 10 * i for i, org in enumerate(ORGS)}
DEPOSITOR = {org: 51 + 10 * i for i, org in enumerate(ORGS)}
SECOND_ADMIN = {org: 52 + 10 * i for i, org in enumerate(ORGS)}
NEWCOMER = {org: 53 + 10 * i for i, org in enumerate(ORGS)}
"""A key each organisation enrols later (delta's admin enrols delta's newcomer)."""
T0 = GENESIS_TIME_MS + 1000


def uscc(org: str) -> str:
    body = f"MA1G{'ABCD'[ORGS.index(org)]}00{ORGS.index(org) + 1}"
    first17 = "91310000" + body + org_code_check_char(body)
    return validate_uscc(first17 + uscc_check_char(first17))


def ca_der(org: str) -> bytes:
    return org_ca(org, uscc=uscc(org))


def cert(org: str, n: int, roles: tuple[Role, ...]) -> bytes:
    return issue_member_cert(ca_der(org), ca_seed(org), f"member {n}", key(n).public_key,
                             roles, GENESIS_TIME_MS - DAY_MS, GENESIS_TIME_MS + 365 * DAY_MS,
                             3_000_000 + n)


def org_members(org: str) -> list[bytes]:
    return [cert(org, ADMIN[org], (Role.ADMIN,)), cert(org, DEPOSITOR[org], (Role.DEPOSITOR,)),
            cert(org, SECOND_ADMIN[org], (Role.ADMIN,))]


@functools.cache
def genesis_of(orgs: tuple[str, ...]) -> Genesis:
    return Genesis("gov-net", GENESIS_TIME_MS,
                   (GenesisValidator("gov-net/node0", key(1000).public_key),),
                   tuple(GenesisOrg(ca_der(o), tuple(org_members(o))) for o in orgs))


GENESIS = genesis_of(tuple(ORGS[:3]))


def new_chain(g: Genesis = GENESIS) -> Chain:
    return Chain.at_genesis(g, default_registry())


_nonce = iter(range(1, 10**9))
_clock_ms = [T0]
"""The latest block time: transactions expire 20 hours after it (the limit is 24)."""


def call(signer: int, contract: str, method: str, args: dict[str, Any],
         *, g: Genesis = GENESIS) -> SignedTx:
    k: SigningKey = key(signer)
    body = TxBody(g.chain_id, k.public_key, next(_nonce).to_bytes(16, "big"),
                  _clock_ms[0] + 20 * 3_600_000, contract, method, args)
    return SignedTx.create(body, k)


def propose(signer: int, action: str, args: dict[str, Any], effective_height: int = 0,
            g: Genesis = GENESIS) -> SignedTx:
    return call(signer, "gov", "propose", {"action": action, "args": args,
                                           "effective_height": effective_height}, g=g)


def vote(signer: int, proposal: int, approve: bool = True, g: Genesis = GENESIS) -> SignedTx:
    return call(signer, "gov", "vote", {"proposal": proposal, "approve": approve}, g=g)


def deposit(signer: int, g: Genesis = GENESIS) -> SignedTx:
    return call(signer, "evidence", "deposit",
                {"digest": sha256(b"doc %d" % next(_nonce)), "meta": {}}, g=g)


class Runner:
    """Commit blocks one after another, a second of block time apart; a second chain
    re-executes each block as a peer would (`Chain.validate`), so the begin-block hook's
    writes are checked to be deterministic and covered by the header's state root."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.peer = Chain.at_genesis(chain.genesis, default_registry())
        self.time_ms = _clock_ms[0] = T0

    def skip(self, ms: int) -> None:
        """Let time pass without a block (the next block comes `ms` later)."""
        self.time_ms += ms
        _clock_ms[0] = self.time_ms

    def block(self, *txs: SignedTx, after_ms: int = 1000) -> PreparedBlock:
        self.time_ms += after_ms
        _clock_ms[0] = self.time_ms
        prepared = self.chain.prepare(list(txs), self.time_ms, "gov-net/node0")
        self.chain.advance(prepared)
        self.peer.advance(self.peer.validate(prepared.header, list(txs), lambda ids: set()))
        return prepared

    def ok(self, *txs: SignedTx) -> PreparedBlock:
        prepared = self.block(*txs)
        assert all(r.ok for r in prepared.results), [r.reason for r in prepared.results]
        return prepared

    def proposal(self, proposal_id: int) -> dict[str, Any]:
        record = governance.get_proposal(self.chain.state, proposal_id)
        assert record is not None
        return record


def errors(prepared: PreparedBlock) -> list[str]:
    return [r.error for r in prepared.results]


def proposal_id(prepared: PreparedBlock, i: int = 0) -> int:
    return prepared.first_log_index + i


# --- adding an organisation ---------------------------------------------------------------


def test_a_fourth_org_is_added_by_vote_and_acts_from_the_effective_height() -> None:
    run = Runner(new_chain())
    p = run.ok(propose(ADMIN["alpha"], "add_org",
                       {"ca": ca_der("delta"), "members": org_members("delta")}, 5))
    pid = proposal_id(p)
    run.ok(vote(ADMIN["alpha"], pid), vote(ADMIN["beta"], pid))  # height 2
    assert run.proposal(pid)["status"] == "open"  # 2 of 3 is not more than 2/3
    run.ok(vote(ADMIN["gamma"], pid))  # height 3: 3 of 3
    assert run.proposal(pid)["status"] == "passed"
    assert run.proposal(pid)["apply_height"] == 5
    newcomer = cert("delta", NEWCOMER["delta"], (Role.DEPOSITOR,))
    before = run.block(deposit(DEPOSITOR["delta"]),
                       call(ADMIN["delta"], "members", "enrol", {"cert": newcomer}))
    assert run.chain.height == 4 and errors(before) == ["forbidden", "forbidden"]
    after = run.ok(deposit(DEPOSITOR["delta"]),
                   call(ADMIN["delta"], "members", "enrol", {"cert": newcomer}))
    assert after.height == 5
    assert members.orgs(run.chain.state) == ["alpha", "beta", "gamma", "delta"]
    record = run.proposal(pid)
    assert record["status"] == "applied" and record["effect"]["org_added"] == "delta"
    enrolled = members.member_of(run.chain.state, key(DEPOSITOR["delta"]).public_key)
    assert enrolled is not None and enrolled["enrolled"] == pid

    # With four organisations, more than 2/3 is 3 of 4: the new org votes too.
    p2 = run.ok(propose(ADMIN["delta"], "set_param",
                        {"name": "gov.voting_period_ms", "value": 3_600_000}))
    pid2 = proposal_id(p2)
    run.ok(vote(ADMIN["alpha"], pid2), vote(ADMIN["delta"], pid2))
    assert run.proposal(pid2)["status"] == "open"
    run.ok(vote(ADMIN["beta"], pid2))
    assert run.proposal(pid2)["status"] == "passed"
    run.ok(deposit(DEPOSITOR["alpha"]))
    assert governance.voting_period_ms(run.chain.state) == 3_600_000


def test_add_org_is_validated_like_a_founding_org() -> None:
    run = Runner(new_chain())
    no_admin = [cert("delta", DEPOSITOR["delta"], (Role.DEPOSITOR,))]
    foreign = [cert("alpha", NEWCOMER["alpha"], (Role.ADMIN,))]
    refused = run.block(
        propose(ADMIN["alpha"], "add_org", {"ca": ca_der("delta"), "members": no_admin}),
        propose(ADMIN["alpha"], "add_org", {"ca": ca_der("delta"), "members": foreign}),
        propose(ADMIN["alpha"], "add_org", {"ca": ca_der("beta"), "members": org_members("beta")}),
        propose(ADMIN["alpha"], "add_org", {"ca": b"not a certificate", "members": no_admin}),
        propose(ADMIN["alpha"], "add_org", {"ca": ca_der("delta")}),
    )
    assert errors(refused)[2] == "duplicate"
    assert all(not r.ok for r in refused.results)
    assert errors(refused)[4] == "bad_argument"


# --- removing an organisation, revoking a certificate ---------------------------------------


def test_a_removed_org_s_members_are_refused_from_the_effective_height() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "remove_org", {"org": "gamma"}, 4)))
    run.ok(vote(ADMIN["alpha"], pid), vote(ADMIN["beta"], pid), vote(ADMIN["gamma"], pid))
    run.ok(deposit(DEPOSITOR["gamma"]))  # height 3: still a member
    gone = run.block(deposit(DEPOSITOR["gamma"]), propose(ADMIN["gamma"], "set_param", {
        "name": "gov.voting_period_ms", "value": 120_000}))
    assert gone.height == 4 and errors(gone) == ["forbidden", "forbidden"]
    assert members.orgs(run.chain.state) == ["alpha", "beta"]
    run.ok(deposit(DEPOSITOR["beta"]))


def test_the_last_org_cannot_be_removed_and_a_removal_needs_an_admin_outside() -> None:
    chain = new_chain(genesis_of(("alpha",)))
    run = Runner(chain)
    last = run.block(propose(ADMIN["alpha"], "remove_org", {"org": "alpha"},
                             g=chain.genesis))
    assert errors(last) == ["last_org"]
    head = new_chain()
    refused = governance.dry_run(head.state, key(ADMIN["gamma"]).public_key,
                                 {"action": "remove_org", "args": {"org": "gamma"}}, 1, T0)
    assert refused["ok"] is False and refused["error"] == "no_admin_left"
    allowed = governance.dry_run(head.state, key(ADMIN["alpha"]).public_key,
                                 {"action": "remove_org", "args": {"org": "gamma"}}, 1, T0)
    assert allowed == {"ok": True, "action": "remove_org", "effect": {"org_removed": "gamma"}}
    assert members.orgs(head.state) == ["alpha", "beta", "gamma"]  # nothing written


def test_a_certificate_revoked_by_proposal_is_refused_in_the_next_block() -> None:
    run = Runner(new_chain())
    fingerprint = sha256(ca_der("beta"))
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "revoke_cert", {
        "ca": fingerprint, "serial": 3_000_000 + DEPOSITOR["beta"]})))
    decided = run.ok(vote(ADMIN["alpha"], pid), vote(ADMIN["beta"], pid),
                     vote(ADMIN["gamma"], pid), deposit(DEPOSITOR["beta"]))
    assert run.proposal(pid)["apply_height"] == decided.height + 1
    refused = run.block(deposit(DEPOSITOR["beta"]))
    assert errors(refused) == ["forbidden"] and "revoked" in refused.results[0].reason
    assert run.proposal(pid)["status"] == "applied"
    again = run.block(propose(ADMIN["alpha"], "revoke_cert", {
        "ca": fingerprint, "serial": 3_000_000 + DEPOSITOR["beta"]}))
    assert errors(again) == ["duplicate"]


# --- votes: who, how often, until when ------------------------------------------------------


def test_non_admins_cannot_propose_or_vote() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.threshold", "value": [1, 2]})))
    refused = run.block(
        propose(DEPOSITOR["alpha"], "set_param", {"name": "gov.threshold", "value": [1, 2]}),
        vote(DEPOSITOR["beta"], pid), vote(999, pid))
    assert errors(refused) == ["forbidden"] * 3


def test_one_vote_per_organisation() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.threshold", "value": [1, 2]})))
    first = run.block(vote(ADMIN["beta"], pid), vote(ADMIN["beta"], pid, False),
                      vote(SECOND_ADMIN["beta"], pid))
    assert errors(first) == ["", "duplicate", "duplicate"]
    assert [v["org"] for v in run.proposal(pid)["votes"]] == ["beta"]


def test_a_rejection_that_makes_passing_impossible_closes_the_proposal() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.threshold", "value": [1, 2]})))
    run.ok(vote(ADMIN["alpha"], pid), vote(ADMIN["beta"], pid, False))
    assert run.proposal(pid)["status"] == "rejected"
    assert errors(run.block(vote(ADMIN["gamma"], pid))) == ["closed"]


def test_an_expired_proposal_cannot_pass() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.threshold", "value": [1, 2]})))
    run.ok(vote(ADMIN["alpha"], pid), vote(ADMIN["beta"], pid))
    run.skip(governance.DEFAULT_VOTING_PERIOD_MS)
    late = run.block(vote(ADMIN["gamma"], pid))
    assert errors(late) == ["expired"]
    record = run.proposal(pid)
    assert governance.status_at(record, run.time_ms) == "expired"
    assert governance.threshold(run.chain.state) == governance.DEFAULT_THRESHOLD


def test_a_lower_threshold_set_by_vote_counts_for_the_next_proposals() -> None:
    run = Runner(new_chain())
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.threshold", "value": [1, 2]})))
    run.ok(*(vote(ADMIN[o], pid) for o in ORGS[:3]))
    run.ok(deposit(DEPOSITOR["alpha"]))
    assert governance.threshold(run.chain.state) == (1, 2)
    pid2 = proposal_id(run.ok(propose(ADMIN["beta"], "remove_org", {"org": "gamma"})))
    run.ok(vote(ADMIN["alpha"], pid2), vote(ADMIN["beta"], pid2))  # 2 of 3 > 1/2
    assert run.proposal(pid2)["status"] == "passed"


def test_bad_parameters_and_validator_actions_are_refused() -> None:
    run = Runner(new_chain())
    refused = run.block(
        propose(ADMIN["alpha"], "set_param", {"name": "gov.threshold", "value": [1, 3]}),
        propose(ADMIN["alpha"], "set_param", {"name": "block.max_txs", "value": 10}),
        propose(ADMIN["alpha"], "set_param", {"name": "gov.voting_period_ms", "value": 5}),
        propose(ADMIN["alpha"], "remove_validator", {"validator": "gov-net/node0"}),
        propose(ADMIN["alpha"], "set_param", {"name": "gov.threshold", "value": [2, 3]}, 1),
    )
    assert errors(refused) == ["bad_argument", "bad_argument", "bad_argument",
                               "last_validator", "bad_argument"]
    assert refused.results[3].reason == "cannot remove the last validator"


def test_a_passed_action_that_no_longer_applies_fails_without_effect() -> None:
    run = Runner(new_chain())
    first = proposal_id(run.ok(propose(ADMIN["alpha"], "remove_org", {"org": "gamma"}, 4)))
    second = proposal_id(run.ok(propose(ADMIN["beta"], "revoke_cert", {
        "ca": sha256(ca_der("gamma")), "serial": 3_000_000 + DEPOSITOR["gamma"]}, 4)))
    run.ok(*(vote(ADMIN[o], first) for o in ORGS[:3]),
           *(vote(ADMIN[o], second) for o in ORGS[:3]))
    run.ok(deposit(DEPOSITOR["alpha"]))  # height 4: both due, in the order they passed
    assert run.proposal(first)["status"] == "applied"
    failed = run.proposal(second)
    assert failed["status"] == "failed" and failed["reason"].startswith("not_found")


def test_at_most_32_decisions_apply_per_block_and_the_rest_move_to_the_next() -> None:
    run = Runner(new_chain())
    limit = governance.MAX_DUE_PER_BLOCK

    def setting(n: int) -> SignedTx:
        return propose(ADMIN["alpha"], "set_param",
                       {"name": "gov.voting_period_ms", "value": 60_000 + n}, 6)

    first = run.ok(*(setting(n) for n in range(limit)))
    too_many = run.block(setting(limit))
    assert errors(too_many) == ["too_many_proposals"]
    run.ok(*(vote(ADMIN[o], proposal_id(first, i)) for i in range(limit) for o in ORGS[:3]))
    late = run.ok(setting(limit), setting(limit + 1))  # height 4
    run.ok(*(vote(ADMIN[o], proposal_id(late, i)) for i in range(2) for o in ORGS[:3]))
    assert [run.proposal(proposal_id(late, i))["apply_height"] for i in range(2)] == [7, 7]
    run.ok(deposit(DEPOSITOR["alpha"]))  # height 6: the first 32, in the order they passed
    assert governance.voting_period_ms(run.chain.state) == 60_000 + limit - 1
    run.ok(deposit(DEPOSITOR["alpha"]))  # height 7: the other two
    assert governance.voting_period_ms(run.chain.state) == 60_000 + limit + 1
    assert all(run.proposal(proposal_id(first, i))["status"] == "applied"
               for i in range(limit))


# --- the rule, as a property ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.booleans()), max_size=7))))
def test_a_proposal_passes_iff_approvals_exceed_the_threshold(
        case: tuple[int, list[tuple[int, bool]]]) -> None:
    n, votes = case
    g = genesis_of(tuple(ORGS[:n]))
    run = Runner(new_chain(g))
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param", {
        "name": "gov.voting_period_ms", "value": 120_000}, g=g)))
    counted: dict[str, bool] = {}
    status = "open"
    for org_index, approve in votes:
        org = ORGS[org_index]
        result = run.block(vote(ADMIN[org], pid, approve, g=g)).results[0]
        if status != "open":
            assert result.error == "closed"
            continue
        if org in counted:
            assert result.error == "duplicate"
            continue
        assert result.ok
        counted[org] = approve
        approvals = sum(counted.values())
        rejections = len(counted) - approvals
        if Fraction(approvals, n) > Fraction(2, 3):
            status = "passed"
        elif Fraction(n - rejections, n) <= Fraction(2, 3):
            status = "rejected"
        assert run.proposal(pid)["status"] == status


@given(st.integers(0, 70), st.integers(1, 70), st.integers(1, 100), st.integers(1, 100))
def test_passes_is_the_strict_share(approvals: int, orgs: int, num: int, den: int) -> None:
    assert governance.passes(approvals, orgs, (num, den)) == (
        Fraction(approvals, orgs) > Fraction(num, den))


# --- validator-set dry run (pure) -----------------------------------------------------------


def test_validator_removal_reports_the_remaining_quorum() -> None:
    four = ["n0", "n1", "n2", "n3"]
    ok = governance.validator_removal(four, ["n3"])
    assert ok.remaining == ("n0", "n1", "n2") and ok.quorum == 3 and ok.can_reach_quorum
    assert ok.tolerated_faults == 0
    down = governance.validator_removal(four, ["n3"], live=["n0", "n1", "n3"])
    assert down.live == 2 and not down.can_reach_quorum
    assert "could not commit" in down.reason
    assert not governance.validator_removal(["n0"], ["n0"]).can_reach_quorum
    assert "not a validator" in governance.validator_removal(four, ["n9"]).reason
    assert [governance.bft_quorum(n) for n in range(1, 8)] == [1, 2, 3, 3, 4, 5, 5]


@given(st.integers(1, 30), st.integers(0, 30), st.data())
def test_validator_removal_needs_n_minus_f_live(n: int, removed: int,
                                                data: st.DataObject) -> None:
    validators = [f"v{i}" for i in range(n)]
    remove = validators[:min(removed, n)]
    live = data.draw(st.sets(st.sampled_from(validators)))
    check = governance.validator_removal(validators, remove, live)
    remaining = n - len(remove)
    alive = len(live - set(remove))
    # n - f of the remaining, f the faults the remaining set tolerates (n = 3f + 1).
    assert check.can_reach_quorum == (
        remaining > 0 and alive >= remaining - (remaining - 1) // 3)


def test_the_dry_run_of_remove_validator_reports_the_quorum() -> None:
    head = new_chain()
    answer = governance.dry_run(head.state, key(ADMIN["alpha"]).public_key, {
        "action": "remove_validator", "args": {"validator": "gov-net/node0"}}, 1, T0,
        validators=["gov-net/node0"], live=["gov-net/node0"])
    assert answer["ok"] is False and answer["error"] == "last_validator"


# --- through a real node ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("gov"), "gov-cli") as running:
        yield running


def _cli(node: RunningNode, *args: str, code: int = 0) -> Any:
    done = tide(*args, "--net", str(node.net), "--node", node.url, "--json")
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout)


def test_the_api_serves_proposals_and_dry_runs(node: RunningNode) -> None:
    """Governance is read, and dry-run, by admins (and the regulator): ADR 0015."""
    assert httpx.get(f"{node.url}/v1/gov/proposals/424242").status_code == 404
    admin = read_key(node.net / "admin.key").key
    client = read_key(node.net / "client.key").key

    def post_garbage(auth: httpx.Auth | None) -> httpx.Response:
        return httpx.post(f"{node.url}/v1/gov/dry-run", content=b"\x00", auth=auth,
                          headers={"content-type": "application/cbor"})

    anonymous = post_garbage(None)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthenticated"
    bad = post_garbage(MemberSignatures(admin))
    assert bad.status_code == 400, bad.text
    with Client(node.url, key=admin) as sdk:
        not_admin = call_tx(client, sdk.chain_id(), "gov", "propose",
                            propose_args("remove_org", {"org": "acme"}),
                            now_ms=int(time.time() * 1000), nonce=b"gov-dry-run-1")
        with pytest.raises(Forbidden) as proposer:  # the proposer may not propose
            sdk.gov_dry_run(not_admin)
        assert "gov.propose needs one of {admin}" in proposer.value.reason
        listed = sdk.gov_list()
    assert listed["threshold"] == [2, 3] and listed["orgs"] == ["acme"]
    with Client(node.url, key=client) as as_depositor:
        with pytest.raises(Forbidden) as caller:  # the caller may not dry-run
            as_depositor.gov_dry_run(not_admin)
        assert caller.value.reason.startswith(
            "What a signed gov.propose would do, without submitting it needs one of the "
            "roles admin, regulator")
        with pytest.raises(Forbidden):
            as_depositor.gov_list()


def test_the_cli_proposes_votes_and_lists(node: RunningNode) -> None:
    proposed = _cli(node, "gov", "propose", "set_param", "--param", "gov.voting_period_ms",
                    "--value", "3600000")
    pid = proposed["id"]
    voted = _cli(node, "gov", "vote", str(pid), "--approve")
    assert voted["status"] == "passed"
    listed = _cli(node, "gov", "list")
    mine = {p["id"]: p for p in listed["proposals"]}[pid]
    assert mine["status"] == "passed" and mine["tally"] == {"approvals": 1, "rejections": 0,
                                                              "orgs": 1}
    # The next block (here: a refused second vote's) applies the decision.
    again = tide("gov", "vote", str(pid), "--reject", "--net", str(node.net), "--node", node.url)
    assert again.returncode == 2 and "closed" in again.stderr
    assert _cli(node, "gov", "list")["voting_period_ms"] == 3_600_000
    last = _cli(node, "gov", "propose", "remove_org", "--org", "acme", "--dry-run", code=2)
    assert last["ok"] is False and last["error"] == "last_org"
    quorum = _cli(node, "gov", "propose", "remove_validator", "--validator",
                  "gov-cli/node0", "--dry-run", code=2)
    assert quorum["error"] == "last_validator"
    refused = tide("gov", "propose", "add_validator", "--name", "gov-cli/node1",
                   "--net", str(node.net), "--node", node.url)
    assert refused.returncode == 2 and "add_validator needs --name" in refused.stderr
    human = tide("gov", "list", "--net", str(node.net), "--node", node.url)
    assert human.returncode == 0 and f"#{pid}" in human.stdout and "applied" in human.stdout


def test_the_cli_dry_runs_consensus_parameters_and_contract_versions(node: RunningNode) -> None:
    size = _cli(node, "gov", "propose", "set_param", "--param", "consensus.max_block_txs",
                "--value", "500", "--dry-run")
    assert size["ok"] and size["effect"]["value"] == 500
    assert size["effect"]["from_height"] > 1  # the block after the one applying it
    timeout = _cli(node, "gov", "propose", "set_param", "--param",
                   "consensus.timeout_propose_ms", "--value", "5", "--dry-run", code=2)
    assert timeout["error"] == "bad_argument" and "100..60000" in timeout["reason"]
    missing = _cli(node, "gov", "propose", "activate_contract", "--contract", "evidence",
                   "--version", "9", "--height", "1000", "--dry-run", code=2)
    assert missing["error"] == "unknown_version" and "version 9" in missing["reason"]
    same = _cli(node, "gov", "propose", "activate_contract", "--contract", "evidence",
                "--version", "1", "--dry-run")
    assert same["ok"] and same["effect"]["version"] == 1
    usage = tide("gov", "propose", "activate_contract", "--contract", "evidence",
                 "--net", str(node.net), "--node", node.url)
    assert usage.returncode == 2 and "--version N" in usage.stderr


def test_the_cli_registers_a_new_organisation(node: RunningNode, tmp_path: Path) -> None:
    # Last in this module: afterwards the node's network has two organisations.
    beta = tmp_path / "beta"
    made = tide("org", "init", str(beta), "--org", "beta", "--legal-name", "Beta Logistics",
                "--uscc", uscc("beta"))
    assert made.returncode == 0, made.stderr
    admin = _cli(node, "org", "issue", str(beta), "--role", "admin", "--name", "Bea Admin",
                 "--new-key", str(tmp_path / "bea.key"))
    args = ("gov", "propose", "add_org", "--ca-cert", str(beta / "ca.pem"),
            "--member-cert", admin["cert"])
    dry = _cli(node, *args, "--dry-run")
    assert dry["ok"] and dry["effect"]["org_added"] == "beta"
    pid = _cli(node, *args)["id"]
    assert _cli(node, "gov", "vote", str(pid), "--approve")["status"] == "passed"
    done = tide("gov", "vote", str(pid), "--approve", "--admin-key", str(tmp_path / "bea.key"),
                "--net", str(node.net), "--node", node.url)
    # Not a member yet: the CLI signs with Bea's key, which the node does not know.
    assert done.returncode == 2 and "unauthenticated" in done.stderr
    assert "is not an enrolled member" in done.stderr
    doc = tmp_path / "doc.txt"
    doc.write_text("any transaction makes the next block, which applies the decision\n")
    assert tide("deposit", str(doc), "--net", str(node.net), "--node", node.url).returncode == 0
    assert _cli(node, "gov", "list")["orgs"] == ["acme", "beta"]
    proposed = _cli(node, "gov", "propose", "set_param", "--param", "gov.threshold",
                    "--value", "1/2", "--admin-key", str(tmp_path / "bea.key"))
    assert proposed["id"] > pid
