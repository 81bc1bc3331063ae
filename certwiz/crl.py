"""The CRL and revocation primitives every change uses, under the caller's lock.

They sit below `revoke` (the command), `upkeep` (CRL renewal, grace ends), `issue`
(withdrawing an undelivered certificate) and `ocsp` (superseding the responder's
certificate), so none of those has to import another to publish a CRL.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from . import check, database, der, intermediate, openssl
from . import openssl_args as args
from .fsutil import install, scratch_dir
from .openssl import Secret
from .profile import Profile


def crl_version(profile: Profile) -> tuple[int, int] | None:
    """Which crl.pem is in place: every publication renames a new file over it (a new
    inode), so a change compares this before and after to know it published one."""
    try:
        found = os.stat(profile.crl)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


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
