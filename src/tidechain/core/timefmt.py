"""Times as text: a block time (ms since the Unix epoch, UTC) as ISO-8601.

Pure arithmetic on the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`),
so the node, the SDK and the offline verifier share one formatter without a clock.
"""

from __future__ import annotations

from tidechain.core.errors import DecodeError

MS_PER_DAY = 86_400_000
MIN_TIME_MS = -62_135_596_800_000
"""0001-01-01T00:00:00.000Z: the first instant with a four-digit year."""
MAX_TIME_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the last instant with a four-digit year."""
_DAYS_1970_FROM_0000_03_01 = 719_468
_DAYS_PER_ERA = 146_097  # 400 Gregorian years


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number counted from 1970-01-01."""
    z = days + _DAYS_1970_FROM_0000_03_01
    era = z // _DAYS_PER_ERA
    doe = z - era * _DAYS_PER_ERA
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def iso_utc(time_ms: int) -> str:
    """A block time as ISO-8601 UTC with milliseconds, e.g. 2024-05-01T08:30:00.123Z;
    a time no four-digit year can show is bad input."""
    if not MIN_TIME_MS <= time_ms <= MAX_TIME_MS:
        raise DecodeError(f"time {time_ms} ms is out of range")
    days, ms = divmod(time_ms, MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            f".{millis:03d}Z")
