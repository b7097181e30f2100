"""Membership and permissions: who may call what, enrolment, expiry, revocation, CA
rotation; through the state transition, and through a real node's API and CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import DAY_MS, GENESIS_TIME_MS, ca_seed, key, member_cert, org_ca
from tests.nodes import RunningNode, running_node, tide
from tidechain.client.files import client_signer, load_genesis, read_key
from tidechain.client.sdk import Client
from tidechain.client.txbuilder import deposit_tx
from tidechain.contracts import default_registry, members
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import DecodeError, InvariantViolation, Rejected
from tidechain.identity import (
    CertUntrusted,
    Role,
    issue_member_cert,
    make_org_ca,
    org_code_check_char,
    uscc_check_char,
    validate_uscc,
)
from tidechain.ledger.access import Unauthenticated
from tidechain.ledger.chain import Chain, PreparedBlock, genesis_state
from tidechain.ledger.runtime import Forbidden
from tidechain.ledger.state_tree import EMPTY_ROOT, StateTree
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxBody
from tidechain.ops.network import newest_contract_versions

ALPHA, BETA = "alpha", "beta"
ROLES = list(Role)
ROLE_KEY = {role: 20 + i for i, role in enumerate(ROLES)}
"""key(20 + i) holds exactly the i-th role in organisation alpha."""
ALPHA_ADMIN = ROLE_KEY[Role.ADMIN]
ALPHA_DEPOSITOR = ROLE_KEY[Role.DEPOSITOR]
BETA_ADMIN, BETA_DEPOSITOR = 40, 41
STRANGER = 99
SHORT_LIVED = 42  # an alpha depositor whose certificate ends a day after genesis
SHORT_END_MS = GENESIS_TIME_MS + DAY_MS


def _beta_uscc() -> str:
    body = "MA1FL000"  # an organisation code, before its check character
    first17 = "91310000" + body + org_code_check_char(body)
    return validate_uscc(first17 + uscc_check_char(first17))


def alpha_org() -> GenesisOrg:
    certs = [member_cert(n, (role,), ALPHA) for role, n in ROLE_KEY.items()]
    certs.append(member_cert(SHORT_LIVED, (Role.DEPOSITOR,), ALPHA, not_after_ms=SHORT_END_MS))
    return GenesisOrg(org_ca(ALPHA), tuple(certs))


def beta_org() -> GenesisOrg:
    uscc = _beta_uscc()
    return GenesisOrg(org_ca(BETA, uscc=uscc), (
        member_cert_of(BETA_ADMIN, (Role.ADMIN,), BETA, uscc),
        member_cert_of(BETA_DEPOSITOR, (Role.DEPOSITOR,), BETA, uscc)))


def member_cert_of(n: int, roles: tuple[Role, ...], org: str, uscc: str,
                   generation: int = 0, serial: int = 0) -> bytes:
    return issue_member_cert(org_ca(org, generation, uscc), ca_seed(org, generation),
                             f"member {n}", key(n).public_key, roles,
                             GENESIS_TIME_MS - DAY_MS, GENESIS_TIME_MS + 365 * DAY_MS,
                             serial or 2_000_000 + n)


GENESIS = Genesis("perm-net", GENESIS_TIME_MS,
                  (GenesisValidator("perm-net/node0", key(1000).public_key),),
                  (alpha_org(), beta_org()), newest_contract_versions())
"""On the newest contract versions, as `tide init` starts a network (evidence v2)."""


def new_chain(g: Genesis = GENESIS) -> Chain:
    return Chain.at_genesis(g, default_registry())


_nonce = iter(range(1, 10**9))


def call(signer: int | SigningKey, contract: str, method: str, args: dict[str, Any],
         *, at_ms: int = GENESIS_TIME_MS) -> SignedTx:
    k = key(signer) if isinstance(signer, int) else signer
    body = TxBody(GENESIS.chain_id, k.public_key, next(_nonce).to_bytes(16, "big"),
                  at_ms + 3_600_000, contract, method, args)
    return SignedTx.create(body, k)


def deposit(signer: int, *, at_ms: int = GENESIS_TIME_MS) -> SignedTx:
    digest = sha256(b"doc %d" % next(_nonce))
    return call(signer, "evidence", "deposit", {"digest": digest, "meta": {}}, at_ms=at_ms)


def run(chain: Chain, txs: list[SignedTx], time_ms: int) -> PreparedBlock:
    """Execute and commit one block (in memory)."""
    prepared = chain.prepare(txs, time_ms, "perm-net/node0")
    chain.advance(prepared)
    return prepared


def errors(prepared: PreparedBlock) -> list[str]:
    return [r.error if not r.ok else "" for r in prepared.results]


# --- who may call what ---------------------------------------------------------------------

METHODS = [(c["name"], m["name"], frozenset(Role(r) for r in m["roles"]))
           for c in default_registry().describe() for m in c["methods"]]


def test_the_declared_roles_are_tight() -> None:
    declared = {f"{c}.{m}": roles for c, m, roles in METHODS}
    assert declared == {
        "evidence.amend": {Role.DEPOSITOR}, "evidence.deposit": {Role.DEPOSITOR},
        "evidence.publish": {Role.DEPOSITOR},
        "evidence.sign": {r for r in Role if r is not Role.REGULATOR},
        "members.add_ca": {Role.ADMIN}, "members.enrol": {Role.ADMIN},
        "members.remove_ca": {Role.ADMIN}, "members.revoke": {Role.ADMIN},
        "gov.propose": {Role.ADMIN}, "gov.vote": {Role.ADMIN},
        **{f"invoice.{m}": {Role.TAX_AUTHORITY}
           for m in ("authorise_issuer", "suspend_issuer", "set_quota", "set_auditors")},
        **{f"invoice.{m}": {Role.INVOICE_ISSUER}
           for m in ("issue", "issue_batch", "red_letter", "request_reversal")},
        **{f"invoice.{m}": {Role.DEPOSITOR, Role.ENTERPRISE}
           for m in ("claim", "submit", "confirm_reversal", "ask_reversal")},
        **{f"invoice.{m}": {Role.ENTERPRISE} for m in ("lock", "unlock", "reimburse")},
        "scf.set_line": {Role.FUNDER}, "scf.issue": {Role.ENTERPRISE},
        "scf.settle": {Role.ENTERPRISE}, "scf.approve": {Role.FUNDER},
        "scf.decline": {Role.FUNDER},
        **{f"scf.{m}": {Role.ENTERPRISE, Role.FUNDER}
           for m in ("accept", "refuse", "split", "finance")},
        "trace.capture": {Role.ENTERPRISE, Role.CARRIER},
        "trace.claim": {Role.ADMIN}, "trace.release": {Role.ADMIN},
    }
    assert all(Role.REGULATOR not in roles for roles in declared.values())


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
def test_each_role_against_each_method(role: Role) -> None:
    chain = new_chain()
    at = GENESIS_TIME_MS + 1
    for contract, method, allowed in METHODS:
        # Empty arguments: an allowed call fails on them (bad_argument), a forbidden one
        # fails first on the permission check, at admission and at execution alike.
        tx = call(ROLE_KEY[role], contract, method, {}, at_ms=at)
        [error] = errors(chain.prepare([tx], at, "perm-net/node0"))
        if role in allowed:
            assert error == "bad_argument", (role, contract, method)
            chain.check_permission(tx, at)
        else:
            assert error == "forbidden", (role, contract, method)
            with pytest.raises(Forbidden) as refused:
                chain.check_permission(tx, at)
            assert refused.value.http_status == 403
            assert refused.value.reason.startswith(f"caller has roles {{{role.value}}}; "
                                                   f"{contract}.{method} needs one of ")


def test_the_regulator_can_call_nothing_and_the_reason_names_the_roles() -> None:
    chain = new_chain()
    at = GENESIS_TIME_MS + 1
    prepared = run(chain, [deposit(ROLE_KEY[Role.REGULATOR], at_ms=at)], at)
    assert prepared.results[0].reason == ("caller has roles {regulator}; evidence.deposit "
                                          "needs one of {depositor}")
    assert chain.state.root() == StateTree.from_items(
        genesis_state(GENESIS, default_registry()).items()).root()


def test_a_key_that_is_not_enrolled_is_forbidden() -> None:
    chain = new_chain()
    prepared = run(chain, [deposit(STRANGER)], GENESIS_TIME_MS + 1)
    assert prepared.results[0].error == "forbidden"
    assert "is not an enrolled member" in prepared.results[0].reason


def test_a_depositor_may_deposit_and_amend_its_own() -> None:
    chain = new_chain()
    first = run(chain, [deposit(ALPHA_DEPOSITOR), deposit(BETA_DEPOSITOR)],
                GENESIS_TIME_MS + 1)
    assert errors(first) == ["", ""]
    amend = call(ALPHA_DEPOSITOR, "evidence", "amend",
                 {"of": 0, "digest": sha256(b"v2"), "meta": {}})
    stolen = call(BETA_DEPOSITOR, "evidence", "amend",
                  {"of": 0, "digest": sha256(b"v3"), "meta": {}})
    assert errors(run(chain, [amend, stolen], GENESIS_TIME_MS + 2)) == ["", "forbidden"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roles=st.sets(st.sampled_from(ROLES), min_size=1),
       method=st.sampled_from(METHODS))
def test_a_call_is_allowed_exactly_when_the_roles_intersect(
        roles: set[Role], method: tuple[str, str, frozenset[Role]]) -> None:
    contract, name, allowed = method
    holder = 77
    org = GenesisOrg(org_ca(ALPHA), (member_cert(ALPHA_ADMIN, (Role.ADMIN,), ALPHA),
                                     member_cert(holder, tuple(sorted(roles)), ALPHA)))
    g = Genesis("prop-net", GENESIS_TIME_MS, (), (org,), newest_contract_versions())
    chain = Chain.at_genesis(g, default_registry())
    tx = call(holder, contract, name, {})
    if roles & allowed:
        chain.check_permission(tx, GENESIS_TIME_MS)
    else:
        with pytest.raises(Forbidden):
            chain.check_permission(tx, GENESIS_TIME_MS)


# --- expiry, revocation, renewal -------------------------------------------------------------


def test_an_expired_certificate_is_refused_from_the_block_past_not_after() -> None:
    chain = new_chain()
    end = members.member_of(chain.state, key(SHORT_LIVED).public_key)["not_after"]  # type: ignore[index]
    assert end == SHORT_END_MS
    assert errors(run(chain, [deposit(SHORT_LIVED, at_ms=end)], end)) == [""]  # inclusive
    late = deposit(SHORT_LIVED, at_ms=end + 1)
    with pytest.raises(Forbidden, match="expired"):
        chain.check_permission(late, end + 1)
    assert errors(run(chain, [late], end + 1)) == ["forbidden"]


def _serial_of(chain: Chain, n: int) -> int:
    record = members.member_of(chain.state, key(n).public_key)
    assert record is not None
    return int.from_bytes(record["serial"], "big")


def test_a_revoked_member_is_refused_from_the_next_transaction_on() -> None:
    chain = new_chain()
    fingerprint = sha256(org_ca(ALPHA))
    revoke = call(ALPHA_ADMIN, "members", "revoke",
                  {"ca": fingerprint, "serial": _serial_of(chain, ALPHA_DEPOSITOR)})
    block = run(chain, [deposit(ALPHA_DEPOSITOR), revoke, deposit(ALPHA_DEPOSITOR)],
                GENESIS_TIME_MS + 1)
    assert errors(block) == ["", "", "forbidden"]
    assert "revoked" in block.results[2].reason
    assert errors(run(chain, [deposit(ALPHA_DEPOSITOR)], GENESIS_TIME_MS + 2)) == ["forbidden"]
    # Revoked for good: the same certificate cannot be enrolled again.
    again = call(ALPHA_ADMIN, "members", "enrol",
                 {"cert": member_cert(ALPHA_DEPOSITOR, (Role.DEPOSITOR,), ALPHA)})
    twice = call(ALPHA_ADMIN, "members", "revoke",
                 {"ca": fingerprint, "serial": _serial_of(chain, ALPHA_DEPOSITOR)})
    assert errors(run(chain, [again, twice], GENESIS_TIME_MS + 3)) == ["cert_revoked",
                                                                       "duplicate"]


def test_re_enrolling_a_key_replaces_its_record() -> None:
    chain = new_chain()
    renewed = issue_member_cert(org_ca(ALPHA), ca_seed(ALPHA, 0), "renewed", key(
        ROLE_KEY[Role.CARRIER]).public_key, [Role.CARRIER, Role.DEPOSITOR],
        GENESIS_TIME_MS, GENESIS_TIME_MS + 700 * DAY_MS, 555)
    enrol = call(ALPHA_ADMIN, "members", "enrol", {"cert": renewed})
    block = run(chain, [enrol, deposit(ROLE_KEY[Role.CARRIER])], GENESIS_TIME_MS + 1)
    assert errors(block) == ["", ""]
    record = members.member_of(chain.state, key(ROLE_KEY[Role.CARRIER]).public_key)
    assert record is not None
    assert (record["name"], record["roles"], record["enrolled"]) == (
        "renewed", ["carrier", "depositor"], 0)
    assert [e.kind for e in block.results[0].events] == ["enrolled"]


# --- CA rotation ------------------------------------------------------------------------------


def test_ca_rotation_add_enrol_then_remove_the_old_ca() -> None:
    chain = new_chain()
    old, new = org_ca(ALPHA, 0), org_ca(ALPHA, 1)
    newcomer = 60
    at = GENESIS_TIME_MS + 1
    block = run(chain, [
        call(ALPHA_ADMIN, "members", "add_ca", {"ca": new}),
        call(ALPHA_ADMIN, "members", "add_ca", {"ca": new}),
        call(ALPHA_ADMIN, "members", "enrol",
             {"cert": member_cert(newcomer, (Role.DEPOSITOR,), ALPHA, generation=1)}),
        deposit(newcomer, at_ms=at),
        # The admin may not retire the CA its own certificate comes from...
        call(ALPHA_ADMIN, "members", "remove_ca", {"fingerprint": sha256(old)}),
    ], at)
    assert errors(block) == ["", "duplicate", "", "", "own_ca"]
    org = members.org(chain.state, ALPHA)
    assert org is not None and org["cas"] == [old, new]
    # ...so it renews itself under the new CA first, then retires the old one.
    block = run(chain, [
        call(ALPHA_ADMIN, "members", "enrol",
             {"cert": member_cert(ALPHA_ADMIN, (Role.ADMIN,), ALPHA, generation=1)}),
        call(ALPHA_ADMIN, "members", "remove_ca", {"fingerprint": sha256(old)}),
        deposit(ALPHA_DEPOSITOR, at_ms=at + 1),  # certified by the old CA
        deposit(newcomer, at_ms=at + 1),
        call(ALPHA_ADMIN, "members", "remove_ca", {"fingerprint": sha256(new)}),
    ], at + 1)
    assert errors(block) == ["", "", "forbidden", "", "last_ca"]
    assert "no longer has" in block.results[2].reason
    record = members.member_of(chain.state, key(ALPHA_DEPOSITOR).public_key)
    assert record is not None
    assert members.member_status(chain.state, record, at + 1) == "ca_removed"


def test_a_ca_of_another_organisation_cannot_be_added() -> None:
    chain = new_chain()
    block = run(chain, [call(BETA_ADMIN, "members", "add_ca", {"ca": org_ca(ALPHA, 1)})],
                GENESIS_TIME_MS + 1)
    assert errors(block) == ["forbidden"]


def test_an_admin_cannot_enrol_or_revoke_for_another_organisation() -> None:
    chain = new_chain()
    alpha_cert = member_cert(61, (Role.DEPOSITOR,), ALPHA)
    block = run(chain, [
        call(BETA_ADMIN, "members", "enrol", {"cert": alpha_cert}),
        call(BETA_ADMIN, "members", "revoke",
             {"ca": sha256(org_ca(ALPHA)), "serial": _serial_of(chain, ALPHA_DEPOSITOR)}),
        deposit(61),
    ], GENESIS_TIME_MS + 1)
    assert errors(block) == ["cert_untrusted", "not_found", "forbidden"]
    # A beta certificate for a key alpha has enrolled is refused too.
    taken = member_cert_of(ALPHA_DEPOSITOR, (Role.DEPOSITOR,), BETA, _beta_uscc(), serial=7)
    block = run(chain, [call(BETA_ADMIN, "members", "enrol", {"cert": taken})],
                GENESIS_TIME_MS + 2)
    assert errors(block) == ["forbidden"]


# --- genesis --------------------------------------------------------------------------------


def test_the_genesis_state_holds_the_founding_members() -> None:
    state = StateTree.from_items(genesis_state(GENESIS, default_registry()).items())
    assert state.root() != EMPTY_ROOT
    assert members.orgs(state) == [ALPHA, BETA]
    record = members.member_of(state, key(BETA_ADMIN).public_key)
    assert record is not None and (record["org"], record["roles"]) == (BETA, ["admin"])
    assert Genesis.decode(GENESIS.encode()) == GENESIS
    with pytest.raises(InvariantViolation):
        Chain(GENESIS, default_registry(), None, StateTree(), new_chain().frontier)


def test_a_genesis_organisation_needs_an_admin_and_its_own_members() -> None:
    with pytest.raises(DecodeError, match="no admin"):
        Genesis("x", GENESIS_TIME_MS, (), (GenesisOrg(org_ca(ALPHA), (
            member_cert(ALPHA_DEPOSITOR, (Role.DEPOSITOR,), ALPHA),)),))
    with pytest.raises(CertUntrusted):
        Genesis("x", GENESIS_TIME_MS, (), (GenesisOrg(org_ca(ALPHA), (
            member_cert(ALPHA_ADMIN, (Role.ADMIN,), ALPHA),
            member_cert(BETA_ADMIN, (Role.ADMIN,), "gamma"),)),))
    with pytest.raises(DecodeError, match="twice"):
        Genesis("x", GENESIS_TIME_MS, (), (alpha_org(), alpha_org()))
    late_ca = make_org_ca("late", "Late Co.", _beta_uscc(), ca_seed("late"),
                          GENESIS_TIME_MS + DAY_MS, GENESIS_TIME_MS + 9 * DAY_MS, 5)
    with pytest.raises(Rejected) as refused:
        Genesis("x", GENESIS_TIME_MS, (), (GenesisOrg(late_ca, ()),))
    assert refused.value.code == "cert_not_yet_valid"


# --- through a real node --------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("perm"), "perm-api") as running:
        yield running


def _cli(node: RunningNode, *args: str) -> Any:
    done = tide(*args, "--net", str(node.net), "--node", node.url, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_api_answers_403_with_the_missing_role(node: RunningNode) -> None:
    admin = read_key(node.net / "admin.key").key
    with Client(node.url, trust=node.trust_text) as sdk:
        chain_id = sdk.chain_id()
        tx = deposit_tx(admin, chain_id, sha256(b"by the admin"), {},
                        now_ms=_now_ms(), nonce=b"perm-api-nonce-1")
        response = httpx.post(f"{node.url}/v1/tx", content=tx.encode(),
                              headers={"content-type": "application/cbor"})
        assert response.status_code == 403
        assert response.json() == {
            "error": "forbidden",
            "reason": "caller has roles {admin}; evidence.deposit needs one of {depositor}"}
        with pytest.raises(Forbidden) as refused:
            sdk.submit(tx)
        assert refused.value.code == "forbidden" and refused.value.http_status == 403
        client = client_signer(node.net).key
        described = {c["name"]: c for c in sdk.contracts()}
        deposit = dict(described["evidence"]["methods"][1])
        args = deposit.pop("args")
        assert deposit == {"name": "deposit", "roles": ["depositor"],
                           "summary": "anchor a document digest {digest, meta, public, "
                                      "cosigners, threshold, deadline}"}
        assert set(args["properties"]) == {"digest", "meta", "public", "cosigners",
                                           "threshold", "deadline"}
        assert args["required"] == ["digest"]
    # Reads: the admin reads any member; a member reads its own record, and another's
    # read is a 403 naming the roles that read it (ADR 0015).
    with Client(node.url, trust=node.trust_text, key=admin) as as_admin:
        assert as_admin.member(client.public_key)["roles"] == ["depositor"]
        assert as_admin.member(client.public_key)["status"] == "active"
    with Client(node.url, trust=node.trust_text, key=client) as as_client:
        assert as_client.member(client.public_key)["roles"] == ["depositor"]
        with pytest.raises(Forbidden) as not_theirs:
            as_client.member(admin.public_key)
        assert (not_theirs.value.code, not_theirs.value.http_status) == ("forbidden", 403)
        assert not_theirs.value.reason == (
            "members.member needs one of the roles admin, regulator or be a party to the "
            "record; your roles: depositor")
    with Client(node.url, trust=node.trust_text) as anonymous, \
            pytest.raises(Unauthenticated) as nobody:
        anonymous.member(client.public_key)
    assert nobody.value.http_status == 401


def test_the_cli_enrols_lists_and_revokes(node: RunningNode, tmp_path: Path) -> None:
    dir_key = tmp_path / "carol.key"
    enrolled = _cli(node, "member", "enrol", "--role", "depositor", "--role", "carrier",
                    "--name", "Carol Wu", "--new-key", str(dir_key))
    assert enrolled["roles"] == ["carrier", "depositor"] and enrolled["org"] == "acme"
    doc = tmp_path / "waybill.txt"
    doc.write_text("waybill 1\n")
    _cli(node, "deposit", str(doc), "--key", str(dir_key))
    listed = _cli(node, "member", "list")
    keys = {m["key"]: m for m in listed["members"]}
    assert keys[enrolled["key"]]["status"] == "active" and len(keys) == 3
    revoked = _cli(node, "member", "revoke", "--key", str(dir_key))
    assert revoked["serial"] == enrolled["serial"]
    # The CLI signs its requests with the revoked key too: a credential that fails is
    # refused before anything else, with the reason (ADR 0015).
    done = tide("deposit", str(doc), "--key", str(dir_key), "--net", str(node.net),
                "--node", node.url)
    assert done.returncode == 2
    assert "error: unauthenticated: the member certificate of" in done.stderr
    assert "is revoked" in done.stderr
    # The transaction itself, submitted without a read credential, is refused by the
    # permission check that every write passes.
    carol = read_key(dir_key).key
    tx = deposit_tx(carol, load_genesis(node.net).chain_id, sha256(b"waybill 1"), {},
                    now_ms=_now_ms(), nonce=b"perm-api-revoked")
    response = httpx.post(f"{node.url}/v1/tx", content=tx.encode(),
                          headers={"content-type": "application/cbor"})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert "is revoked; evidence.deposit needs one of {depositor}" in response.json()["reason"]
    described = tide("contracts", "describe", "--net", str(node.net), "--node", node.url)
    assert "members.enrol" in described.stdout and "roles: admin" in described.stdout


def test_org_init_makes_a_ca_for_a_later_organisation(tmp_path: Path) -> None:
    done = tide("org", "init", str(tmp_path / "beta"), "--org", "beta",
                "--legal-name", "Beta Logistics", "--uscc", _beta_uscc(), "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["org"] == "beta" and (tmp_path / "beta" / "ca.key").stat().st_mode & 0o077 == 0
    refused = tide("org", "init", str(tmp_path / "bad"), "--org", "Bad Org",
                   "--legal-name", "x", "--uscc", _beta_uscc())
    assert refused.returncode == 2


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_the_documented_table_is_the_registry() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "permissions.md").read_text()
    start = doc.index("<!-- generated: default_registry().roles_table() -->\n")
    table = doc[start:].split("\n", 1)[1].split("<!-- end generated -->")[0]
    assert table == default_registry().roles_table()
