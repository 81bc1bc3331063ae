"""Superseded certificates still inside their grace: `renew --grace` keeps the old one
valid until a date, then the first writing command (or `crl gen`) revokes it.

The pending list is `PROFILE/grace.json` (serial -> name, until, successor),
written atomically under the profile lock. index.txt is never touched by hand:
the old certificate stays a `V` line until `openssl ca -revoke` marks it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import durations
from .errors import ProfileCorrupt
from .fsutil import write_atomic
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


def read(profile: Profile) -> dict[str, Pending]:
    """The pending supersessions by serial; ProfileCorrupt naming the file if it is damaged."""
    path = path_of(profile)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            serial: Pending(
                serial,
                str(item["name"]),
                durations.from_stamp(item["until"]),
                str(item["successor"]),
            )
            for serial, item in raw.items()
        }
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProfileCorrupt(f"{path}: not a certwiz grace list ({exc})") from None


def write(profile: Profile, pending: dict[str, Pending]) -> None:
    """Replace grace.json (under the lock); an empty list removes the file."""
    path = path_of(profile)
    if not pending:
        path.unlink(missing_ok=True)
        return
    data = {serial: item.as_json() for serial, item in sorted(pending.items())}
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", 0o644)


def due(profile: Profile, now: datetime | None = None) -> list[Pending]:
    """The supersessions whose grace has ended."""
    now = now or datetime.now(UTC)
    return [item for item in read(profile).values() if item.until <= now]
