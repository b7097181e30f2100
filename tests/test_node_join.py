"""`tide node join` (ADR 0011): the node directory of an organisation joining a running
network, made from public files and the organisation's own CA; the real join, with
processes, is in tests/test_valset_change.py."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.nodes import tide
from tidechain.client.files import OrgDir, init_org, load_genesis, read_key
from tidechain.core.errors import Rejected
from tidechain.node.config import ConfigError, PeerAddress, load_node, parse_bootstrap
from tidechain.node.tls import certificate_fingerprint, client_context, server_context
from tidechain.ops.network import init_network, join_node


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("join")
    init_network(root / "net", "jn", validators=1, base_port=20680)
    init_org(root / "delta-ca", "delta", "Delta Co., Ltd.", "91350100M000100Y43", _now_ms())
    return {"root": root, "net": root / "net", "org": root / "delta-ca"}


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("node0@10.0.0.1:8780, node1@h.example:9") == (
        PeerAddress("node0", "10.0.0.1", 8780), PeerAddress("node1", "h.example", 9))
    for bad in ("10.0.0.1:8780", "node0@10.0.0.1", "node0@:1", "bad name@h:1",
                "node0@h:0", "node0@h:1,node0@h:2", ""):
        with pytest.raises(ConfigError):
            parse_bootstrap(bad)


def test_join_writes_a_node_from_public_files_and_the_org_ca(world: dict[str, Path]) -> None:
    net, root = world["net"], world["root"]
    target = root / "delta" / "node5"
    joined = join_node(target, (net / "genesis.cbor").read_bytes(),
                       (net / "ca.pem").read_bytes(), OrgDir(world["org"]), "node5",
                       parse_bootstrap("node0@127.0.0.1:20780"), api_port=20690,
                       peer_port=20790)
    config = load_node(target)
    assert (config.name, config.key_name) == ("node5", "jn/node5")
    assert config.peer_addresses() == {"node0": ("127.0.0.1", 20780)}
    assert (config.api_port, config.peer_port) == (20690, 20790)
    assert (root / "delta" / "genesis.cbor").read_bytes() == (net / "genesis.cbor").read_bytes()
    assert (root / "delta" / "trust.txt").read_text() == (net / "trust.txt").read_text()
    assert read_key(config.key_path).key.public_key == joined.public_key
    assert config.key_path.stat().st_mode & 0o777 == 0o600
    assert config.tls_files.key.stat().st_mode & 0o777 == 0o600
    # The TLS certificate comes from delta's CA, the trust anchor is the network CA's.
    cert = x509.load_pem_x509_certificate(config.tls_files.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(
        OrgDir(world["org"]).cert_path.read_bytes()))
    assert config.tls_files.ca_cert.read_bytes() == (net / "ca.pem").read_bytes()
    assert joined.tls_fingerprint == certificate_fingerprint(config.tls_files.cert.read_bytes())
    server_context(config.tls_files)
    client_context(config.tls_files)  # loadable as they are
    assert joined.org_id == "delta"
    assert joined.proposal_args() == [
        "add_validator", "--name", "jn/node5", "--key", joined.public_key.hex(), "--org",
        "delta", "--address", "127.0.0.1:20790", "--tls-fingerprint",
        joined.tls_fingerprint.hex()]
    with pytest.raises(ConfigError, match="not empty"):
        join_node(target, (net / "genesis.cbor").read_bytes(), (net / "ca.pem").read_bytes(),
                  OrgDir(world["org"]), "node5", parse_bootstrap("node0@127.0.0.1:20780"))


@pytest.mark.parametrize("case", ["genesis", "ca", "org", "self", "other_genesis"])
def test_join_refuses_bad_input_and_writes_nothing(world: dict[str, Path], case: str,
                                                   tmp_path: Path) -> None:
    net = world["net"]
    genesis, ca, org = (net / "genesis.cbor").read_bytes(), (net / "ca.pem").read_bytes(), \
        OrgDir(world["org"])
    name, bootstrap = "node6", parse_bootstrap("node0@127.0.0.1:20780")
    target = tmp_path / "net" / "node6"
    if case == "genesis":
        genesis = b"not a genesis"
    elif case == "ca":
        ca = b"not a certificate"
    elif case == "org":
        org = OrgDir(tmp_path / "no-such-org")
    elif case == "self":
        bootstrap = parse_bootstrap("node6@127.0.0.1:20780")
    else:
        target.parent.mkdir(parents=True)
        (target.parent / "genesis.cbor").write_bytes(b"another network")
    with pytest.raises(Rejected):
        join_node(target, genesis, ca, org, name, bootstrap)
    assert not target.exists()


def test_cli_prints_the_proposal(world: dict[str, Path]) -> None:
    net, root = world["net"], world["root"]
    target = root / "delta-cli" / "node7"
    made = tide("node", "join", str(target), "--genesis", str(net / "genesis.cbor"),
                "--network-ca", str(net / "ca.pem"), "--org-dir", str(world["org"]),
                "--name", "node7", "--bootstrap", "node0@127.0.0.1:20780",
                "--peer-port", "20791", "--api-port", "20691", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert data["key_name"] == "jn/node7" and data["address"] == "127.0.0.1:20791"
    assert shlex.split(data["propose"]) == [
        "tide", "gov", "propose", "add_validator", "--name", "jn/node7", "--key", data["key"],
        "--org", "delta", "--address", "127.0.0.1:20791", "--tls-fingerprint",
        data["tls_fingerprint"]]
    human = tide("node", "join", str(root / "delta-cli2" / "node8"), "--genesis",
                 str(net / "genesis.cbor"), "--network-ca", str(net / "ca.pem"),
                 "--org-dir", str(world["org"]), "--name", "node8", "--bootstrap",
                 "node0@127.0.0.1:20780")
    assert human.returncode == 0, human.stderr
    assert "tide gov propose add_validator --name jn/node8" in human.stdout
    refused = tide("node", "join", str(root / "x" / "n"), "--genesis", str(net / "nope"),
                   "--network-ca", str(net / "ca.pem"), "--org-dir", str(world["org"]),
                   "--name", "n", "--bootstrap", "node0@127.0.0.1:1")
    assert refused.returncode == 2 and "cannot read" in refused.stderr


def test_standby_nodes_are_still_provisioned_by_init(tmp_path: Path) -> None:
    """`tide init --standby N`: the single-operator alternative to `tide node join`."""
    nodes = init_network(tmp_path / "net", "sb", validators=2, standby=1, base_port=20880)
    assert [n.name for n in nodes] == ["node0", "node1", "node2"]
    assert set(load_node(tmp_path / "net" / "node0").peer_addresses()) == {"node1", "node2"}
    genesis = load_genesis(tmp_path / "net")
    assert [v.name for v in genesis.validators] == ["sb/node0", "sb/node1"]
