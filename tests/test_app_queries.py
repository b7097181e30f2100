"""The queries of the members, governance and invoice applications (ADR 0013): on a
real store for the lists (every item exactly once across pages, in the promised
order), and through a real node over HTTP and the SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.helpers import DAY_MS, GENESIS_TIME_MS, ca_seed, key, org_ca
from tests.nodes import RunningNode, running_node, tide
from tidechain.client import Client
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import read_key
from tidechain.contracts import default_registry, governance, members
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import DecodeError, NotFound, Rejected
from tidechain.identity import Role, issue_member_cert, org_code_check_char, uscc_check_char
from tidechain.ledger.application import HeadView, NoParams, Page, PageRequest
from tidechain.ledger.chain import Chain, genesis_state
from tidechain.ledger.types import Event, Genesis, GenesisOrg, GenesisValidator, SignedTx, TxBody
from tidechain.storage.store import Store

T = TypeVar("T")

ORGS = ["alpha", "beta", "gamma"]
ADMIN = {org: 50 + 10 * i for i, org in enumerate(ORGS)}
DEPOSITOR = {org: 51 + 10 * i for i, org in enumerate(ORGS)}
SECOND_ADMIN = {org: 52 + 10 * i for i, org in enumerate(ORGS)}


def _uscc(org: str) -> str:
    body = f"MA1G{'ABC'[ORGS.index(org)]}00{ORGS.index(org) + 1}"
    first17 = "91310000" + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def _cert(org: str, n: int, role: Role) -> bytes:
    return issue_member_cert(org_ca(org, uscc=_uscc(org)), ca_seed(org), f"member {n}",
                             key(n).public_key, (role,), GENESIS_TIME_MS - DAY_MS,
                             GENESIS_TIME_MS + 365 * DAY_MS, 3_000_000 + n)


GENESIS = Genesis("gov-net", GENESIS_TIME_MS,
                  (GenesisValidator("gov-net/node0", key(1000).public_key),),
                  tuple(GenesisOrg(org_ca(o, uscc=_uscc(o)), (
                      _cert(o, ADMIN[o], Role.ADMIN), _cert(o, DEPOSITOR[o], Role.DEPOSITOR),
                      _cert(o, SECOND_ADMIN[o], Role.ADMIN))) for o in ORGS))
_nonces = iter(range(1, 10**9))


def _gov(signer: int, method: str, args: dict[str, Any]) -> SignedTx:
    body = TxBody(GENESIS.chain_id, key(signer).public_key, next(_nonces).to_bytes(16, "big"),
                  GENESIS_TIME_MS + 3_600_000, "gov", method, args)
    return SignedTx.create(body, key(signer))


def propose(signer: int, action: str, args: dict[str, Any]) -> SignedTx:
    return _gov(signer, "propose", {"action": action, "args": args})


def vote(signer: int, proposal: int) -> SignedTx:
    return _gov(signer, "vote", {"proposal": proposal, "approve": True})


def walk(fetch: Callable[[PageRequest], Page[T]], limit: int) -> tuple[list[T], int]:
    """Every item of a paged query, page after page; and how many pages it took."""
    items: list[T] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = fetch(PageRequest(cursor, limit))
        pages += 1
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next is None:
            return items, pages
        assert pages < 1000, "a walk that never ends"
        cursor = page.next


class Stored:
    """A chain at the governance tests' genesis (three organisations, three members
    each), each block written to a real SQLite store: the view queries read."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.store.init_genesis(GENESIS, genesis_state(GENESIS, default_registry()))
        self.chain = Chain.at_genesis(GENESIS, default_registry())
        self.time_ms = GENESIS_TIME_MS + 1000

    def commit(self, *txs: SignedTx) -> list[int]:
        self.time_ms += 1000
        prepared = self.chain.prepare(list(txs), self.time_ms, "gov-net/node0")
        assert all(r.ok for r in prepared.results), [r.reason for r in prepared.results]
        self.store.commit_block(prepared, b"cert", "checkpoint")
        self.chain.advance(prepared)
        return [prepared.first_log_index + i for i in range(len(txs))]

    def view(self) -> HeadView:
        return HeadView(self.store, self.chain.height, self.chain.head_time_ms, self.store)


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Stored]:
    s = Stored(tmp_path / "chain.sqlite")
    yield s
    s.store.close()


