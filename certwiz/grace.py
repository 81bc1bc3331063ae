"""Superseded certificates still inside their grace: `renew --grace` keeps the old one
valid until a date, then the first writing command (or `crl gen`) revokes it.

The pending list is `PROFILE/grace.json` (serial -> name, until, successor),
written atomically under the profile lock. index.txt is never touched by hand:
the old certificate stays a `V` line until `openssl ca -revoke` marks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import durations
from .fsutil import read_records, write_records
from .profile import Profile

GRACE_FILE = "grace.json"


@dataclass(frozen=True)
class Pending:
    serial: str
    name: str
    until: datetime
    successor: str

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "until": durations.stamp(self.until),
            "successor": self.successor,
        }


def path_of(profile: Profile) -> Path:
    return profile.dir / GRACE_FILE


def _pending(serial: str, item: Any) -> Pending:
    return Pending(
        serial, str(item["name"]), durations.from_stamp(item["until"]), str(item["successor"])
    )


def read(profile: Profile) -> dict[str, Pending]:
    """The pending supersessions by serial; ProfileCorrupt naming the file if it is damaged."""
    return read_records(path_of(profile), "grace list", _pending)


def write(profile: Profile, pending: dict[str, Pending]) -> None:
    """Replace grace.json (under the lock); an empty list removes the file."""
    data = {serial: item.as_json() for serial, item in pending.items()}
    write_records(path_of(profile), data, 0o644)


def due(profile: Profile, now: datetime | None = None) -> list[Pending]:
    """The supersessions whose grace has ended."""
    now = now or datetime.now(UTC)
    return [item for item in read(profile).values() if item.until <= now]
