"""One-time enrollment tokens: `certwiz client invite` makes one, EST `simpleenroll` spends it.

A token is 256 random bits (URL-safe text) shown once; the profile keeps only its
SHA-256 (a slow hash buys nothing for a secret that cannot be guessed), with the
name it enrolls, the validity of the certificate it buys, when it expires and
whether it was used. The list is `PROFILE/est-tokens.json` (0600), replaced
atomically under the profile lock inside a transaction; the audit record names
the invite, never the token.

Rules:
- single use: `redeem` marks it used under the same lock that signs, so two racing
  enrollments with one token get one certificate;
- expired tokens are refused (and dropped at the next write);
- one live invite per name: a new invite replaces the name's unused one (a lost
  token is re-issued, not added);
- a name that already has a valid certificate is refused at invite time (as
  `client issue` refuses it): it renews over EST with that certificate
  (simplereenroll) or is revoked first. `simpleenroll` re-checks it under the lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .. import durations, names
from ..errors import InputError, StateError
from ..issue import DEFAULT_LEAF_DAYS, check_no_valid
from ..profile import Profile
from ..transaction import Transaction, transaction
from .invites import TOKENS_FILE as TOKENS_FILE
from .invites import Invite as Invite
from .invites import path_of as path_of
from .invites import read as read
from .invites import write as write

DEFAULT_TTL = "1h"
MAX_TTL = timedelta(days=30)  # an invite is for an enrollment about to happen
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 256  # what `redeem` reads of a presented token


@dataclass(frozen=True)
class Invited:
    """What `client invite` prints: the token (shown once) and what it enrolls."""

    token: str
    name: str
    profile: str
    days: str
    expires: str
    replaced: int  # earlier unused invites of the name this one replaced


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_ttl(ttl: str | timedelta) -> timedelta:
    span = durations.parse(ttl, "ttl")
    if span > MAX_TTL:
        raise InputError("ttl", f"at most {durations.text(MAX_TTL)}: an invite is for now")
    return span


def invite(
    profile: Profile,
    name: str,
    *,
    ttl: str | timedelta = DEFAULT_TTL,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    timeout: float | None = None,
) -> Invited:
    """A new one-time token that enrolls client NAME (valid DAYS) until now + TTL."""
    names.enrollable_name(name)
    span = check_ttl(ttl)
    validity = durations.parse(days, "days")
    check_no_valid(profile, name)  # before the lock too: a refusal leaves no trace
    with transaction(profile, "client invite", [name], timeout=timeout) as tx:
        check_no_valid(profile, name)
        now = datetime.now(UTC).replace(microsecond=0)
        invites = read(profile)
        earlier = [k for k, v in invites.items() if v.name == name and v.used is None]
        for key in earlier:
            del invites[key]
        token = secrets.token_urlsafe(TOKEN_BYTES)
        item = Invite(digest(token), name, durations.text(validity), now + span)
        invites[item.digest] = item
        write(profile, invites, now)
        tx.note("expires", durations.stamp(item.expires))
        tx.note("days", item.days)
        if earlier:
            tx.note("replaced", len(earlier))
    return Invited(
        token, name, profile.name, item.days, durations.stamp(item.expires), len(earlier)
    )


def find(profile: Profile, name: str, token: str, now: datetime | None = None) -> Invite:
    """The unused, unexpired invite of NAME this token belongs to (StateError otherwise).

    Read-only: the service calls it before the lock (a refusal costs no lock) and
    `redeem` again under it.
    """
    now = now or datetime.now(UTC)
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise StateError("token: unknown token")
    wanted = digest(token)
    for key, item in read(profile).items():
        if hmac.compare_digest(key, wanted):
            if item.name != name:
                raise StateError(f"token: not an invite for {name!r}")
            if item.used is not None:
                raise StateError(f"token: already used ({item.used})")
            if item.expires <= now:
                raise StateError(f"token: expired {durations.stamp(item.expires)}")
            return item
    raise StateError("token: unknown or expired token")


def spend(tx: Transaction, item: Invite) -> None:
    """Mark ITEM used, inside the transaction that signed its certificate (under the lock).

    The caller found it with `find` under the same lock, so two enrollments racing
    with one token cannot both pass; a signature that fails leaves it unspent.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    invites = read(tx.profile)
    invites[item.digest] = Invite(
        item.digest, item.name, item.days, item.expires, durations.stamp(now)
    )
    write(tx.profile, invites, now)
    tx.note("invite_expires", durations.stamp(item.expires))