# --- members --------------------------------------------------------------------------------


def test_orgs_page_in_key_order_each_once(stored: Stored) -> None:
    view = stored.view()
    for limit in (1, 2, 3, 50):
        found, _ = walk(lambda p: members.QUERIES["orgs"].fn(
            view, NoParams(), p), limit)
        assert [o.org for o in found] == sorted(ORGS[:3])
    one = members.QUERIES["org"].fn(view, members.queries.OrgParams(org="beta"))
    assert one.legal_name == "beta Co., Ltd." and len(one.cas) == 1 and len(one.cas[0]) == 64
    with pytest.raises(NotFound):
        members.QUERIES["org"].fn(view, members.queries.OrgParams(org="nobody"))


def test_members_of_one_org_page_by_key_each_once(stored: Stored) -> None:
    view = stored.view()
    expected = sorted(key(n).public_key.hex() for n in (ADMIN["beta"], DEPOSITOR["beta"],
                                                        SECOND_ADMIN["beta"]))
    for limit in (1, 2, 4, 500):
        found, pages = walk(lambda p: members.QUERIES["members"].fn(
            view, members.queries.OrgParams(org="beta"), p), limit)
        assert [m.key for m in found] == expected  # key order, each exactly once
        assert {m.org for m in found} == {"beta"} and {m.status for m in found} == {"active"}
        if limit == 1:
            assert pages == 9  # every member of every org walked: short pages have a next
    with pytest.raises(NotFound):
        members.QUERIES["members"].fn(view, members.queries.OrgParams(org="nobody"),
                                      PageRequest())


def test_member_has_its_status_at_the_head(stored: Stored) -> None:
    view = stored.view()
    admin = key(ADMIN["alpha"]).public_key.hex()
    found = members.QUERIES["member"].fn(view, members.queries.MemberParams(key=admin))
    assert (found.key, found.org, found.roles, found.status) == (admin, "alpha", ["admin"],
                                                                 "active")
    assert found.enrolled is None and found.serial == 3_000_000 + ADMIN["alpha"]
    with pytest.raises(NotFound):
        members.QUERIES["member"].fn(view, members.queries.MemberParams(key="00" * 32))
    assert members.find(view, admin) == [
        ("member", admin, f"/v1/apps/members/member?key={admin}")]
    assert members.find(view, "00" * 32) == [] and members.find(view, "xyz") == []


# --- governance -----------------------------------------------------------------------------


def test_proposals_page_newest_first_each_once(stored: Stored) -> None:
    ids: list[int] = []
    for n in range(7):
        admin = ADMIN[ORGS[n % 3]]
        ids += stored.commit(propose(admin, "set_param", {"name": "gov.voting_period_ms",
                                                          "value": 3_600_000 + n}))
    [voted] = stored.commit(vote(ADMIN["alpha"], ids[0]))
    view = stored.view()
    for limit in (1, 2, 3, 7, 50):
        found, _ = walk(lambda p: governance.QUERIES["proposals"].fn(
            view, NoParams(), p), limit)
        assert [p.id for p in found] == ids[::-1]
    first = governance.QUERIES["proposal"].fn(view,
                                              governance.queries.ProposalParams(id=ids[0]))
    assert first.status == "open" and first.tally == governance.Tally(1, 0, 3)
    assert first.votes[0].org == "alpha"
    assert first.votes[0].key == key(ADMIN["alpha"]).public_key.hex()
    assert first.args == {"name": "gov.voting_period_ms", "value": 3_600_000}
    with pytest.raises(NotFound):
        governance.QUERIES["proposal"].fn(view, governance.queries.ProposalParams(id=voted))
    settings = governance.QUERIES["settings"].fn(view, NoParams())
    assert settings == governance.Settings([2, 3], ["alpha", "beta", "gamma"],
                                           governance.DEFAULT_VOTING_PERIOD_MS,
                                           stored.chain.height)


