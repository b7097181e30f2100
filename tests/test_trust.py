"""Trust files: grammar, default quorum, every rejection, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core import limits
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.note import Signer, Verifier
from tidechain.core.trust import Trust, default_quorum, format_trust, parse_trust


def validator(i: int, network: str = "devnet") -> Verifier:
    return Signer(f"{network}/node-{i}", SigningKey(sha256(f"trust-{i}".encode()))).verifier()


KEYS = [validator(i) for i in range(4)]


def key_lines(count: int) -> str:
    return "".join(validator(i).key_text() + "\n" for i in range(count))


@pytest.mark.parametrize(
    ("n", "quorum"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7), (64, 43)]
)
def test_default_quorum(n: int, quorum: int) -> None:
    assert default_quorum(n) == quorum
    faults = (n - 1) // 3
    # Two quorums always share an honest validator: 2q - n > f.
    assert 2 * quorum - n > faults


def test_minimal_file() -> None:
    trust = parse_trust(KEYS[0].key_text() + "\n")
    assert trust == Trust(validators=(KEYS[0],), quorum=1, origin=None)


def test_full_file_with_comments_blank_lines_and_crlf() -> None:
    text = (
        "# tidechain trust file\r\n"
        "\r\n"
        "origin tidechain/devnet/0011223344556677\r\n"
        "   # indented comment\r\n"
        "quorum 2\r\n" + "".join(f"  {k.key_text()}  \r\n" for k in KEYS[:3])
    )
    trust = parse_trust(text)
    assert trust.validators == tuple(KEYS[:3])
    assert trust.quorum == 2
    assert trust.origin == "tidechain/devnet/0011223344556677"
    assert trust.names() == ("devnet/node-0", "devnet/node-1", "devnet/node-2")


def test_default_quorum_applies_without_quorum_line() -> None:
    assert parse_trust(key_lines(4)).quorum == 3


def test_format_round_trip_with_comment() -> None:
    trust = Trust.of(KEYS, quorum=4, origin="tidechain/devnet/0011223344556677")
    text = format_trust(trust, comment="devnet validators\nissued at height 0")
    assert text.startswith("# devnet validators\n# issued at height 0\n")
    assert parse_trust(text) == trust
    assert parse_trust(format_trust(trust)) == trust


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no validator"),
        ("# only a comment\n", "no validator"),
        ("quorum 1\n", "no validator"),
        (key_lines(1) + "quorum 0\n", "quorum 0"),
        (key_lines(3) + "quorum 4\n", "quorum 4"),
        (key_lines(3) + "quorum 02\n", "decimal"),
        (key_lines(3) + "quorum -1\n", "decimal"),
        (key_lines(3) + "quorum two\n", "decimal"),
        (key_lines(3) + "quorum\n", "decimal"),
        (key_lines(3) + "quorum 2\nquorum 2\n", "two quorum"),
        (key_lines(1) + "origin a\norigin a\n", "two origin"),
        (key_lines(1) + "origin\n", "origin"),
        (key_lines(1) + "origin " + "x" * 200 + "\n", "longer"),
        (key_lines(1) + "threshold 1\n", "unknown trust file directive"),
        (key_lines(1) + "Quorum 1\n", "unknown trust file directive"),
        (key_lines(1) + KEYS[0].key_text() + "\n", "name twice"),
        (KEYS[0].key_text() + " from=10\n", "unknown key attribute"),
        (KEYS[0].key_text()[:-2] + "\n", "line 1"),
        (KEYS[0].key_text().replace("devnet", "testnet") + "\n", "key id does not match"),
    ],
)
def test_rejections(text: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_trust(text)


def test_rejection_names_the_line() -> None:
    with pytest.raises(DecodeError, match="line 3"):
        parse_trust(key_lines(2) + "bogus\n")


def test_same_name_twice_with_different_keys_is_rejected() -> None:
    other = Signer(KEYS[0].name, SigningKey(sha256(b"rotated"))).verifier()
    with pytest.raises(DecodeError, match="name twice"):
        parse_trust(KEYS[0].key_text() + "\n" + other.key_text() + "\n")


def test_same_public_key_under_two_names_is_rejected() -> None:
    # Otherwise one organisation's key would count twice towards the quorum.
    alias = Verifier.of("devnet/alias", KEYS[0].public_key)
    with pytest.raises(DecodeError, match="same public key"):
        parse_trust(KEYS[0].key_text() + "\n" + alias.key_text() + "\n")


def test_duplicate_key_id_is_rejected() -> None:
    # A real key id collision needs ~2**32 work; build the clash directly.
    clash = Verifier("devnet/other", KEYS[0].key_id, KEYS[1].public_key)
    with pytest.raises(DecodeError, match="key id twice"):
        Trust(validators=(KEYS[0], clash), quorum=1)


def test_size_bounds() -> None:
    with pytest.raises(TooLarge):
        parse_trust("#" * limits.MAX_TRUST_FILE_BYTES + "\n" + key_lines(1))
    with pytest.raises(TooLarge):
        parse_trust(key_lines(limits.MAX_VALIDATORS + 1))
    assert len(parse_trust(key_lines(limits.MAX_VALIDATORS)).validators) == limits.MAX_VALIDATORS


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        parse_trust(b"# \xff\n" + key_lines(1).encode())


def test_trust_constructor_checks_quorum() -> None:
    with pytest.raises(DecodeError):
        Trust(validators=tuple(KEYS), quorum=0)
    with pytest.raises(DecodeError):
        Trust.of(KEYS, quorum=5)
    with pytest.raises(DecodeError):
        Trust.of([])
    assert Trust.of(KEYS).quorum == 3


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=10),
    data=st.data(),
    origin=st.none() | st.from_regex(r"[a-z0-9/._-]{1,40}", fullmatch=True),
)
def test_round_trip_property(count: int, data: st.DataObject, origin: str | None) -> None:
    quorum = data.draw(st.integers(min_value=1, max_value=count))
    trust = Trust.of([validator(i) for i in range(count)], quorum=quorum, origin=origin)
    assert parse_trust(format_trust(trust, comment="generated")) == trust


# --- key ranges (ADR 0011): a rotated key keeps verifying what it signed -------------------


ROTATED = Signer("devnet/node-0", SigningKey(sha256(b"node-0 after rotation"))).verifier()


def rotated_file(quorum_line: str = "") -> str:
    return (quorum_line + KEYS[0].key_text() + " sizes=0-100\n"
            + ROTATED.key_text() + " sizes=101-\n" + key_lines(4).split("\n", 1)[1])


def test_a_rotated_key_and_its_successor_cover_disjoint_sizes() -> None:
    trust = parse_trust(rotated_file())
    old, new = trust.at_size(100), trust.at_size(101)
    assert KEYS[0] in old.validators and ROTATED not in old.validators
    assert ROTATED in new.validators and KEYS[0] not in new.validators
    assert len(old.validators) == len(new.validators) == 4 and old.quorum == new.quorum == 3
    assert parse_trust(format_trust(trust)) == trust  # ranges survive a round trip


def test_a_quorum_line_applies_to_every_set() -> None:
    trust = parse_trust(rotated_file("quorum 4\n"))
    assert trust.at_size(5).quorum == trust.at_size(500).quorum == 4


@pytest.mark.parametrize(("line", "why"), [
    (KEYS[0].key_text() + " sizes=10-5\n", "ends before it starts"),
    (KEYS[0].key_text() + " sizes=1-2 sizes=3-4\n", "repeated"),
    (KEYS[0].key_text() + " sizes=01-2\n", "unknown key attribute"),
    (KEYS[0].key_text() + " sizes=0-100\n" + ROTATED.key_text() + " sizes=100-\n",
     "name twice for overlapping sizes"),
])
def test_bad_ranges_are_refused(line: str, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        parse_trust(line)


def test_no_key_for_a_size_is_a_proof_error() -> None:
    from tidechain.core.errors import ProofError

    with pytest.raises(ProofError, match="no key for a checkpoint of size 7"):
        parse_trust(KEYS[0].key_text() + " sizes=10-\n").at_size(7)
