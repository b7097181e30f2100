"""The deterministic CBOR codec (RFC 8949 section 4.2.1) against the RFC, against an
independent implementation (cbor2), and against hostile input.

Why cbor2 is compared only on some maps: cbor2's `canonical=True` orders map keys
length-first (RFC 7049 "canonical", kept in RFC 8949 as section 4.2.3), while
section 4.2.1, our rule, orders them by the plain bytewise order of their encodings.
The two agree whenever all keys of a map share one major type (all unsigned, all
negative, or all text): within one major type a shorter encoding is also bytewise
smaller. They differ on mixed maps such as {1000: 0, "a": 0} (cbor2 puts "a" first,
we put 1000 first). So we compare with cbor2 byte for byte on single-key-type maps and
check mixed maps against a reference that sorts cbor2-encoded keys bytewise.
"""

from __future__ import annotations

import struct
from typing import Any

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidechain.core import cbor
from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS

UINT64_MAX = 2**64 - 1
BOUNDARIES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, UINT64_MAX]
SIGNED_BOUNDARIES = BOUNDARIES + [-1 - b for b in BOUNDARIES]

# --- strategies ---------------------------------------------------------------------

uints = st.integers(0, UINT64_MAX) | st.sampled_from(BOUNDARIES)
negints = st.integers(-(2**64), -1) | st.sampled_from([-1 - b for b in BOUNDARIES])
ints = uints | negints
texts = st.text(max_size=40)  # Hypothesis never generates lone surrogates here
scalars = ints | st.binary(max_size=40) | texts | st.booleans() | st.none()