def test_the_index_rule_files_only_proposals() -> None:
    events = [Event("proposed", {"id": 5}), Event("voted", {"id": 5}), Event("other", {})]
    assert governance.APP.index_rows(events) == [("gov/all", b"")]


# --- through a real node ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("app-queries"), "app-queries") as running:
        yield running


def _admin(node: RunningNode) -> SigningKey:
    """The network's admin (admin.key): it reads membership and governance (ADR 0015)."""
    return read_key(node.net / "admin.key").key


def _client(node: RunningNode) -> SigningKey:
    """The network's depositor (client.key): a member without those roles."""
    return read_key(node.net / "client.key").key


def _fetch(node: RunningNode, path: str, as_key: SigningKey | None,
           **params: Any) -> httpx.Response:
    """GET `path`, signed by `as_key` (RFC 9421), or anonymous with None."""
    auth = None if as_key is None else MemberSignatures(as_key)
    # No `params` at all when there are none: httpx would replace the path's query.
    return httpx.get(node.url + path, params=params or None, timeout=10, auth=auth)


def _get(node: RunningNode, path: str, **params: Any) -> Any:
    """GET `path` as the admin, expecting 200."""
    answer = _fetch(node, path, _admin(node), **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refused(answer: httpx.Response, status: int, error: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    reason: str = body["reason"]
    return reason


def test_the_members_queries_over_http(node: RunningNode) -> None:
    admin = _admin(node)
    orgs = _get(node, "/v1/apps/members/orgs")
    assert [o["org"] for o in orgs["items"]] == ["acme"] and orgs["next"] is None
    org = _get(node, "/v1/apps/members/org", org="acme")
    assert org["org"] == "acme" and len(org["cas"]) == 1
    listed = _get(node, "/v1/apps/members/members", org="acme", limit=1)
    assert len(listed["items"]) <= 1 and listed["next"] is not None
    with Client(node.url, key=admin) as sdk:
        every = list(sdk.walk("members", "members", org="acme", limit=1))
        assert admin.public_key.hex() in {m["key"] for m in every}
        assert len({m["key"] for m in every}) == len(every) == 2  # admin, client
        one = sdk.member(admin.public_key)
        assert one["roles"] == ["admin"] and one["status"] == "active"
        assert one == next(m for m in every if m["key"] == one["key"])
        legacy = sdk.members("acme")
        assert legacy["org"] == "acme" and legacy["truncated"] is False
        assert sorted(m["key"] for m in legacy["members"]) == sorted(m["key"] for m in every)
        found = sdk._get_json("/v1/search", {"q": admin.public_key.hex()})["found"]
        assert {"kind": "member", "id": admin.public_key.hex(), "app": "members",
                "path": f"/v1/apps/members/member?key={admin.public_key.hex()}"} in found
    for path, status in (("/v1/apps/members/member?key=" + "00" * 32, 404),
                         ("/v1/apps/members/member?key=zz", 400),
                         ("/v1/apps/members/members", 400),
                         ("/v1/apps/members/members?org=nobody", 404),
                         ("/v1/apps/members/org?org=nobody", 404),
                         ("/v1/apps/members/orgs?limit=0", 400)):
        answer = _fetch(node, path, admin)
        assert answer.status_code == status, (path, answer.text)
        assert set(answer.json()) == {"error", "reason"}


def test_a_member_reads_its_own_record_and_no_other(node: RunningNode) -> None:
    """ADR 0015: members are read by admins and the regulator; a member reads its own
    record (and, in a list, only itself); anyone else is refused."""
    admin, client = _admin(node), _client(node)
    with Client(node.url, key=client) as sdk:
        own = sdk.member(client.public_key)
        assert own["roles"] == ["depositor"] and own["status"] == "active"
        with pytest.raises(Rejected) as hidden:
            sdk.member(admin.public_key)
        with pytest.raises(Rejected) as missing:
            sdk.member(bytes(32))
        assert hidden.value.http_status == missing.value.http_status == 403
        assert hidden.value.reason == missing.value.reason  # a hidden one is as a missing one
        assert "admin, regulator" in hidden.value.reason
        listed = list(sdk.walk("members", "members", org="acme"))
        assert [m["key"] for m in listed] == [client.public_key.hex()]
    reason = _refused(_fetch(node, "/v1/apps/members/orgs", client), 403, "forbidden")
    assert "admin, regulator" in reason and "depositor" in reason
    for path in ("/v1/apps/members/orgs", "/v1/apps/members/org?org=acme",
                 f"/v1/apps/members/member?key={admin.public_key.hex()}"):
        _refused(_fetch(node, path, None), 401, "unauthenticated")


def test_the_governance_queries_over_http(node: RunningNode) -> None:
    where = ["--net", str(node.net), "--node", node.url]
    for value in ("3600000", "7200000", "10800000"):
        done = tide("gov", "propose", "set_param", "--param", "gov.voting_period_ms",
                    "--value", value, *where)
        assert done.returncode == 0, done.stderr
    first = _get(node, "/v1/apps/gov/proposals", limit=2)
    assert len(first["items"]) == 2 and first["next"] is not None
    rest = _get(node, "/v1/apps/gov/proposals", limit=2, cursor=first["next"])
    ids = [p["id"] for p in first["items"] + rest["items"]]
    assert rest["next"] is None and len(ids) == 3 and ids == sorted(ids, reverse=True)
    one = _get(node, "/v1/apps/gov/proposal", id=ids[-1])
    assert one["args"]["value"] == 3_600_000 and one["status"] == "open"
    assert one["tally"] == {"approvals": 0, "rejections": 0, "orgs": 1}
    settings = _get(node, "/v1/apps/gov/settings")
    assert settings["threshold"] == [2, 3] and settings["orgs"] == ["acme"]
    for path in ("/v1/apps/gov/proposals", "/v1/apps/gov/settings",
                 f"/v1/apps/gov/proposal?id={ids[0]}"):
        _refused(_fetch(node, path, None), 401, "unauthenticated")
        reason = _refused(_fetch(node, path, _client(node)), 403, "forbidden")
        assert "admin, regulator" in reason
    with Client(node.url, key=_admin(node)) as sdk:
        listed = sdk.gov_list()
        assert [p["id"] for p in listed["proposals"]] == ids and listed["truncated"] is False
        assert listed["voting_period_ms"] == settings["voting_period_ms"]
        assert sdk.gov_get(ids[0])["id"] == ids[0]
        with pytest.raises(NotFound):
            sdk.gov_get(424242)
        with pytest.raises(DecodeError):
            sdk.gov_get(-1)
    assert _fetch(node, "/v1/apps/gov/proposal", _admin(node), id="x").status_code == 400


def readers_table() -> str:
    """docs/permissions.md's table of who may read each query, from the registry."""
    from tidechain.contracts.registry import built_in

    lines = ["| query | readers |", "|---|---|"]
    for app in sorted(built_in(), key=lambda a: a.name):
        for name, query in sorted(app.queries.items()):
            lines.append(f"| `{app.name}/{name}` | {', '.join(query.readers())} |")
    return "\n".join(lines) + "\n"


def test_the_documented_readers_are_the_registrys() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "permissions.md").read_text()
    start = doc.index("<!-- generated: query readers -->\n")
    table = doc[start:].split("\n", 1)[1].split("<!-- end generated -->")[0]
    assert table == readers_table()
