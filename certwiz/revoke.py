"""Revoking certificates and (re)generating the profile's CRL."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

from . import database, names, openssl
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


def _regenerate_crl(profile: Profile, ca_passphrase: Secret | None, days: int | None) -> None:
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
        openssl.run(gencrl_args(profile, profile.cnf, fresh, ca_passphrase, days))
        if gid != -1 and gid != fresh.stat().st_gid:
            with contextlib.suppress(PermissionError):
                os.chown(fresh, -1, gid)
        install(fresh, profile.crl, mode)


def generate_crl(
    profile: Profile, *, days: int | None = None, ca_passphrase: Secret | None = None
) -> str:
    if days is not None:
        names.days(days)
    with profile.lock():
        _regenerate_crl(profile, ca_passphrase, days)
    return str(profile.crl)


def revoke(
    profile: Profile,
    *,
    name: str | None = None,
    serial: str | None = None,
    reason: str = "unspecified",
    ca_passphrase: Secret | None = None,
    crl_days: int | None = None,
) -> Revoked:
    """Revoke every valid certificate of NAME (or the one with SERIAL), then renew the CRL."""
    names.reason(reason)
    if (name is None) == (serial is None):
        raise names.InputError("name", "give exactly one of --name or --serial")
    wanted = names.serial(serial) if serial is not None else None
    if crl_days is not None:
        names.days(crl_days, "crl-days")
    with profile.lock():
        entries = database.read(profile.index)
        if wanted is not None:
            targets = [e for e in entries if e.serial_int == wanted and e.flag == "V"]
            what = f"serial {serial}"
        else:
            subject = database.oneline(str(name))
            targets = [e for e in entries if e.subject == subject and e.status() == "valid"]
            what = str(name)
        if not targets:
            raise StateError(
                f"{what} has no valid certificate in profile {profile.name}; "
                f"see: certwiz list -p {profile.name}"
            )
        for entry in targets:
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
            openssl.run(args)
        _regenerate_crl(profile, ca_passphrase, crl_days)
    return Revoked([e.serial for e in targets], reason, str(profile.crl))
