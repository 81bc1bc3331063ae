"""What every writing command does before it lets go of a profile.

0. The revocations a killed run's journal owes are done (see `journal`).
1. Superseded certificates whose `--grace` ended are revoked (`superseded`), so a
   name never keeps two valid certificates past its grace.
2. A CRL that passes its nextUpdate makes NGINX reject every client while `nginx -t`
   still passes (easy-rsa's 180-day outage). So any change to a profile renews the
   CRL once less than a third of its validity is left, and says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import check, crl, database, der, durations, grace, journal
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
                f"(its grace ended {durations.stamp(item.until)})"
            )
        del pending[item.serial]
        grace.write(profile, pending)
    if notes:
        tx.note("superseded", [item.serial for item in due])
    return notes


def supersede(
    tx: Transaction,
    profile: Profile,
    name: str,
    old: database.Entry,
    successor: str,
    span: timedelta | None,
    secret: Secret | None,
) -> datetime | None:
    """Revoke OLD (`superseded`) now, or put it on the grace list until now + SPAN.

    A superseded certificate of NAME still in an earlier grace is revoked now: a
    name keeps at most its current certificate and the one it replaced.
    """
    pending = grace.read(profile)
    by_serial = {e.serial: e for e in database.read(profile.index)}
    revoked = []
    earlier = [s for s, item in pending.items() if item.name == name and s != old.serial]
    for serial in earlier:
        entry = by_serial.get(serial)
        if entry is not None and entry.flag == "V":
            crl.revoke_entry(profile, entry, "superseded", secret)
            revoked.append(serial)
        del pending[serial]
    until = None
    if span is None:
        crl.revoke_entry(profile, old, "superseded", secret)
        revoked.append(old.serial)
        pending.pop(old.serial, None)
    else:
        until = datetime.now(UTC).replace(microsecond=0) + span
        pending[old.serial] = grace.Pending(old.serial, name, until, successor)
    for serial in revoked:
        tx.note_serial(serial)
    if revoked:
        crl.regenerate_crl(profile, secret, None)
    grace.write(profile, pending)
    return until


def settle_journals(profile: Profile, tx: Transaction, ca_passphrase: Secret | None) -> list[str]:
    """The revocations killed runs owe (see journal), found when TX began: a certificate
    signed but never delivered is withdrawn (`cessationOfOperation`: its key is gone); a
    renewal whose delivery was rolled forward supersedes the certificate it replaced.

    So after any kill a name ends with one valid certificate, the one installed.
    """
    notes: list[str] = []
    for owed in tx.owed:
        entries = {e.serial_int: e for e in database.read(profile.index)}
        signed = entries.get(int(owed.serial, 16))
        if not owed.delivered:
            if signed is not None and signed.flag == "V":
                crl.revoke_entry(profile, signed, "cessationOfOperation", ca_passphrase)
                tx.note_serial(owed.serial)
                notes.append(
                    f"revoked {owed.serial} ({signed.common_name}): a killed run signed it "
                    "and never delivered it"
                )
        elif owed.old is not None and owed.name is not None:
            old = entries.get(int(owed.old, 16))
            if old is not None and old.flag == "V" and old.serial not in grace.read(profile):
                span = None if owed.grace_seconds is None else timedelta(seconds=owed.grace_seconds)
                supersede(tx, profile, owed.name, old, owed.serial, span, ca_passphrase)
                notes.append(
                    f"superseded {old.serial} of {owed.name} by {owed.serial}, the renewal "
                    "a killed run had delivered"
                )
        journal.close(owed)
    tx.owed.clear()
    return notes


def tidy(
    profile: Profile,
    tx: Transaction,
    ca_passphrase: Secret | None,
    *,
    crl_follows: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """The upkeep steps, under the lock. `crl_follows`: the caller writes a fresh CRL next."""
    notes = settle_journals(profile, tx, ca_passphrase)
    notes += supersede_due(profile, tx, ca_passphrase, now)
    if notes and not crl_follows:
        crl.regenerate_crl(profile, ca_passphrase, None)
        notes.append(f"renewed {profile.crl}")
    elif not crl_follows:
        notes += renew_crl_if_due(profile, tx, ca_passphrase, now)
    notes += renew_root_crl_if_due(profile, tx, ca_passphrase, now)
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