def _values(depth: int, key_strategies: list[st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Values nested at most `depth` deep; each map draws all its keys from one of
    `key_strategies` (so a list of one mixed strategy gives mixed-key maps)."""
    if depth == 0:
        return scalars
    inner = _values(depth - 1, key_strategies)
    maps = st.one_of(*[st.dictionaries(k, inner, max_size=5) for k in key_strategies])
    return scalars | st.lists(inner, max_size=5) | maps


# Maps whose keys share one major type: cbor2's canonical order equals ours there.
same_type_key_values = _values(3, [uints, negints, texts])
# Any mix of integer and text keys: the full data model.
values = _values(3, [ints | texts])


# --- an independent reference for RFC 8949 4.2.1 ----------------------------------------


def _reference_head(major: int, argument: int) -> bytes:
    for limit, info, fmt in ((24, None, ""), (2**8, 24, ">B"), (2**16, 25, ">H"),
                             (2**32, 26, ">I"), (2**64, 27, ">Q")):
        if argument < limit:
            if info is None:
                return bytes([major << 5 | argument])
            return bytes([major << 5 | info]) + struct.pack(fmt, argument)
    raise AssertionError("argument beyond 64 bits")


def reference_encode(value: Any) -> bytes:
    """cbor2 for scalars; containers built by hand with keys sorted bytewise (4.2.1)."""
    if isinstance(value, list):
        return _reference_head(4, len(value)) + b"".join(reference_encode(v) for v in value)
    if isinstance(value, dict):
        pairs = sorted((cbor2.dumps(k, canonical=True), reference_encode(v))
                       for k, v in value.items())
        return _reference_head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
    return cbor2.dumps(value, canonical=True)


def assert_rejected(data: bytes) -> None:
    """Rejected with one of the codec's two typed errors, and nothing else."""
    with pytest.raises((DecodeError, TooLarge)):
        cbor.decode(data)


# --- round trips and agreement with other implementations --------------------------------


@settings(max_examples=400)
@given(values)
def test_round_trip(value: Any) -> None:
    encoded = cbor.encode(value)
    assert cbor.decode(encoded) == value
    assert cbor.encode(cbor.decode(encoded)) == encoded


@settings(max_examples=300)
@given(same_type_key_values)
def test_equals_cbor2_canonical_when_map_keys_share_a_type(value: Any) -> None:
    encoded = cbor.encode(value)
    assert encoded == cbor2.dumps(value, canonical=True)
    assert cbor2.loads(encoded) == value


@settings(max_examples=300)
@given(values)
def test_matches_bytewise_key_order_reference(value: Any) -> None:
    encoded = cbor.encode(value)
    assert encoded == reference_encode(value)
    assert cbor2.loads(encoded) == value


@pytest.mark.parametrize("n", SIGNED_BOUNDARIES)
def test_integer_boundaries(n: int) -> None:
    encoded = cbor.encode(n)
    assert encoded == cbor2.dumps(n)
    assert cbor.decode(encoded) == n


@pytest.mark.parametrize(("n", "length"), [(23, 1), (24, 2), (255, 2), (256, 3), (65535, 3),
                                           (65536, 5), (2**32 - 1, 5), (2**32, 9)])
def test_shortest_form_lengths(n: int, length: int) -> None:
    assert len(cbor.encode(n)) == length
    assert len(cbor.encode(-1 - n)) == length
    if n <= 65536:  # the same head carries string lengths
        assert len(cbor.encode(b"\0" * n)) == length + n


def test_mixed_key_map_is_sorted_bytewise_not_length_first() -> None:
    # 4.2.1: 0x19 03e8 (1000) < 0x20 (-1) < 0x61 61 ("a"); length-first would differ.
    value = {"a": 0, -1: 0, 1000: 0}
    assert cbor.encode(value).hex() == "a3" "1903e800" "2000" "616100"
    assert cbor.decode(bytes.fromhex("a31903e800200061610" "0")) == value


def test_tuple_bytearray_and_memoryview_encode_as_their_cbor_types() -> None:
    assert cbor.encode((1, 2)) == cbor.encode([1, 2])
    assert cbor.encode(bytearray(b"ab")) == cbor.encode(memoryview(b"ab")) == b"\x42ab"


# --- RFC 8949 Appendix A ----------------------------------------------------------------

APPENDIX_A_SUPPORTED: list[tuple[Any, str]] = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"),
    (100, "1864"), (1000, "1903e8"), (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"), (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"), (-1, "20"), (-10, "29"),
    (-100, "3863"), (-1000, "3903e7"), (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"), ("", "60"), ("a", "6161"),
    ("IETF", "6449455446"), ('"\\', "62225c"), ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"), ("\U00010151", "64f0908591"), ([], "80"),
    ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
     "a56161614161626142616361436164614461656145"),
]

# Appendix A items outside our data model (bignums, floats, simple values, tags) and
# every indefinite-length example: all have to be refused.
APPENDIX_A_REFUSED = [
    "c249010000000000000000", "c349010000000000000000", "f90000", "f98000", "f93c00",
    "fb3ff199999999999a", "f93e00", "f97bff", "fa47c35000", "fa7f7fffff",
    "fb7e37e43c8800759c", "f90001", "f90400", "f9c400", "fbc010666666666666",
    "f97c00", "f97e00", "f9fc00", "fa7f800000", "fa7fc00000", "faff800000",
    "fb7ff0000000000000", "fb7ff8000000000000", "fbfff0000000000000", "f7", "f0",
    "f8ff", "c074323031332d30332d32315432303a30343a30305a", "c11a514b67b0",
    "c1fb41d452d9ec200000", "d74401020304", "d818456449455446",
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    "5f42010243030405ff", "7f657374726561646d696e67ff", "9fff", "9f018202039f0405ffff",
    "9f01820203820405ff", "83018202039f0405ff", "83019f0203ff820405",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    "bf61610161629f0203ffff", "826161bf61626163ff", "bf6346756ef563416d7421ff",
]


@pytest.mark.parametrize(("value", "hex_"), APPENDIX_A_SUPPORTED)
def test_rfc8949_appendix_a(value: Any, hex_: str) -> None:
    assert cbor.encode(value).hex() == hex_
    assert cbor.decode(bytes.fromhex(hex_)) == value
    assert cbor2.loads(bytes.fromhex(hex_)) == value  # the table itself is right


@pytest.mark.parametrize("hex_", APPENDIX_A_REFUSED)
def test_rfc8949_appendix_a_items_outside_the_model_are_refused(hex_: str) -> None:
    assert_rejected(bytes.fromhex(hex_))


# --- non-canonical forms ------------------------------------------------------------------

_WIDTHS = {24: 1, 25: 2, 26: 4, 27: 8}


def _wide_head(major: int, argument: int, info: int) -> bytes:
    return bytes([major << 5 | info]) + argument.to_bytes(_WIDTHS[info], "big")


@settings(max_examples=300)
@given(st.integers(0, 5), st.sampled_from(sorted(_WIDTHS)), st.data())
def test_non_shortest_heads_are_rejected(major: int, info: int, data: st.DataObject) -> None:
    # An argument that would fit a shorter form, written in the wider `info` form.
    shortest_limit = {24: 24, 25: 2**8, 26: 2**16, 27: 2**32}[info]
    argument = data.draw(st.integers(0, min(shortest_limit - 1, 64)))
    # Strings and containers get valid content, so that only the head is wrong.
    sorted_map_body = b"".join(_reference_head(0, i) + b"\0" for i in range(argument))
    content = {2: b"\0" * argument, 3: b"a" * argument, 4: b"\0" * argument,
               5: sorted_map_body}
    assert_rejected(_wide_head(major, argument, info) + content.get(major, b""))


@pytest.mark.parametrize("hex_", [
    "1800", "1817", "190000", "1900ff", "1a00000000", "1a0000ffff",
    "1b0000000000000000", "1b00000000ffffffff", "3817", "3900ff", "3a0000ffff",
    "3b00000000ffffffff", "5800", "590001" "00", "780161", "9800", "b800", "d81700",
])
def test_known_non_shortest_forms_are_rejected(hex_: str) -> None:
    assert_rejected(bytes.fromhex(hex_))


@pytest.mark.parametrize("initial", [0x1F, 0x3F, 0x5F, 0x7F, 0x9F, 0xBF, 0xDF, 0xFF])
def test_indefinite_lengths_and_break_are_rejected(initial: int) -> None:
    assert_rejected(bytes([initial]) + b"\xff")
    assert_rejected(bytes([initial]) + b"\x40\xff")


@pytest.mark.parametrize("major", range(8))
@pytest.mark.parametrize("info", [28, 29, 30])
def test_reserved_additional_information_is_rejected(major: int, info: int) -> None:
    assert_rejected(bytes([major << 5 | info]) + b"\0" * 8)


@pytest.mark.parametrize(("hex_", "why"), [
    ("a2616200616100", "text keys out of order"),
    ("a2616100616100", "duplicate text key"),
    ("a2020001 00", "int keys out of order"),
    ("a2010001 00", "duplicate int key"),
    ("a2616100 1903e8 00", "text before a bytewise-smaller int (length-first order)"),
    ("a2 20 00 1903e8 00", "-1 before 1000 (length-first order)"),
    ("a2 6161 00 6161 01", "duplicate key, different values"),
])
def test_unsorted_or_duplicate_map_keys_are_rejected(hex_: str, why: str) -> None:
    assert_rejected(bytes.fromhex(hex_.replace(" ", "")))


@pytest.mark.parametrize("hex_", [
    "a1f500", "a1f400", "a1f600", "a1410000", "a18000", "a1a000", "a1f93c0000", "a1c00000",
])
def test_map_keys_other_than_int_or_text_are_rejected(hex_: str) -> None:
    assert_rejected(bytes.fromhex(hex_))


@pytest.mark.parametrize("hex_", [
    "f90000", "f93c00", "f97c00", "f97e00",  # half
    "fa3f800000", "fa7fc00000",  # single
    "fb3ff0000000000000", "fb7ff8000000000000",  # double
])
def test_floats_are_rejected(hex_: str) -> None:
    assert_rejected(bytes.fromhex(hex_))


@given(st.integers(0, 23).filter(lambda i: i not in (20, 21, 22)))
def test_simple_values_other_than_false_true_null_are_rejected(info: int) -> None:
    assert_rejected(bytes([0xE0 | info]))


@given(st.integers(0, 255))
def test_two_byte_simple_values_are_rejected(value: int) -> None:
    assert_rejected(bytes([0xF8, value]))


@given(st.integers(0, UINT64_MAX), scalars)
def test_tags_are_rejected(tag: int, content: Any) -> None:
    assert_rejected(_reference_head(6, tag) + cbor.encode(content))


@pytest.mark.parametrize("utf8_hex", [
    "ff", "80", "c0af", "c1bf", "e080af", "eda080", "edbfbf", "f4908080", "f5808080",
    "f880808080", "c3", "e6b0", "f09085",
])
def test_invalid_utf8_is_rejected(utf8_hex: str) -> None:
    raw = bytes.fromhex(utf8_hex)
    assert_rejected(_reference_head(3, len(raw)) + raw)
    assert cbor.decode(_reference_head(2, len(raw)) + raw) == raw  # fine as bytes


@settings(max_examples=200)
@given(values, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(value: Any, tail: bytes) -> None:
    assert_rejected(cbor.encode(value) + tail)


@settings(max_examples=200)
@given(values)
def test_truncation_at_every_position_is_rejected(value: Any) -> None:
    encoded = cbor.encode(value)
    for cut in range(len(encoded)):
        assert_rejected(encoded[:cut])


def test_nesting_limit_is_exact() -> None:
    deepest_ok = b"\x81" * MAX_CBOR_DEPTH + b"\x00"
    assert cbor.decode(deepest_ok) is not None
    with pytest.raises(TooLarge):
        cbor.decode(b"\x81" * (MAX_CBOR_DEPTH + 1) + b"\x00")
    with pytest.raises(TooLarge):
        cbor.decode(b"\xa1\x00" * (MAX_CBOR_DEPTH + 1) + b"\x00")
    nested: Any = 0
    for _ in range(MAX_CBOR_DEPTH):
        nested = [nested]
    assert cbor.encode(nested) == deepest_ok
    with pytest.raises(TooLarge):
        cbor.encode([nested])


def test_item_count_limit_is_exact() -> None:
    many = [0] * MAX_CBOR_ITEMS
    assert cbor.decode(cbor.encode(many)) == many
    too_many = _reference_head(4, MAX_CBOR_ITEMS + 1)
    with pytest.raises(TooLarge):
        cbor.decode(too_many + b"\x00" * (MAX_CBOR_ITEMS + 1))
    with pytest.raises(TooLarge):
        cbor.decode(too_many)  # refused from the head alone, before reading items
    with pytest.raises(TooLarge):
        cbor.decode(_reference_head(5, MAX_CBOR_ITEMS + 1))
    with pytest.raises(TooLarge):
        cbor.decode(bytes.fromhex("9bffffffffffffffff"))
    with pytest.raises(TooLarge):
        cbor.encode([0] * (MAX_CBOR_ITEMS + 1))
    with pytest.raises(TooLarge):
        cbor.encode({i: 0 for i in range(MAX_CBOR_ITEMS + 1)})


def test_huge_declared_string_length_is_a_truncation() -> None:
    assert_rejected(bytes.fromhex("5bffffffffffffffff"))
    assert_rejected(bytes.fromhex("7b00000001000000000000"))


# --- the encoder refuses values outside the data model ---------------------------------


@pytest.mark.parametrize("value", [
    1.0, 0.0, float("nan"), 2**64, -(2**64) - 1, {1, 2}, frozenset(), object(), 1j,
    {True: 0}, {None: 0}, {b"k": 0}, {(1,): 0}, "\ud800", ["ok", "\udfff"], {"\ud800": 1},
])
def test_encoder_refuses_values_outside_the_model(value: Any) -> None:
    with pytest.raises(DecodeError):
        cbor.encode(value)


def test_encoder_refuses_cycles_with_a_typed_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TooLarge):
        cbor.encode(loop)


def test_decoder_refuses_non_bytes() -> None:
    with pytest.raises(DecodeError):
        cbor.decode("00")  # type: ignore[arg-type]


# --- fuzzing --------------------------------------------------------------------------------


@settings(max_examples=2000)
@given(st.binary(max_size=64))
@example(b"")
@example(b"\xa2\x01\x00\xf5\x00")  # {1: 0, True: 0}: one Python key
def test_arbitrary_bytes_decode_or_reject_and_decoding_is_injective(data: bytes) -> None:
    """Decode raises only the typed errors; whatever it accepts re-encodes to exactly
    the same bytes, so no value has a second accepted encoding."""
    try:
        value = cbor.decode(data)
    except (DecodeError, TooLarge):
        return
    assert cbor.encode(value) == data


@settings(max_examples=500)
@given(values, st.data())
def test_mutated_encodings_decode_or_reject_and_stay_injective(
    value: Any, data: st.DataObject
) -> None:
    encoded = bytearray(cbor.encode(value))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    try:
        decoded = cbor.decode(bytes(encoded))
    except (DecodeError, TooLarge):
        return
    assert cbor.encode(decoded) == bytes(encoded)


@given(st.lists(values, max_size=8))
@settings(max_examples=200)
def test_array_items_are_the_encodings_of_the_items(items: list[Any]) -> None:
    assert cbor.array_items(cbor.encode(items)) == [cbor.encode(v) for v in items]


@pytest.mark.parametrize("hex_", ["", "a0", "01", "8201", "820102ff", "9f01ff", "8118"])
def test_array_items_refuses_what_decode_refuses(hex_: str) -> None:
    with pytest.raises(DecodeError):
        cbor.array_items(bytes.fromhex(hex_))
