"""Revoking certificates and (re)generating the profile's CRL."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import check, database, der, intermediate, names, openssl, upkeep
from . import openssl_args as args
from .errors import InputError, StateError
from .fsutil import install, scratch_dir
from .openssl import Secret
from .passphrase import Source, signing_passphrase
from .profile import Profile
from .transaction import transaction


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


def regenerate_crl(
    profile: Profile,
    ca_passphrase: Secret | None,
    days: int | None,
    keyfile: Path | None = None,
) -> None:
    """Write a new CRL beside crl.pem, then rename it into place (nginx never reads half).

    The new file keeps the old one's mode and group, so a CRL made readable to
    nginx only (e.g. 0640 root:nginx) stays that way. `keyfile`: the CA key is
    not in the profile (an exported root key). In a two-level profile the CRL
    file for NGINX (both CRLs) is rebuilt too.
    """
    try:
        old = profile.crl.stat()
        mode, gid = stat.S_IMODE(old.st_mode), old.st_gid
    except FileNotFoundError:
        mode, gid = 0o644, -1
    with scratch_dir(profile.dir) as work:
        fresh = work / "crl.pem"
        with check.guarded(profile):
            openssl.run(args.gencrl(profile.cnf, fresh, ca_passphrase, days, keyfile))
        try:  # a CRL cut short by a full disk must never replace the good one
            der.crl_serials(check.crl_der(fresh))
        except (check.ProfileCorrupt, ValueError, IndexError) as exc:
            raise check.ProfileCorrupt(
                f"openssl wrote a damaged CRL (is the disk full?): {exc}; {profile.crl} was kept"
            ) from None
        if gid != -1 and gid != fresh.stat().st_gid:
            with contextlib.suppress(PermissionError):
                os.chown(fresh, -1, gid)
        install(fresh, profile.crl, mode)
    chain_dir = intermediate.crl_chain_dir(profile)
    if chain_dir is not None:
        intermediate.write_crl_chain(chain_dir)


def generate_crl(
    profile: Profile,
    *,
    days: int | None = None,
    ca_passphrase: Source = None,
    root_key: Path | None = None,
    timeout: float | None = None,
) -> CRLRenewed:
    """A fresh CRL; superseded certificates whose grace ended are revoked first.

    In a two-level profile the root's CRL is re-signed too whenever the root key is
    at hand (in the profile, or `root_key` once exported).
    """
    if days is not None:
        names.days(days)
    sign_root = profile.two_level and (root_key is not None or profile.root.ca_key.is_file())
    keyfile = None
    if root_key is not None or not profile.two_level:
        keyfile = intermediate.root_keyfile(profile, root_key, "re-signing the root CRL")
    secret = signing_passphrase(profile, ca_passphrase)
    # check_crl=False: it repairs a missing or damaged crl.pem
    with transaction(profile, "crl gen", timeout=timeout, check_crl=False) as tx:
        notes = []
        if sign_root:
            regenerate_crl(profile.root, secret, None, keyfile)
            notes.append(f"renewed the root CRL {profile.root.crl}")
        notes += upkeep.tidy(profile, tx, secret, crl_follows=True)
        regenerate_crl(profile, secret, days)
    crl = profile.nginx_crl
    return CRLRenewed(profile.name, str(crl), notes)


def revoke(
    profile: Profile,
    *,
    name: str | None = None,
    serial: str | None = None,
    reason: str = "unspecified",
    ca_passphrase: Source = None,
    crl_days: int | None = None,
    purge: bool = False,
    timeout: float | None = None,
) -> Revoked:
    """Revoke every valid certificate of NAME (or the one with SERIAL), then renew the CRL.

    With `purge`, the revoked name's private key and PKCS#12 bundle are deleted
    once it has no valid certificate left: a revoked key lying around is a risk.
    """
    names.reason(reason)
    if (name is None) == (serial is None):
        raise InputError("name", "give exactly one of --name or --serial")
    wanted = names.serial(serial) if serial is not None else None
    if crl_days is not None:
        names.days(crl_days, "crl-days")
    if name is not None:
        names.client_name(name)
    with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
        _targets(profile, name, wanted)  # before the lock too: a refusal leaves no trace
    secret = signing_passphrase(profile, ca_passphrase)
    with transaction(profile, "revoke", [name] if name else [], timeout=timeout) as tx:
        targets = _targets(profile, name, wanted)
        for entry in targets:
            revoke_entry(profile, entry, reason, secret)
            tx.note_serial(entry.serial)
        notes = upkeep.tidy(profile, tx, secret, crl_follows=True)
        regenerate_crl(profile, secret, crl_days)
        purged = _purge(profile, targets) if purge else []
        tx.note("purged", purged)
    return Revoked([e.serial for e in targets], reason, str(profile.nginx_crl), purged, notes)


def revoke_entry(
    profile: Profile,
    entry: database.Entry,
    reason: str,
    ca_passphrase: Secret | None,
    keyfile: Path | None = None,
) -> None:
    """`openssl ca -revoke` one certificate; the caller holds the lock and renews the CRL.

    `keyfile`: the CA key is not in the profile (an exported root key).
    """
    cert = profile.newcert_path(entry.serial)
    with check.guarded(profile):
        openssl.run(args.ca_revoke(profile.cnf, cert, reason, ca_passphrase, keyfile))


def revoke_intermediate(
    profile: Profile,
    *,
    reason: str = "unspecified",
    ca_passphrase: Secret | None = None,
    root_key: Path | None = None,
    timeout: float | None = None,
) -> Revoked:
    """The root revokes the intermediate: every leaf it signed stops verifying at once.

    Needs the root key (`root_key` once it was exported). NGINX then refuses every
    client, because the root's CRL in crl-chain.pem lists the intermediate.
    """
    names.reason(reason)
    if not profile.two_level:
        raise StateError(f"profile {profile.name} has no intermediate (ca init --intermediate)")
    keyfile = intermediate.root_keyfile(profile, root_key, "revoking the intermediate")
    with transaction(profile, "ca revoke-intermediate", timeout=timeout) as tx:
        serial = der.cert_serial(der.pem_to_der(profile.intermediate_cert.read_bytes()))
        valid = [
            e for e in database.read(profile.root.index) if e.serial == serial and e.flag == "V"
        ]
        if not valid:
            raise StateError(f"the intermediate {serial} is not valid in {profile.root.index}")
        revoke_entry(profile.root, valid[0], reason, ca_passphrase, keyfile)
        tx.note_serial(serial)
        regenerate_crl(profile.root, ca_passphrase, None, keyfile)
    return Revoked([serial], reason, str(profile.nginx_crl))


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
        except InputError:
            continue
        for path in (profile.key_path(name), profile.p12_path(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # unlink removes a symlink itself, never its target
                purged.append(str(path))
    return purged
