"""Unified social credit codes (GB 32100-2015): published codes, every rule, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core.errors import Rejected
from tidechain.identity.uscc import (
    ALPHABET,
    ORGANISATION_TYPES,
    BadUscc,
    org_code_check_char,
    uscc_check_char,
    validate_uscc,
)

PUBLISHED_CODES = [
    # The worked example of GB 32100-2015 itself (also the Wikipedia illustration),
    # as reproduced at https://renrendoc.com/p-47802332.html and
    # https://blog.csdn.net/hookee/article/details/50610168.
    "91350100M000100Y43",
    # Shenzhen Tencent Computer Systems Co., Ltd., business licence as shown at
    # https://check-china.com/example_report/en/8.
    "91440300708461136T",
    # Two codes used as known-good examples at
    # https://blog.csdn.net/ellasun_web/article/details/130267762 (China Quanjude
    # Group; Beijing Changfeng Hospital).
    "91110000101623741K",
    "911101066976941872",
]


@pytest.mark.parametrize("code", PUBLISHED_CODES)
def test_published_codes_are_valid(code: str) -> None:
    assert validate_uscc(code) == code


def test_the_standards_worked_example_computes_check_3() -> None:
    # The standard's example: sum of products 1640, 1640 mod 31 = 28, 31 - 28 = 3.
    assert uscc_check_char("91350100M000100Y4") == "3"
    with pytest.raises(BadUscc, match="position 18"):
        validate_uscc("91350100M000100Y4Z")


def test_organisation_code_check_characters() -> None:
    assert org_code_check_char("10162374") == "1"  # inside 91110000101623741K
    assert org_code_check_char("M000100Y") == "4"  # the standard's example
    # 10 is written X: "79013765-X" from https://cnblogs.com/sk-net/archive/2011/06/20/2085202.html
    assert org_code_check_char("79013765") == "X"
    assert org_code_check_char("00000000") == "0"  # 11 is written 0
    with pytest.raises(BadUscc):
        org_code_check_char("1016237")


def test_input_is_normalised() -> None:
    assert validate_uscc("  91440300708461136t\n") == "91440300708461136T"


def test_rejection_is_typed_and_stable() -> None:
    with pytest.raises(Rejected) as caught:
        validate_uscc("123")
    assert isinstance(caught.value, BadUscc)
    assert caught.value.to_dict()["error"] == "bad_uscc"


def _with_check(first17: str) -> str:
    """A code whose final check is right, whatever else is wrong with it."""
    return first17 + uscc_check_char(first17)


@pytest.mark.parametrize(("code", "reason"), [
    ("", "18 characters"),
    ("91440300708461136T0", "18 characters"),
    ("91440300708461136", "18 characters"),
    ("9144030070846113IT", "'I' at position 17"),
    ("914403007084611Z6T", "'Z' at position 16"),
    ("91440300708461136-", "'-' at position 18"),
    ("B1440300708461136T", "registration authority"),
    ("94440300708461136T", "organisation type '4'"),
    ("Y2440300708461136T", "organisation type '2'"),
])
def test_each_rule_names_what_is_wrong(code: str, reason: str) -> None:
    with pytest.raises(BadUscc, match=reason):
        validate_uscc(code)


def test_division_code_must_be_digits() -> None:
    with pytest.raises(BadUscc, match="positions 3-8"):
        validate_uscc(_with_check("9144A300708461136"))


def test_organisation_code_check_is_enforced_on_its_own() -> None:
    # Final check recomputed, so only the GB 11714 check inside is wrong.
    with pytest.raises(BadUscc, match="GB 11714"):
        validate_uscc(_with_check("91440300708461137"))


def test_every_registration_authority_and_type_in_the_table_is_accepted() -> None:
    for authority, types in ORGANISATION_TYPES.items():
        for org_type in types:
            first17 = authority + org_type + "110000" + "79013765X"
            assert validate_uscc(_with_check(first17)).startswith(authority + org_type)


_AUTHORITY_TYPES = [a + t for a, types in ORGANISATION_TYPES.items() for t in types]


@st.composite
def valid_codes(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(_AUTHORITY_TYPES))
    division = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    body = draw(st.text(alphabet=ALPHABET, min_size=8, max_size=8))
    first17 = prefix + division + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


@settings(max_examples=300)
@given(valid_codes())
def test_every_generated_code_is_valid(code: str) -> None:
    assert validate_uscc(code) == code


_REPLACEMENTS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_ a"


@settings(max_examples=500)
@given(valid_codes(), st.integers(0, 17), st.sampled_from(_REPLACEMENTS))
def test_any_single_character_change_is_caught(code: str, position: int,
                                               replacement: str) -> None:
    if code[position] == replacement.upper():
        replacement = "I"  # never in a valid code, so still a change
    changed = code[:position] + replacement + code[position + 1:]
    with pytest.raises(BadUscc):
        validate_uscc(changed)
