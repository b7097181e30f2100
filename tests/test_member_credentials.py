"""`certificate_member`: the member a TLS client certificate is enrolled as, or a
`BadCredential` (401, `bad_certificate`) saying why it is none. Identification only:
revoked, expired or role-less members are identified here and refused by standing."""

from __future__ import annotations

import pytest

from tests.helpers import (
    ADMIN_KEY,
    DAY_MS,
    GENESIS_TIME_MS,
    TEST_ORG,
    ca_seed,
    genesis,
    key,
    member_cert,
    org_ca,
)
from tidechain.contracts import default_registry, members
from tidechain.contracts.members.credentials import BadCredential, certificate_member
from tidechain.core import cbor
from tidechain.core.crypto import sha256
from tidechain.core.limits import MAX_CERT_DER_BYTES
from tidechain.identity import Role, from_pem, issue_member_cert, private_key_to_pem, to_pem
from tidechain.ledger.chain import genesis_state
from tidechain.ledger.runtime import namespaced
from tidechain.node.tls import issue_node_certificate

NOW_MS = GENESIS_TIME_MS + DAY_MS
DEPOSITOR = 0
ENROLLED_SERIAL = 1_000_000 + DEPOSITOR  # tests.helpers.member_cert's default
STRANGER = 99  # a key the test organisation never enrolled


class State:
    """The committed state as `StateReader`: the test genesis, changed by hand."""

    def __init__(self) -> None:
        self.data = dict(genesis_state(genesis(), default_registry()))

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def org_record_key(self) -> bytes:
        return namespaced(members.NAME, members.org_key(TEST_ORG))


def _refusal(state: State, cert: bytes) -> BadCredential:
    with pytest.raises(BadCredential) as caught:
        certificate_member(state, cert, NOW_MS)
    assert caught.value.code == "bad_certificate"
    assert caught.value.http_status == 401
    return caught.value


def _depositor_cert(*, serial: int = ENROLLED_SERIAL, generation: int = 0,
                    not_after_ms: int = GENESIS_TIME_MS + 365 * DAY_MS) -> bytes:
    return issue_member_cert(org_ca(TEST_ORG, generation), ca_seed(TEST_ORG, generation),
                             f"member {DEPOSITOR}", key(DEPOSITOR).public_key,
                             (Role.DEPOSITOR,), GENESIS_TIME_MS - DAY_MS, not_after_ms, serial)


def test_the_enrolled_certificate_names_its_member() -> None:
    state = State()
    assert certificate_member(state, member_cert(DEPOSITOR, (Role.DEPOSITOR,)),
                              NOW_MS) == key(DEPOSITOR).public_key
    assert certificate_member(state, member_cert(ADMIN_KEY, (Role.ADMIN,)),
                              NOW_MS) == key(ADMIN_KEY).public_key


def test_standing_is_not_checked_here() -> None:
    """Revoked, or long expired at the time given: still identified (the standing
    check that follows refuses it, with that reason)."""
    state = State()
    cert = member_cert(DEPOSITOR, (Role.DEPOSITOR,))
    fingerprint = sha256(org_ca(TEST_ORG))
    state.data[namespaced(members.NAME, members.revoked_key(
        fingerprint, ENROLLED_SERIAL))] = cbor.encode({"height": 1, "time": NOW_MS})
    years_later = GENESIS_TIME_MS + 5 * 365 * DAY_MS
    assert certificate_member(state, cert, years_later) == key(DEPOSITOR).public_key


@pytest.mark.parametrize("junk", [b"", b"not a certificate", b"\x30\x03\x02\x01\x01"])
def test_unparseable_bytes_are_refused(junk: bytes) -> None:
    assert "not a DER X.509 certificate" in _refusal(State(), junk).reason


def test_an_oversized_certificate_is_refused_before_parsing() -> None:
    assert "limit" in _refusal(State(), b"\x30" * (MAX_CERT_DER_BYTES + 1)).reason


def test_a_certificate_for_a_key_that_is_not_ed25519_is_refused() -> None:
    """E.g. a node's ECDSA certificate from the same organisation CA."""
    ca_pair = (to_pem(org_ca(TEST_ORG)), private_key_to_pem(ca_seed(TEST_ORG)))
    node_cert = from_pem(issue_node_certificate(ca_pair, "node0", NOW_MS)[0])
    assert "Ed25519" in _refusal(State(), node_cert).reason


def test_a_key_no_member_is_enrolled_with_is_refused() -> None:
    stranger = member_cert(STRANGER, (Role.ADMIN,))  # a good certificate, never enrolled
    assert "no member is enrolled" in _refusal(State(), stranger).reason


def test_another_serial_than_the_enrolled_one_is_refused() -> None:
    """E.g. a renewed certificate not enrolled yet."""
    reason = _refusal(State(), _depositor_cert(serial=ENROLLED_SERIAL + 1)).reason
    assert f"serial {ENROLLED_SERIAL + 1}" in reason and "enrol" in reason


def test_a_certificate_from_another_ca_is_refused() -> None:
    """Same organisation name, same serial, same key, but not the CA the member was
    enrolled under (its signature does not verify with the chain's CA)."""
    reason = _refusal(State(), _depositor_cert(generation=1)).reason
    assert "not the certificate member test-org/member 0 is enrolled with" in reason
    assert "signature" in reason


def test_a_certificate_from_another_organisation_is_refused() -> None:
    other = issue_member_cert(org_ca("other"), ca_seed("other"), f"member {DEPOSITOR}",
                              key(DEPOSITOR).public_key, (Role.DEPOSITOR,),
                              GENESIS_TIME_MS - DAY_MS, GENESIS_TIME_MS + DAY_MS,
                              ENROLLED_SERIAL)
    assert "issued by" in _refusal(State(), other).reason


def test_a_reissue_with_the_same_serial_and_another_period_is_refused() -> None:
    reissued = _depositor_cert(not_after_ms=GENESIS_TIME_MS + 30 * DAY_MS)
    assert "validity period differs" in _refusal(State(), reissued).reason


def test_a_certificate_whose_ca_left_the_chain_cannot_be_checked() -> None:
    state = State()
    record = cbor.decode(state.data[state.org_record_key()])
    state.data[state.org_record_key()] = cbor.encode(record | {"cas": []})
    cert = member_cert(DEPOSITOR, (Role.DEPOSITOR,))
    assert "no longer registered on chain" in _refusal(state, cert).reason
    del state.data[state.org_record_key()]  # the organisation removed altogether
    assert "no longer registered on chain" in _refusal(state, cert).reason
