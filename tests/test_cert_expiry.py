"""Certificate expiry warnings: the pure report over the members state
(contracts/cert_expiry.py), the node's `certificates` status field, the `tide status`
line, the `cert_warn_days` setting, and the WARNING lines of a real node's log."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    ADMIN_KEY,
    DAY_MS,
    DEPOSITOR_KEYS,
    GENESIS_TIME_MS,
    TEST_ORG,
    genesis,
    key,
    member_cert,
    org_ca,
)
from tests.nodes import running_node, tide
from tidechain.cli.chain import certificates_line
from tidechain.contracts import cert_expiry, default_registry, members
from tidechain.core.note import Signer
from tidechain.identity import Role
from tidechain.ledger.chain import genesis_state
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import Genesis, GenesisOrg
from tidechain.node.config import ConfigError, load_node
from tidechain.node.node import Node
from tidechain.node.serve import certificate_warning
from tidechain.storage.store import Store

SOON_KEY = 11
SOON_DAYS = 12


def genesis_with_a_cert_ending_soon() -> Genesis:
    """The test organisation, plus key(11), a depositor whose certificate ends 12 days
    after the genesis."""
    certs = [member_cert(n, (Role.DEPOSITOR,)) for n in DEPOSITOR_KEYS]
    certs += [member_cert(ADMIN_KEY, (Role.ADMIN,)),
              member_cert(SOON_KEY, (Role.DEPOSITOR,),
                          not_after_ms=GENESIS_TIME_MS + SOON_DAYS * DAY_MS)]
    base = genesis()
    return Genesis("soon-net", GENESIS_TIME_MS, base.validators,
                   (GenesisOrg(org_ca(), tuple(certs)),))


def make_node(tmp_path: Path, g: Genesis, warn_days: int = 30) -> Node:
    return Node(g, Store(tmp_path / "chain.sqlite"), Signer(g.validators[0].name, key(1000)),
                cert_warn_days=warn_days)


class DictState:
    def __init__(self, items: Mapping[bytes, bytes]) -> None:
        self.items = dict(items)

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)


def member_items(state: DictState) -> list[tuple[bytes, bytes]]:
    prefix = namespaced(members.NAME, members.member_key(b""))
    return [(k[len(prefix):], v) for k, v in sorted(state.items.items())
            if k.startswith(prefix)]


def test_the_status_names_a_member_certificate_that_expires_soon(tmp_path: Path) -> None:
    node = make_node(tmp_path, genesis_with_a_cert_ending_soon())
    field = node.views.status()["certificates"]
    # Nothing has ticked: the head's (genesis) time is the time judged at.
    assert field["at_ms"] == GENESIS_TIME_MS and field["warn_days"] == 30
    assert (field["expired"], field["expiring"], field["checked"]) == (0, 1, 13)
    (soonest,) = field["soonest"]
    assert soonest == {
        "kind": "member", "org": TEST_ORG, "name": f"member {SOON_KEY}",
        "serial": 1_000_000 + SOON_KEY, "id": key(SOON_KEY).public_key.hex(),
        "not_after": "2025-10-21T08:53:20.000Z",
        "not_after_ms": GENESIS_TIME_MS + SOON_DAYS * DAY_MS, "days_left": SOON_DAYS,
    }
    assert certificates_line(field) == (
        f"1 expires within 30 days: {TEST_ORG}/member {SOON_KEY} (12 days)")
    node.store.close()


def test_nothing_is_shown_when_every_certificate_is_far_from_expiry(tmp_path: Path) -> None:
    node = make_node(tmp_path, genesis())
    field = node.views.status()["certificates"]
    assert (field["expired"], field["expiring"], field["soonest"]) == (0, 0, [])
    assert certificates_line(field) == "none expire within 30 days (12 checked)"
    node.store.close()


def test_expired_certificates_are_counted_and_listed_first(tmp_path: Path) -> None:
    node = make_node(tmp_path, genesis_with_a_cert_ending_soon(), warn_days=400)
    later = GENESIS_TIME_MS + 20 * DAY_MS
    report = node.views.certificate_report(later)
    # key(11) ended 8 days ago; the 11 others end at 365 days: within 400 days of `later`.
    assert (report.expired, report.expiring, report.at_ms) == (1, 11, later)
    assert report.due[0].ident == key(SOON_KEY).public_key
    field = node.views.certificates_status(later)
    assert len(field["soonest"]) == cert_expiry.MAX_SHOWN
    assert field["soonest"][0]["days_left"] < 0
    line = certificates_line(field)
    assert line.startswith(f"1 expired, 11 expire within 400 days: {TEST_ORG}/member 11 "
                           "(expired), ") and line.endswith(", ...")
    assert certificate_warning(report.due[0], later).startswith(
        f"certificate of member {TEST_ORG}/member 11 (serial 1000011, key ")
    assert "expired 8 days ago, at 2025-10-21T08:53:20.000Z" in certificate_warning(
        report.due[0], later)
    node.store.close()


def test_the_window_edges_follow_the_permission_rules() -> None:
    end = GENESIS_TIME_MS + 40 * DAY_MS
    cert = cert_expiry.Certificate("member", "o", "n", 1, end, b"k")
    assert cert_expiry.expiring([cert], end - 30 * DAY_MS - 1, 30).due == ()
    assert cert_expiry.expiring([cert], end - 30 * DAY_MS, 30).expiring == 1
    assert cert_expiry.expiring([cert], end, 30).expired == 0  # valid through notAfter
    assert cert_expiry.expiring([cert], end + 1, 30).expired == 1
    assert cert_expiry.expiring([cert], end + 1, 0).expired == 1  # 0 days: expired only
    with pytest.raises(ValueError):
        cert_expiry.expiring([cert], end, -1)


def test_revoked_members_and_removed_cas_do_not_count() -> None:
    g = genesis_with_a_cert_ending_soon()
    state = DictState(genesis_state(g, default_registry()))
    listed = cert_expiry.inventory(state, member_items(state))
    assert [c.kind for c in listed].count("org_ca") == 1 and len(listed) == 13
    assert listed[0].ident == key(SOON_KEY).public_key  # soonest first
    ca_fingerprint = members.parse_fingerprint(org_ca())
    state.items[namespaced(members.NAME, members.revoked_key(
        ca_fingerprint, 1_000_000 + SOON_KEY))] = b"\xa0"
    assert key(SOON_KEY).public_key not in {
        c.ident for c in cert_expiry.inventory(state, member_items(state))}
    del state.items[namespaced(members.NAME, members.ca_key(ca_fingerprint))]
    left = cert_expiry.inventory(state, member_items(state))
    assert [c.kind for c in left] == ["org_ca"]  # the org still lists it; members don't count


def test_a_certificate_is_warned_about_at_most_once_a_day() -> None:
    soon = cert_expiry.Certificate("member", "o", "a", 1, GENESIS_TIME_MS + DAY_MS, b"a")
    other = cert_expiry.Certificate("member", "o", "b", 2, GENESIS_TIME_MS + 2 * DAY_MS, b"b")
    schedule = cert_expiry.WarningSchedule()
    t0 = GENESIS_TIME_MS
    assert schedule.take(cert_expiry.expiring([soon], t0, 30), t0) == [soon]
    assert schedule.take(cert_expiry.expiring([soon, other], t0, 30), t0 + 3_600_000) == [other]
    assert schedule.take(cert_expiry.expiring([soon, other], t0, 30), t0 + DAY_MS - 1) == []
    assert schedule.take(cert_expiry.expiring([soon, other], t0, 30), t0 + DAY_MS) == [soon]


def test_cert_warn_days_is_read_from_node_toml_and_bounded(tmp_path: Path) -> None:
    net = tmp_path / "net"
    assert tide("init", str(net), "--name", "cfg").returncode == 0
    toml = net / "node0" / "node.toml"
    assert load_node(net / "node0").cert_warn_days == 30
    original = toml.read_text()
    toml.write_text(original + "cert_warn_days = 90\n")
    assert load_node(net / "node0").cert_warn_days == 90
    toml.write_text(original + "cert_warn_days = 5000\n")
    with pytest.raises(ConfigError, match="cert_warn_days"):
        load_node(net / "node0")


def test_a_real_node_warns_in_its_log_status_and_cli(tmp_path: Path) -> None:
    # `tide init` certifies client.key and admin.key for two years (729 whole days
    # left) and its CA for ten: warning 800 days ahead names the two members only.
    with running_node(tmp_path, "warn-net", "cert_warn_days = 800\n") as node:
        field = httpx.get(f"{node.url}/v1/status", timeout=10).json()["certificates"]
        assert (field["warn_days"], field["expired"], field["expiring"]) == (800, 0, 2)
        assert sorted(c["name"] for c in field["soonest"]) == ["admin", "client"]
        shown = tide("status", "--net", str(node.net))
        assert shown.returncode == 0, shown.stderr
        assert "certificates  2 expire within 800 days: acme/admin (729 days), " \
               "acme/client (729 days)" in shown.stdout
        as_json = json.loads(tide("status", "--net", str(node.net), "--json").stdout)
        assert as_json["certificates"]["expiring"] == 2
        warnings = [line for line in node.log().splitlines() if " WARNING " in line]
    assert len(warnings) == 2, node.log()
    assert any("certificate of member acme/client (serial " in w and "expires in 729 days"
               in w for w in warnings), warnings
