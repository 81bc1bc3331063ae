"""What every writing command does before it lets go of a profile.

1. Superseded certificates whose `--grace` ended are revoked (`superseded`), so a
   name never keeps two valid certificates past its grace.
2. A CRL that passes its nextUpdate makes NGINX reject every client while `nginx -t`
   still passes (easy-rsa's 180-day outage). So any change to a profile renews the
   CRL once less than a third of its validity is left, and says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import check, crl, database, der, grace, intermediate
from .openssl import Secret
from .profile import Profile
from .transaction import Transaction

RENEW_FRACTION = 3  # renew when less than 1/RENEW_FRACTION of the validity is left


def crl_window(path: Path) -> tuple[datetime, datetime | None]:
    """(thisUpdate, nextUpdate) of a PEM CRL file."""
    return der.crl_times(check.crl_der(path))


def crl_due_between(this: datetime, following: datetime | None, now: datetime) -> bool:
    """True when less than a third of the validity is left (or it has lapsed)."""
    if following is None:
        return False  # a CRL without nextUpdate never lapses
    return following - now < (following - this) / RENEW_FRACTION


def crl_due(path: Path, now: datetime | None = None) -> bool:
    return crl_due_between(*crl_window(path), now or datetime.now(UTC))


def renewal_note(path: Path, left: timedelta) -> str:
    days = left.total_seconds() / 86400
    state = "had lapsed" if days < 0 else f"had {days:.1f} days left"
    return f"renewed {path} (it {state}, less than a third of its validity)"


def renew_crl_if_due(
    profile: Profile, tx: Transaction, ca_passphrase: Secret | None, now: datetime | None = None
) -> list[str]:
    """Renew crl.pem when it is past its one-third mark; the notes say what was done.

    Call inside the command's transaction (under the lock), after its
    own work, so a command that already wrote a fresh CRL does nothing here.
    """
    now = now or datetime.now(UTC)
    if not crl_due(profile.crl, now):
        return []
    _, following = crl_window(profile.crl)
    assert following is not None
    crl.regenerate_crl(profile, ca_passphrase, None)
    note = renewal_note(profile.crl, following - now)
    notes = tx.details.setdefault("crl_renewed", [])
    assert isinstance(notes, list)
    notes.append(note)
    return [note]


def supersede_due(
    profile: Profile, tx: Transaction, ca_passphrase: Secret | None, now: datetime | None = None
) -> list[str]:
    """Revoke (`superseded`) every certificate whose grace has ended; the caller renews the CRL.

    Entries no longer valid (revoked or expired meanwhile) just leave the list.
    """
    pending = grace.read(profile)
    due = grace.due(profile, now)
    if not due:
        return []
    by_serial = {e.serial: e for e in database.read(profile.index)}
    notes = []
    for item in due:
        entry = by_serial.get(item.serial)
        if entry is not None and entry.flag == "V":
            crl.revoke_entry(profile, entry, "superseded", ca_passphrase)
            tx.note_serial(item.serial)
            notes.append(
                f"revoked {item.serial}, the superseded certificate of {item.name} "
                f"(its grace ended {item.until:%Y-%m-%dT%H:%M:%SZ})"
            )
        del pending[item.serial]
        grace.write(profile, pending)
    if notes:
        tx.note("superseded", [item.serial for item in due])
    return notes


def tidy(
    profile: Profile,
    tx: Transaction,
    ca_passphrase: Secret | None,
    *,
    crl_follows: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """Both upkeep steps, under the lock. `crl_follows`: the caller writes a fresh CRL next."""
    notes = supersede_due(profile, tx, ca_passphrase, now)
    if notes and not crl_follows:
        crl.regenerate_crl(profile, ca_passphrase, None)
        notes.append(f"renewed {profile.crl}")
    elif not crl_follows:
        notes += renew_crl_if_due(profile, tx, ca_passphrase, now)
    notes += renew_root_crl_if_due(profile, tx, ca_passphrase, now)
    if profile.two_level and intermediate.crl_chain_stale(profile.dir):
        intermediate.write_crl_chain(profile.dir)  # a CRL made by hand with openssl ca
        notes.append(f"rebuilt {profile.nginx_crl} from the current CRLs")
    return notes


def renew_root_crl_if_due(
    profile: Profile, tx: Transaction, ca_passphrase: Secret | None, now: datetime | None = None
) -> list[str]:
    """The root CRL of a two-level profile, past its one-third mark: re-sign it if the root
    key is at hand, else say how (its key is offline; `status` warns too)."""
    if not profile.two_level:
        return []
    root, now = profile.root, now or datetime.now(UTC)
    if not crl_due(root.crl, now):
        return []
    _, following = crl_window(root.crl)
    assert following is not None
    if not root.ca_key.is_file():
        left = (following - now).total_seconds() / 86400
        return [
            f"the root CRL {root.crl} has {left:.1f} days left and the root key is offline; "
            f"re-sign it: certwiz crl gen -p {profile.name} --root-key FILE"
        ]
    crl.regenerate_crl(root, ca_passphrase, None)
    note = renewal_note(root.crl, following - now)
    notes = tx.details.setdefault("crl_renewed", [])
    assert isinstance(notes, list)
    notes.append(note)
    return [note]
