"""The server's answer, checked before anything on the device is replaced: the
certificate for the new key, with the expected subject and sane times, chaining to the
CA file for client authentication, and issued by the profile's own signing CA.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .. import der, durations, openssl
from .. import openssl_args as args
from ..errors import CertwizError
from . import device, transport, trust

if TYPE_CHECKING:
    from cryptography import x509

SKEW = timedelta(minutes=5)  # a new certificate may start this far in the future (clocks)


@dataclass(frozen=True)
class Verified:
    leaf: x509.Certificate
    chain: list[x509.Certificate]  # the issuers to put in the bundle (not the leaf)


def check(
    certs: list[x509.Certificate],
    extra: list[x509.Certificate],
    key_spki: bytes,
    subject: x509.Name | None,
    ca: Path,
    work: Path,
    now: datetime,
    current: x509.Certificate | None = None,
) -> Verified:
    """The answer's certificate for our new key, checked before anything is replaced:
    it chains to CA (through the answer's other certificates and EXTRA, e.g. cacerts)
    for client authentication, has SUBJECT (when given), and its times are sane.

    And it comes from the profile's own signing CA, not from any CA under the root: a
    renewal's from the CA that issued CURRENT (same issuer name and authority key
    identifier, signed by the key that signed CURRENT), an enrollment's directly from a
    certificate in CA."""
    from cryptography import x509

    leaf = next((c for c in certs if der.spki_of(c) == key_spki), None)
    if leaf is None:
        raise transport.AnswerRejected("the answer holds no certificate for the new key")
    if subject is not None and leaf.subject != subject:
        raise transport.AnswerRejected(
            f"the new certificate is for {leaf.subject.rfc4514_string()!r}, "
            f"not {subject.rfc4514_string()!r}"
        )
    if leaf.not_valid_before_utc > now + SKEW or leaf.not_valid_after_utc <= now:
        raise transport.AnswerRejected(
            f"the new certificate is valid from {durations.stamp(leaf.not_valid_before_utc)} to "
            f"{durations.stamp(leaf.not_valid_after_utc)}, not now ({durations.stamp(now)})"
        )
    with contextlib.suppress(x509.ExtensionNotFound):
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise transport.AnswerRejected("the new certificate is a CA certificate")
    seen: set[bytes] = {der.spki_of(leaf) + leaf.tbs_certificate_bytes}
    chain = []
    for cert in [*certs, *extra, *x509.load_pem_x509_certificates(ca.read_bytes())]:
        ident = der.spki_of(cert) + cert.tbs_certificate_bytes
        if ident not in seen:
            seen.add(ident)
            chain.append(cert)
    leaf_file, chain_file = work / "leaf.pem", work / "chain.pem"
    leaf_file.write_bytes(device.pem([leaf]))
    chain_file.write_bytes(device.pem(chain))
    try:
        openssl.run(args.verify(ca, leaf_file, chain_file, "sslclient", partial=True))
    except openssl.OpenSSLError as exc:
        raise transport.AnswerRejected(
            f"the new certificate does not verify against {ca}: {exc.detail}"
        ) from None
    _same_signer(leaf, current, chain if current is not None else trust.ca_certs(ca), ca)
    return Verified(leaf, chain)


def _same_signer(
    leaf: x509.Certificate, current: x509.Certificate | None, pool: list[x509.Certificate],
    ca: Path,
) -> None:  # fmt: skip
    """LEAF is issued by the CA that issued CURRENT (None: by a certificate in CA), whose
    certificate is in POOL; anything else under the same root is refused."""
    issuer = leaf.issuer.rfc4514_string()
    if current is None:
        if not any(der.issued_by(leaf, c) for c in pool):
            raise transport.AnswerRejected(
                f"the new certificate is issued by {issuer!r}, not directly by a certificate "
                f"in {ca} (another CA under the same root?)"
            )
        return
    mine = current.issuer.rfc4514_string()
    same = leaf.issuer == current.issuer and _aki(leaf) == _aki(current)
    if not same or not any(der.issued_by(leaf, c) and der.issued_by(current, c) for c in pool):
        raise transport.AnswerRejected(
            f"the new certificate is issued by {issuer!r} (key id {_aki(leaf) or 'none'}), "
            f"not by the current certificate's CA {mine!r} (key id {_aki(current) or 'none'})"
        )


def _aki(cert: x509.Certificate) -> str | None:
    """The authority key identifier (hex), None without one."""
    from cryptography import x509

    try:
        value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return value.key_identifier.hex(":") if value.key_identifier else None


def with_cacerts(
    where: trust.Endpoint,
    context: ssl.SSLContext,
    certs: list[x509.Certificate],
    spki: bytes,
    subject: x509.Name | None,
    ca: Path,
    work: Path,
    current: x509.Certificate | None = None,
) -> Verified:
    """`check`; when the answer lacks an intermediate, again with GET cacerts."""
    now = datetime.now(UTC)
    try:
        return check(certs, [], spki, subject, ca, work, now, current)
    except transport.AnswerRejected as exc:
        if "does not verify" not in str(exc):
            raise
        from . import wire

        answer = transport.exchange(where, context, "GET", wire.CACERTS)
        try:
            extra = transport.certificates(where, answer, "cacerts")
        except CertwizError:
            raise exc from None
        return check(certs, extra, spki, subject, ca, work, now, current)
