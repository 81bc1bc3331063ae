"""Issuing and renewing the OCSP responder's own certificate (an operation: it signs).

Kept out of `certwiz.ocsp` (URLs, paths, the renewal rule), which `ca`, `issue` and
`nginx` read: this module needs `issue`, so living there made an import cycle.
"""

from __future__ import annotations

from datetime import timedelta

from .. import check, crl, inventory, issue, journal, ocsp
from ..passphrase import Source, signing_passphrase
from ..profile import Profile
from ..transaction import transaction


def ensure_responder(
    profile: Profile, ca_passphrase: Source, lock_timeout: float | None = None
) -> str | None:
    """Issue the responder certificate when `ocsp.responder_renewal` says so; one audit record.

    The old one (if any) is revoked as superseded. Returns the new serial, or None.
    A CA passphrase provider is called only then (and only for an encrypted CA key).
    """
    check.refuse_live_copy(profile)  # a copy beside its original answers for neither
    if ocsp.responder_renewal(profile) is None:  # nothing to do: no lock, no audit record
        return None
    ca_passphrase = signing_passphrase(profile, ca_passphrase)
    with transaction(profile, "ocsp responder", [ocsp.RESPONDER_NAME], timeout=lock_timeout) as tx:
        reason = ocsp.responder_renewal(profile)  # again, under the lock
        if reason is None:
            return None
        tx.note("reason", reason)
        old = inventory.valid_named(profile, ocsp.RESPONDER_NAME)
        for entry in old:
            crl.revoke_entry(profile, entry, "superseded", ca_passphrase)
            tx.note_serial(entry.serial)
        with journal.workspace(profile) as work:
            key, csr = issue.key_and_csr(profile, work, ocsp.RESPONDER_NAME, "ec:P-256", None)
            serial, cert = issue.sign(
                tx, work, csr, ocsp.RESPONDER_NAME, "ocsp", timedelta(days=ocsp.RESPONDER_DAYS), [],
                rsa=False, ca_passphrase=ca_passphrase,
            )  # fmt: skip
            staged = [
                (key, ocsp.responder_key(profile), 0o600),
                (cert, ocsp.responder_cert(profile), 0o644),
            ]
            journal.deliver(profile, work, staged)  # a kill from here on: rolled forward
        if old:
            crl.regenerate_crl(profile, ca_passphrase, None)
    return serial
