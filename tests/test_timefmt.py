"""core/timefmt.py: the one ISO-8601 formatter of block times, pure arithmetic,
checked against the standard library's calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidechain.core.errors import DecodeError
from tidechain.core.timefmt import MAX_TIME_MS, MIN_TIME_MS, iso_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(time_ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=time_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.integers(MIN_TIME_MS, MAX_TIME_MS))
def test_iso_utc_agrees_with_the_standard_calendar(time_ms: int) -> None:
    assert iso_utc(time_ms) == _reference(time_ms)


@pytest.mark.parametrize(("time_ms", "text"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (951_782_400_000, "2000-02-29T00:00:00.000Z"),
    (MIN_TIME_MS, "0001-01-01T00:00:00.000Z"),
    (MAX_TIME_MS, "9999-12-31T23:59:59.999Z"),
])
def test_iso_utc_edges(time_ms: int, text: str) -> None:
    assert iso_utc(time_ms) == text


@pytest.mark.parametrize("time_ms", [MIN_TIME_MS - 1, MAX_TIME_MS + 1, 2**63])
def test_a_time_no_four_digit_year_shows_is_bad_input(time_ms: int) -> None:
    with pytest.raises(DecodeError):
        iso_utc(time_ms)
