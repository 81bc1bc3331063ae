"""The one duration parser: `30d`, `12h`, `90m`, `2w`, or a plain number of days; and the
one way a moment is written (`stamp`, read back by `from_stamp`).

Used by every option that takes a span of time (a leaf's `-d`, `--grace`,
`--warn`, `--expiring`), so `12h` means the same thing everywhere and a bad
value is always exit 2 naming the field. Every date certwiz prints, notes in an audit
record or keeps in a JSON file (grace.json, est-tokens.json) is a `stamp`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import InputError

MAX_DAYS = 36500
UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
STAMP = "%Y-%m-%dT%H:%M:%SZ"  # UTC to the second: 2026-11-29T15:28:29Z
_DURATION = re.compile(r"([0-9]{1,8})([mhdw]?)")
RULE = (
    "must be a duration such as 30d, 12h, 90m or 2w (a plain number means days), "
    f"from 1 minute to {MAX_DAYS} days"
)


def parse(value: str | int | timedelta, field: str) -> timedelta:
    """A positive span of time; InputError(field) for anything else (no fractions, no sign)."""
    if isinstance(value, timedelta):
        span = value
    else:
        match = _DURATION.fullmatch(str(value).strip(" ")) if isinstance(value, str | int) else None
        if match is None or isinstance(value, bool):
            raise InputError(field, f"{value!r} {RULE}")
        span = int(match.group(1)) * UNITS[match.group(2) or "d"]
    if not timedelta(minutes=1) <= span <= timedelta(days=MAX_DAYS):
        raise InputError(field, f"{value!r} {RULE}")
    return span


def text(span: timedelta) -> str:
    """A span the way a user would write it: 2w, 30d, 12h, 90m."""
    minutes = int(span.total_seconds() // 60)
    for unit in ("w", "d", "h"):
        size = int(UNITS[unit].total_seconds() // 60)
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def validity_args(span: timedelta, now: datetime | None = None) -> list[str]:
    """`openssl ca` arguments for a certificate valid `span` from now.

    Whole days keep the classic `-days N` (so `-d 365` means what it always
    meant); anything finer becomes an exact `-enddate`.
    """
    if span % timedelta(days=1) == timedelta(0):
        return ["-days", str(span.days)]
    end = (now or datetime.now(UTC)) + span
    return ["-enddate", f"{end:%Y%m%d%H%M%SZ}"]


def left(until: datetime, now: datetime | None = None) -> timedelta:
    return until - (now or datetime.now(UTC))


def stamp(when: datetime) -> str:
    """WHEN (UTC) as certwiz writes a moment everywhere: 2026-11-29T15:28:29Z."""
    return f"{when:{STAMP}}"


def from_stamp(text: str) -> datetime:
    """A `stamp` read back, in UTC; ValueError (or TypeError for a non-text) otherwise."""
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)
