"""The peer set follows the validator set (ADR 0011): `PeerNetwork.set_peers` connects
a new peer and drops a removed one, on live networks over real TLS."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_peers import (
    NAMES,
    Inbox,
    eventually,
    free_ports,
    network,
    pki,  # noqa: F401 (the fixture, module-scoped there)
    run,
    running,
)
from tidechain.node.tls import TlsFiles


def test_a_peer_added_later_is_dialled_and_a_removed_one_dropped(
        pki: dict[str, TlsFiles]) -> None:  # noqa: F811
    ports = dict(zip(NAMES[:3], free_ports(3), strict=True))
    inboxes = {n: Inbox() for n in NAMES[:3]}
    # node0 and node1 start as a pair; node2 knows both from the start.
    pair = {n: ports[n] for n in NAMES[:2]}
    nets = {"node0": network(pki, "node0", pair, inboxes["node0"]),
            "node1": network(pki, "node1", pair, inboxes["node1"]),
            "node2": network(pki, "node2", ports, inboxes["node2"])}

    async def scenario() -> None:
        async with running(*nets.values()):
            await eventually(lambda: nets["node0"].connected_peers() == {"node1"})
            assert nets["node0"].send("node2", b"not yet") is False
            address = ("127.0.0.1", ports["node2"])
            for name in ("node0", "node1"):
                others = {n: ("127.0.0.1", ports[n]) for n in NAMES[:2] if n != name}
                nets[name].set_peers({**others, "node2": address})
            await eventually(lambda: nets["node2"].connected_peers() == {"node0", "node1"})
            assert nets["node0"].send("node2", b"hello node2")
            await eventually(lambda: inboxes["node2"].from_peer("node0") == [b"hello node2"])
            # node1 leaves the set of node0 and node2: both drop it.
            nets["node0"].set_peers({"node2": address})
            nets["node2"].set_peers({"node0": ("127.0.0.1", ports["node0"])})
            await eventually(lambda: nets["node0"].connected_peers() == {"node2"})
            assert nets["node0"].send("node1", b"gone") is False
            await eventually(lambda: nets["node2"].connected_peers() == {"node0"})

    run(scenario)


@pytest.mark.parametrize("bad", [{"node0": ("127.0.0.1", 1)}, {"no spaces": ("h", 1)}])
def test_set_peers_checks_its_argument(pki: dict[str, TlsFiles],  # noqa: F811
                                       bad: dict[str, tuple[str, int]]) -> None:
    net = network(pki, "node0", dict(zip(NAMES[:2], free_ports(2), strict=True)), Inbox())
    with pytest.raises(Exception):  # noqa: B017 (InvariantViolation or TlsError)
        net.set_peers(bad)


def test_a_peer_without_an_address_is_accepted_and_dialled_once_located(
        pki: dict[str, TlsFiles]) -> None:  # noqa: F811
    """A node that joined later knows the genesis validators' names but not their
    addresses (None): it accepts their connections; a node that learns an address
    dials from then on."""
    ports = dict(zip(["node0", "node3"], free_ports(2), strict=True))
    inboxes = {n: Inbox() for n in ports}
    nets = {"node0": network(pki, "node0", ports, inboxes["node0"]),
            "node3": network(pki, "node3", ports, inboxes["node3"])}
    nets["node0"].set_peers({"node3": None})  # node0 dials (smaller name), once located
    nets["node3"].set_peers({"node0": None})  # node3 waits for node0's call
    assert nets["node3"].configured_peers == {"node0": ("127.0.0.1", ports["node0"])}

    async def scenario() -> None:
        async with running(*nets.values()):
            await asyncio.sleep(0.3)
            assert nets["node0"].connected_peers() == set()
            nets["node0"].set_peers({"node3": ("127.0.0.1", ports["node3"])})
            await eventually(lambda: nets["node3"].connected_peers() == {"node0"})
            assert nets["node3"].send("node0", b"hello")
            await eventually(lambda: inboxes["node0"].from_peer("node3") == [b"hello"])

    run(scenario)
