"""The trust file (`trust.txt`): which validator keys a verifier trusts, and how many must sign.

Grammar (UTF-8, one item per line, surrounding spaces ignored, CRLF accepted):

    # a comment                  full-line comments only
    origin <checkpoint origin>   optional, at most once: refuse checkpoints of other logs
    quorum <K>                   optional, at most once: 1 <= K <= n, decimal
    <name>+<hex8>+<base64>       one C2SP verifier key per validator (at least one)

Without a `quorum` line the quorum is the BFT default n - floor((n - 1) / 3), which is
2f + 1 when n = 3f + 1.

Key lines may carry space-separated `attribute=value` tokens after the key. One is
defined (ADR 0011):

    sizes=<first>-[<last>]       the log sizes whose checkpoints this key may sign

A validator key that was rotated stays in the file with the range of checkpoints it
signed, and its successor (same name, another key) starts after it; receipts made
before the rotation keep verifying. A checkpoint of size s is verified against the
keys whose range contains s, with the quorum of that set (the `quorum` line, if any,
applies to every set). Keys without a range are valid for every size. Any other token
is refused: an old reader given a newer file refuses it rather than silently ignoring
a restriction it does not understand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidechain.core import limits
from tidechain.core.errors import DecodeError, ProofError, TooLarge
from tidechain.core.note import Verifier, parse_verifier_key, text_from_input, utf8_size

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def default_quorum(validator_count: int) -> int:
    """n - floor((n - 1) / 3): the smallest quorum that tolerates floor((n - 1) / 3) faults."""
    return validator_count - (validator_count - 1) // 3


@dataclass(frozen=True)
class SizeRange:
    """The log sizes (inclusive) whose checkpoints a key may sign; `last` None: open."""

    first: int = 0
    last: int | None = None

    def __contains__(self, size: object) -> bool:
        return isinstance(size, int) and self.first <= size and (
            self.last is None or size <= self.last)

    def overlaps(self, other: SizeRange) -> bool:
        return (self.last is None or other.first <= self.last) and (
            other.last is None or self.first <= other.last)

    def text(self) -> str:
        return f"sizes={self.first}-{'' if self.last is None else self.last}"


_ALWAYS = SizeRange()


@dataclass(frozen=True)
class Trust:
    """Trusted validator keys, the number of them that must sign, and the expected
    origin; optionally, per key, the range of checkpoint sizes it may sign."""

    validators: tuple[Verifier, ...]
    quorum: int
    origin: str | None = None
    ranges: tuple[SizeRange, ...] = ()  # empty, or one per validator
    # Only matters with ranges: whether the quorum came from a `quorum` line.
    quorum_explicit: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.ranges and len(self.ranges) != len(self.validators):
            raise DecodeError("trust file: one size range per key")
        _check_validators(self.validators, self.ranges or (_ALWAYS,) * len(self.validators))
        if not 1 <= self.quorum <= len(self.validators):
            raise DecodeError(
                f"quorum {self.quorum} is not between 1 and {len(self.validators)} validators"
            )
        if self.origin is not None:
            _check_origin(self.origin)

    @classmethod
    def of(
        cls, validators: Iterable[Verifier], *, quorum: int | None = None,
        origin: str | None = None, ranges: Iterable[SizeRange] = (),
    ) -> Trust:
        """Build a Trust, taking the default quorum when none is given."""
        keys = tuple(validators)
        spans = tuple(ranges)
        if spans and all(r == _ALWAYS for r in spans):
            spans = ()
        names = len({v.name for v in keys})
        return cls(
            validators=keys,
            quorum=default_quorum(names) if quorum is None else quorum,
            origin=origin,
            ranges=spans,
            quorum_explicit=quorum is not None,
        )

    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.validators)

    def at_size(self, size: int) -> Trust:
        """The keys that may sign a checkpoint of `size`, with that set's quorum.
        Raises ProofError if none may."""
        if not self.ranges:
            return self
        keys = tuple(v for v, r in zip(self.validators, self.ranges, strict=True) if size in r)
        if not keys:
            raise ProofError(f"the trust file lists no key for a checkpoint of size {size}")
        quorum = self.quorum if self.quorum_explicit else default_quorum(len(keys))
        if quorum > len(keys):
            raise ProofError(f"the trust file's quorum {quorum} exceeds the {len(keys)} keys "
                             f"valid for a checkpoint of size {size}")
        return Trust(keys, quorum, self.origin)


def _check_validators(validators: tuple[Verifier, ...], ranges: tuple[SizeRange, ...]) -> None:
    if not validators:
        raise DecodeError("trust file lists no validator key")
    if len(validators) > limits.MAX_VALIDATORS:
        raise TooLarge(f"trust file lists more than {limits.MAX_VALIDATORS} validators")
    # A name appears again only for a rotated key, over sizes the other key did not sign.
    by_name: dict[str, list[SizeRange]] = {}
    for verifier, span in zip(validators, ranges, strict=True):
        earlier = by_name.setdefault(verifier.name, [])
        if any(span.overlaps(other) for other in earlier):
            raise DecodeError(f"trust file lists a key name twice for overlapping sizes "
                              f"({verifier.name})")
        earlier.append(span)
    ids = [v.key_id for v in validators]
    if len(set(ids)) != len(ids):
        raise DecodeError("trust file lists a key id twice")
    # One key under two names would let one organisation count twice towards the quorum.
    if len({v.public_key for v in validators}) != len(validators):
        raise DecodeError("trust file lists the same public key twice")


def _check_origin(origin: str) -> None:
    if not origin or origin != origin.strip() or "\n" in origin:
        raise DecodeError("trust file origin must be non-empty, without surrounding spaces")
    if utf8_size(origin) > limits.MAX_NAME_BYTES:
        raise DecodeError(f"trust file origin is longer than {limits.MAX_NAME_BYTES} bytes")


@dataclass
class _Draft:
    """What has been read so far; becomes a Trust at the end."""

    validators: list[Verifier]
    ranges: list[SizeRange]
    quorum: int | None = None
    origin: str | None = None


def _read_quorum(value: str, draft: _Draft) -> None:
    if draft.quorum is not None:
        raise DecodeError("trust file has two quorum lines")
    if not _DECIMAL.fullmatch(value) or len(value) > 4:
        raise DecodeError(f"quorum {value!r} is not a small decimal number")
    draft.quorum = int(value)


def _read_origin(value: str, draft: _Draft) -> None:
    if draft.origin is not None:
        raise DecodeError("trust file has two origin lines")
    _check_origin(value)
    draft.origin = value


_SIZES = re.compile(r"sizes=(0|[1-9][0-9]{0,18})-(0|[1-9][0-9]{0,18})?")


def _read_key(line: str, draft: _Draft) -> None:
    key_text, *attributes = line.split()
    span = _ALWAYS
    for attribute in attributes:
        match = _SIZES.fullmatch(attribute)
        if match is None:
            raise DecodeError(f"unknown key attribute {attribute[:40]!r}")
        if span is not _ALWAYS:
            raise DecodeError("repeated key attribute 'sizes'")
        first, last = int(match[1]), None if match[2] is None else int(match[2])
        if last is not None and last < first:
            raise DecodeError(f"size range {attribute!r} ends before it starts")
        span = SizeRange(first, last)
    if len(draft.validators) >= limits.MAX_VALIDATORS:
        raise TooLarge(f"trust file lists more than {limits.MAX_VALIDATORS} validators")
    draft.validators.append(parse_verifier_key(key_text))
    draft.ranges.append(span)


def _read_line(line: str, draft: _Draft) -> None:
    word, _, rest = line.partition(" ")
    if word == "quorum":
        _read_quorum(rest.strip(), draft)
    elif word == "origin":
        _read_origin(rest.strip(), draft)
    elif "+" in word:
        _read_key(line, draft)
    else:
        raise DecodeError(f"unknown trust file directive {word!r}")


def parse_trust(text: str | bytes) -> Trust:
    """Parse a trust file; every malformed line is a DecodeError naming its line number."""
    text = text_from_input(text, "trust file")
    if utf8_size(text) > limits.MAX_TRUST_FILE_BYTES:
        raise TooLarge(f"trust file is larger than {limits.MAX_TRUST_FILE_BYTES} bytes")
    draft = _Draft(validators=[], ranges=[])
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r").strip()
        if not line or line.startswith("#"):
            continue
        try:
            _read_line(line, draft)
        except DecodeError as exc:
            raise DecodeError(f"trust file line {number}: {exc.reason}") from exc
    return Trust.of(draft.validators, quorum=draft.quorum, origin=draft.origin,
                    ranges=draft.ranges)


def format_trust(trust: Trust, comment: str | None = None) -> str:
    """Write a trust file that `parse_trust` reads back to `trust` (the quorum is explicit)."""
    lines: list[str] = []
    if comment is not None:
        lines.extend(f"# {part}".rstrip() for part in comment.split("\n"))
    if trust.origin is not None:
        lines.append(f"origin {trust.origin}")
    if trust.quorum_explicit or not trust.ranges:
        lines.append(f"quorum {trust.quorum}")
    spans = trust.ranges or (_ALWAYS,) * len(trust.validators)
    lines.extend(v.key_text() + ("" if r == _ALWAYS else " " + r.text())
                 for v, r in zip(trust.validators, spans, strict=True))
    return "\n".join(lines) + "\n"


def trust_text_of_keys(network: str, origin: str, keys: Sequence[Mapping[str, Any]]) -> str:
    """The trust file of every validator key that has signed, each with the checkpoint
    sizes it may sign (`sizes=A-B`, ADR 0011), from a node's `validator_set.keys`
    ({name, key (hex), sizes [first, last|null], heights [low, high|null]}). A chain
    whose set never changed gives one open range per key, which the file writes as no
    range at all. Shared by the node (`GET /v1/trust`) and `tide trust export`."""
    verifiers, ranges, heights = [], [], []
    for entry in keys:
        verifiers.append(Verifier.of(str(entry["name"]), bytes.fromhex(entry["key"])))
        first, last = entry["sizes"]
        ranges.append(SizeRange(int(first), None if last is None else int(last)))
        low, high = entry["heights"]
        heights.append(f"{entry['name']}: heights {low}-{'' if high is None else high}")
    trust = Trust.of(verifiers, origin=origin, ranges=ranges)
    comment = f"tidechain network {network}: validators' verifier keys"
    if trust.ranges:
        comment += "\n" + "\n".join(heights)
    return format_trust(trust, comment)
