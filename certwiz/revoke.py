"""Revoking certificates and (re)generating the profile's CRL."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field

from . import audit, check, database, names, openssl, upkeep
from .ca import gencrl_args
from .errors import StateError
from .fsutil import install, scratch_dir
from .openssl import Secret
from .profile import Profile


@dataclass(frozen=True)
class Revoked:
    serials: list[str]
    reason: str
    crl: str
    purged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CRLRenewed:
    profile: str
    crl: str
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.crl


def regenerate_crl(profile: Profile, ca_passphrase: Secret | None, days: int | None) -> None:
    """Write a new CRL beside crl.pem, then rename it into place (nginx never reads half).

    The new file keeps the old one's mode and group, so a CRL made readable to
    nginx only (e.g. 0640 root:nginx) stays that way.
    """
    try:
        old = profile.crl.stat()
        mode, gid = stat.S_IMODE(old.st_mode), old.st_gid
    except FileNotFoundError:
        mode, gid = 0o644, -1
    with scratch_dir(profile.dir) as work:
        fresh = work / "crl.pem"
        with check.guarded(profile):
            openssl.run(gencrl_args(profile.cnf, fresh, ca_passphrase, days))
        try:  # a CRL cut short by a full disk must never replace the good one
            check.crl_serials(check.crl_der(fresh))
        except (check.ProfileCorrupt, ValueError, IndexError) as exc:
            raise check.ProfileCorrupt(
                f"openssl wrote a damaged CRL (is the disk full?): {exc}; {profile.crl} was kept"
            ) from None
        if gid != -1 and gid != fresh.stat().st_gid:
            with contextlib.suppress(PermissionError):
                os.chown(fresh, -1, gid)
        install(fresh, profile.crl, mode)


def generate_crl(
    profile: Profile, *, days: int | None = None, ca_passphrase: Secret | None = None
) -> CRLRenewed:
    """A fresh CRL; superseded certificates whose grace ended are revoked first."""
    if days is not None:
        names.days(days)
    with audit.changing(profile, "crl gen", check_crl=False) as change:  # it repairs crl.pem
        notes = upkeep.tidy(profile, change, ca_passphrase, crl_follows=True)
        regenerate_crl(profile, ca_passphrase, days)
    return CRLRenewed(profile.name, str(profile.crl), notes)


def revoke(
    profile: Profile,
    *,
    name: str | None = None,
    serial: str | None = None,
    reason: str = "unspecified",
    ca_passphrase: Secret | None = None,
    crl_days: int | None = None,
    purge: bool = False,
) -> Revoked:
    """Revoke every valid certificate of NAME (or the one with SERIAL), then renew the CRL.

    With `purge`, the revoked name's private key and PKCS#12 bundle are deleted
    once it has no valid certificate left: a revoked key lying around is a risk.
    """
    names.reason(reason)
    if (name is None) == (serial is None):
        raise names.InputError("name", "give exactly one of --name or --serial")
    wanted = names.serial(serial) if serial is not None else None
    if crl_days is not None:
        names.days(crl_days, "crl-days")
    if name is not None:
        names.client_name(name)
    with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
        _targets(profile, name, wanted)  # before the lock too: a refusal leaves no trace
    with audit.changing(profile, "revoke", [name] if name else []) as change:
        targets = _targets(profile, name, wanted)
        for entry in targets:
            revoke_entry(profile, entry, reason, ca_passphrase)
            change.serials.append(entry.serial)
        notes = upkeep.tidy(profile, change, ca_passphrase, crl_follows=True)
        regenerate_crl(profile, ca_passphrase, crl_days)
        purged = _purge(profile, targets) if purge else []
        change.details["purged"] = purged
    return Revoked([e.serial for e in targets], reason, str(profile.crl), purged, notes)


def revoke_entry(
    profile: Profile, entry: database.Entry, reason: str, ca_passphrase: Secret | None
) -> None:
    """`openssl ca -revoke` one certificate; the caller holds the lock and renews the CRL."""
    args: list[openssl.Arg] = [
        "ca",
        "-batch",
        "-config",
        profile.cnf,
        "-revoke",
        profile.newcert_path(entry.serial),
        "-crl_reason",
        reason,
    ]
    if ca_passphrase is not None:
        args += ["-passin", ca_passphrase]
    with check.guarded(profile):
        openssl.run(args)


def _targets(profile: Profile, name: str | None, wanted: int | None) -> list[database.Entry]:
    """The valid certificates to revoke: the one with serial `wanted`, or all of `name`."""
    entries = database.read(profile.index)
    if wanted is not None:
        targets = [e for e in entries if e.serial_int == wanted and e.flag == "V"]
        what = f"serial {wanted:X}"
    else:
        targets = database.valid_named(entries, str(name))
        what = str(name)
    if not targets:
        raise StateError(
            f"{what} has no valid certificate in profile {profile.name}; "
            f"see: certwiz list -p {profile.name}"
        )
    return targets


def _purge(profile: Profile, revoked: list[database.Entry]) -> list[str]:
    """Delete key and bundle of each revoked name that has no valid certificate left."""
    still_valid = {e.common_name for e in database.read(profile.index) if e.status() == "valid"}
    purged = []
    for name in sorted({e.common_name for e in revoked if e.common_name} - still_valid):
        try:
            names.client_name(name)  # names files only if it is a safe file name
        except names.InputError:
            continue
        for path in (profile.key_path(name), profile.p12_path(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # unlink removes a symlink itself, never its target
                purged.append(str(path))
    return purged
