"""The trust file (`trust.txt`): which validator keys a verifier trusts, and how many must sign.

Grammar (UTF-8, one item per line, surrounding spaces ignored, CRLF accepted):

    # a comment                  full-line comments only
    origin <checkpoint origin>   optional, at most once: refuse checkpoints of other logs
    quorum <K>                   optional, at most once: 1 <= K <= n, decimal
    <name>+<hex8>+<base64>       one C2SP verifier key per validator (at least one)

Without a `quorum` line the quorum is the BFT default n - floor((n - 1) / 3), which is
2f + 1 when n = 3f + 1.

Extending key lines: a key line is the verifier key followed by optional
space-separated `attribute=value` tokens. None are defined yet, so any token after
the key is rejected today. A later version can add, say, `from=H until=H` (validity
heights) without touching old files (they have no tokens); an old reader given a new
file refuses it rather than silently ignoring a restriction it does not understand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tidechain.core import limits
from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.note import Verifier, parse_verifier_key, text_from_input, utf8_size

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def default_quorum(validator_count: int) -> int:
    """n - floor((n - 1) / 3): the smallest quorum that tolerates floor((n - 1) / 3) faults."""
    return validator_count - (validator_count - 1) // 3


@dataclass(frozen=True)
class Trust:
    """Trusted validator keys, the number of them that must sign, and the expected origin."""

    validators: tuple[Verifier, ...]
    quorum: int
    origin: str | None = None

    def __post_init__(self) -> None:
        _check_validators(self.validators)
        if not 1 <= self.quorum <= len(self.validators):
            raise DecodeError(
                f"quorum {self.quorum} is not between 1 and {len(self.validators)} validators"
            )
        if self.origin is not None:
            _check_origin(self.origin)

    @classmethod
    def of(
        cls, validators: Iterable[Verifier], *, quorum: int | None = None, origin: str | None = None
    ) -> Trust:
        """Build a Trust, taking the default quorum when none is given."""
        keys = tuple(validators)
        return cls(
            validators=keys,
            quorum=default_quorum(len(keys)) if quorum is None else quorum,
            origin=origin,
        )

    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.validators)


def _check_validators(validators: tuple[Verifier, ...]) -> None:
    if not validators:
        raise DecodeError("trust file lists no validator key")
    if len(validators) > limits.MAX_VALIDATORS:
        raise TooLarge(f"trust file lists more than {limits.MAX_VALIDATORS} validators")
    names = [v.name for v in validators]
    ids = [v.key_id for v in validators]
    if len(set(names)) != len(names):
        raise DecodeError("trust file lists a key name twice")
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


def _read_key(line: str, draft: _Draft) -> None:
    key_text, *attributes = line.split()
    if attributes:
        raise DecodeError(f"unknown key attribute {attributes[0]!r}")
    if len(draft.validators) >= limits.MAX_VALIDATORS:
        raise TooLarge(f"trust file lists more than {limits.MAX_VALIDATORS} validators")
    draft.validators.append(parse_verifier_key(key_text))


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
    draft = _Draft(validators=[])
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r").strip()
        if not line or line.startswith("#"):
            continue
        try:
            _read_line(line, draft)
        except DecodeError as exc:
            raise DecodeError(f"trust file line {number}: {exc.reason}") from exc
    return Trust.of(draft.validators, quorum=draft.quorum, origin=draft.origin)


def format_trust(trust: Trust, comment: str | None = None) -> str:
    """Write a trust file that `parse_trust` reads back to `trust` (the quorum is explicit)."""
    lines: list[str] = []
    if comment is not None:
        lines.extend(f"# {part}".rstrip() for part in comment.split("\n"))
    if trust.origin is not None:
        lines.append(f"origin {trust.origin}")
    lines.append(f"quorum {trust.quorum}")
    lines.extend(v.key_text() for v in trust.validators)
    return "\n".join(lines) + "\n"
