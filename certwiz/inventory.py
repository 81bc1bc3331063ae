"""What a profile holds: every certificate in index.txt, with kind and status."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from . import database, der
from .errors import StateError
from .profile import Profile


def _iso(when: datetime | None) -> str | None:
    return None if when is None else f"{when:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Certificate:
    name: str
    kind: str
    serial: str
    status: str
    not_after: str
    revoked_at: str | None
    reason: str | None
    subject: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _kind(profile: Profile, serial: str) -> str:
    try:
        return der.kind_of(profile.newcert_path(serial).read_bytes())
    except OSError:
        return "unknown"


def certificates(profile: Profile, now: datetime | None = None) -> list[Certificate]:
    now = now or datetime.now(UTC)
    return [
        Certificate(
            name=entry.common_name or entry.subject,
            kind=_kind(profile, entry.serial),
            serial=entry.serial,
            status=entry.status(now),
            not_after=str(_iso(entry.not_after)),
            revoked_at=_iso(entry.revoked_at),
            reason=entry.reason,
            subject=entry.subject,
        )
        for entry in database.read(profile.index)
    ]


def show(profile: Profile, name: str) -> dict[str, object]:
    """The newest certificate of NAME (a valid one first), with its files and fingerprint."""
    subject = database.oneline(name)
    mine = [c for c in certificates(profile) if c.subject == subject]
    if not mine:
        raise StateError(
            f"{name} has no certificate in profile {profile.name}; "
            f"see: certwiz list -p {profile.name}"
        )
    mine.sort(key=lambda c: (c.status == "valid", c.not_after))
    current = mine[-1]
    info: dict[str, object] = current.as_dict()
    pem = profile.newcert_path(current.serial)
    if pem.is_file():
        digest = hashlib.sha256(der.pem_to_der(pem.read_bytes())).hexdigest().upper()
        info["sha256_fingerprint"] = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    candidates = {
        "certificate": profile.cert_path(name),
        "fullchain": profile.fullchain_path(name),
        "key": profile.key_path(name),
        "p12": profile.p12_path(name),
        "csr": profile.csr_path(name),
    }
    info["files"] = {k: str(p) for k, p in candidates.items() if p.is_file()}
    info["history"] = [c.as_dict() for c in mine[:-1]]
    return info
