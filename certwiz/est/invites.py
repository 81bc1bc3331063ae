"""The stored invites (`PROFILE/est-tokens.json`, 0600): what `tokens` writes and the
operations that issue or revoke a name cancel.

Apart from `tokens` so that issuing (`issue`, `batch`) and `revoke`, which `tokens`
builds on, can cancel a name's unused invites: a name issued or revoked by the
operator must not enroll later with an invite made before (attack round 12, F6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import durations
from ..fsutil import read_records, write_records
from ..profile import Profile
from ..transaction import Transaction

TOKENS_FILE = "est-tokens.json"
CANCELLED = "invites_cancelled"  # the audit detail: the names whose invites were cancelled


@dataclass(frozen=True)
class Invite:
    """A stored invite (no token: only its hash)."""

    digest: str
    name: str
    days: str  # the certificate's validity, as durations.text writes it
    expires: datetime
    used: str | None = None  # when it was spent (UTC text), or None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "days": self.days,
            "expires": durations.stamp(self.expires),
            "used": self.used,
        }


def path_of(profile: Profile) -> Path:
    return profile.dir / TOKENS_FILE


def _invite(key: str, item: Any) -> Invite:
    return Invite(
        key,
        str(item["name"]),
        str(item["days"]),
        durations.from_stamp(item["expires"]),
        None if item["used"] is None else str(item["used"]),
    )


def read(profile: Profile) -> dict[str, Invite]:
    """The stored invites by hash; ProfileCorrupt naming the file if it is damaged."""
    return read_records(path_of(profile), "token list", _invite)


def write(profile: Profile, invites: dict[str, Invite], now: datetime) -> None:
    """Replace the list (under the lock), dropping expired invites; empty removes the file."""
    live = {key: item.as_json() for key, item in invites.items() if item.expires > now}
    write_records(path_of(profile), live, 0o600)


def cancel(tx: Transaction, names: Iterable[str]) -> list[str]:
    """Cancel the unused invites of NAMES (under TX's lock); the notes saying so.

    The names go into the audit record (`invites_cancelled`); no token is known here,
    only hashes. Used and expired invites are left to `write`'s rules."""
    path = path_of(tx.profile)
    if not path.exists():  # the common case: no EST in this profile
        return []
    wanted = set(names)
    invites = read(tx.profile)
    gone = {key: item.name for key, item in invites.items()
            if item.name in wanted and item.used is None}  # fmt: skip
    if not gone:
        return []
    for key in gone:
        del invites[key]
    write(tx.profile, invites, datetime.now(UTC).replace(microsecond=0))
    cancelled = sorted(set(gone.values()))
    earlier = tx.current.details.get(CANCELLED)
    tx.note(CANCELLED, sorted({*cancelled, *(earlier if isinstance(earlier, list) else [])}))
    return notes(cancelled)


def notes(cancelled: Iterable[str]) -> list[str]:
    """What the output says about the names whose invites were cancelled."""
    return [f"cancelled the unused invite of {name}: its token no longer enrolls"
            for name in cancelled]  # fmt: skip
