"""The unified social credit code (统一社会信用代码), GB 32100-2015.

Every legal person and other organisation in mainland China has one 18-character
code, and the regulator's filing rules require each consortium member to be known by
it. Layout (positions 1-based):

    1      registration authority (登记管理部门码)
    2      organisation type under that authority (机构类别码)
    3-8    administrative division of the registering office (GB/T 2260, digits)
    9-17   organisation code (主体标识码, GB 11714): 8 characters and a check character
    18     check character over positions 1-17 (GB/T 17710 style, modulus 31)

The alphabet is the digits and the upper-case letters without I, O, Z, S and V (31
characters, valued 0..30 in order). The final check character is
C18 = 31 - (sum(value(c_i) * 3^(i-1) mod 31) mod 31), with 31 written as "0".
The organisation code's own check is C9 = 11 - (sum(value(c_i) * w_i) mod 11) with
weights 3,7,9,10,5,8,4,2 and letters valued A=10..Z=35; 10 is written "X", 11 "0".

Sources read: the standard's worked example (91350100M000100Y4 -> check "3") as
reproduced at https://renrendoc.com/p-47802332.html; the weights and alphabet at
https://blog.csdn.net/hookee/article/details/50610168; GB 11714 at
https://blog.csdn.net/huilan_same/article/details/52103694; the authority and type
table, with the authorities added after 2015 (2-4, 6-8, A, N), at
https://osuse.cn/post/10002590.html.

The division code is checked for digits only: the GB/T 2260 table changes every year
and codes issued under older tables stay valid for life.
"""

from __future__ import annotations

from collections.abc import Mapping

from tidechain.core.errors import Rejected

USCC_LENGTH = 18

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters a code may use, in value order (no I, O, Z, S, V)."""

_VALUE = {char: index for index, char in enumerate(ALPHABET)}
_WEIGHTS = tuple(pow(3, i, 31) for i in range(USCC_LENGTH - 1))

_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""GB 11714 values its characters over the full Latin alphabet (A=10 ... Z=35)."""

REGISTRATION_AUTHORITIES: Mapping[str, str] = {
    "1": "establishment administration (机构编制)",
    "2": "foreign affairs (外交)",
    "3": "judicial administration (司法行政)",
    "4": "culture (文化)",
    "5": "civil affairs (民政)",
    "6": "tourism (旅游)",
    "7": "religious affairs (宗教)",
    "8": "trade unions (工会)",
    "9": "industry and commerce / market regulation (工商)",
    "A": "CMC reform and establishment office (中央军委改革和编制办公室)",
    "N": "agriculture (农业)",
    "Y": "other (其他)",
}
"""Position 1: the authority that registered the organisation."""

ORGANISATION_TYPES: Mapping[str, Mapping[str, str]] = {
    "1": {"1": "government organ", "2": "public institution",
          "3": "mass organisation under the central establishment office", "9": "other"},
    "2": {"1": "resident foreign news agency", "9": "other"},
    "3": {"1": "law firm", "2": "notary office", "3": "grassroots legal service office",
          "4": "judicial expertise institution", "5": "arbitration commission", "9": "other"},
    "4": {"1": "foreign cultural centre in China", "9": "other"},
    "5": {"1": "social organisation", "2": "private non-enterprise unit", "3": "foundation",
          "9": "other"},
    "6": {"1": "resident office of a foreign tourism authority",
          "2": "resident office of a Hong Kong, Macao or Taiwan tourism authority",
          "9": "other"},
    "7": {"1": "place of religious activity", "2": "religious college", "9": "other"},
    "8": {"1": "grassroots trade union", "9": "other"},
    "9": {"1": "enterprise", "2": "individual business", "3": "farmers' cooperative"},
    "A": {"1": "military public institution", "9": "other"},
    "N": {"1": "group-level collective economic organisation",
          "2": "village-level collective economic organisation",
          "3": "township-level collective economic organisation", "9": "other"},
    "Y": {"1": "other"},
}
"""Position 2, per registration authority."""


class BadUscc(Rejected):
    """Not a valid unified social credit code; `reason` says which rule failed."""

    code = "bad_uscc"


def uscc_check_char(first17: str) -> str:
    """The check character (position 18) for the first 17 characters of a code."""
    if len(first17) != USCC_LENGTH - 1:
        raise BadUscc(f"need the first {USCC_LENGTH - 1} characters, got {len(first17)}")
    _require_alphabet(first17)
    total = sum(_VALUE[char] * weight for char, weight in zip(first17, _WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body8: str) -> str:
    """The GB 11714 check character (position 9) of an 8-character organisation code."""
    if len(body8) != len(_ORG_CODE_WEIGHTS) or any(c not in _ORG_CODE_DIGITS for c in body8):
        raise BadUscc(f"organisation code body must be 8 digits or capitals, got {body8!r}")
    total = sum(
        _ORG_CODE_DIGITS.index(char) * weight
        for char, weight in zip(body8, _ORG_CODE_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def validate_uscc(code: str) -> str:
    """Return `code` normalised (surrounding blanks removed, upper case) if it is a
    valid unified social credit code; raise BadUscc naming the first rule it breaks."""
    normalised = code.strip().upper()
    if len(normalised) != USCC_LENGTH:
        raise BadUscc(f"a unified social credit code has {USCC_LENGTH} characters, "
                      f"got {len(normalised)}")
    _require_alphabet(normalised)
    _require_authority_and_type(normalised[0], normalised[1])
    _require_division(normalised[2:8])
    _require_org_code(normalised[8:17])
    expected = uscc_check_char(normalised[:17])
    if normalised[17] != expected:
        raise BadUscc(f"check character (position 18) is {normalised[17]!r}, "
                      f"the code's first 17 characters give {expected!r}")
    return normalised


def _require_alphabet(text: str) -> None:
    for position, char in enumerate(text, start=1):
        if char not in _VALUE:
            raise BadUscc(f"character {char!r} at position {position} is not allowed "
                          f"(digits and capitals except I, O, Z, S, V)")


def _require_authority_and_type(authority: str, org_type: str) -> None:
    types = ORGANISATION_TYPES.get(authority)
    if types is None:
        raise BadUscc(f"registration authority code {authority!r} (position 1) is not one of "
                      f"{''.join(REGISTRATION_AUTHORITIES)}")
    if org_type not in types:
        raise BadUscc(f"organisation type {org_type!r} (position 2) is not defined for "
                      f"registration authority {authority!r}; allowed: {''.join(types)}")


def _require_division(division: str) -> None:
    if not division.isdigit() or not division.isascii():
        raise BadUscc(f"administrative division code (positions 3-8) must be 6 digits, "
                      f"got {division!r}")


def _require_org_code(org_code: str) -> None:
    expected = org_code_check_char(org_code[:8])
    if org_code[8] != expected:
        raise BadUscc(f"organisation code {org_code[:8]}-{org_code[8]} (positions 9-17) "
                      f"fails its GB 11714 check: the check character should be {expected!r}")
