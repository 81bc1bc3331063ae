"""Certificates and CRLs read with `cryptography`, in process (never parsed by hand).

`certwiz list` classifies every certificate of a profile as server or client, and
the consistency check reads the CRL before every change: starting `openssl` once
per file would not scale to fleets. `cryptography` is imported on first use, so a
command that reads no certificate does not pay for it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

CERT_BEGIN, CERT_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


class DERError(ValueError):
    """Bytes that are not the certificate or CRL they should be."""


def pem_to_der(pem: bytes) -> bytes:
    """The DER of the first PEM certificate in PEM (a chain's leaf)."""
    start = pem.find(CERT_BEGIN)
    stop = pem.find(CERT_END, start)
    if start < 0 or stop < 0:
        raise DERError("no PEM certificate")
    try:
        return base64.b64decode(b"".join(pem[start + len(CERT_BEGIN) : stop].split()))
    except binascii.Error as exc:
        raise DERError(str(exc)) from exc


def certificate(der: bytes) -> x509.Certificate:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise DERError(f"not a DER certificate ({exc})") from None


def is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE (an intermediate the root signed for another system)."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def kind_of(pem: bytes) -> str:
    """'ca', 'server', 'client', 'server+client', 'other' (no EKU) or 'unknown' (unreadable)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    try:  # list classifies thousands: the extensions are parsed once, looked up twice
        extensions = certificate(pem_to_der(pem)).extensions
        try:
            if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return "ca"
        except x509.ExtensionNotFound:
            pass
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "other"
    except ValueError:  # DERError, or an extension cryptography cannot parse
        return "unknown"
    found = [
        k for k, oid in (("server", EKU.SERVER_AUTH), ("client", EKU.CLIENT_AUTH)) if oid in usages
    ]
    return "+".join(found) or "other"


def plain_client_problem(pem: bytes) -> str | None:
    """What makes a certificate more than a plain client certificate, or None.

    Plain (what [client_ext] of `ca init` gives): basicConstraints CA:FALSE and keyUsage
    digitalSignature, both critical, extendedKeyUsage clientAuth only, the two key
    identifiers, and no other extension.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    try:
        cert = certificate(pem_to_der(pem))
        found = {type(ext.value): ext for ext in cert.extensions}
    except ValueError as exc:  # DERError, or an extension cryptography cannot parse
        return f"no readable extensions ({exc})"
    expected = {
        x509.BasicConstraints,
        x509.KeyUsage,
        x509.ExtendedKeyUsage,
        x509.SubjectKeyIdentifier,
        x509.AuthorityKeyIdentifier,
    }
    if set(found) != expected:
        names = sorted(t.__name__ for t in set(found) ^ expected)
        return f"other extensions than a client's ({', '.join(names)})"
    basic, usage = found[x509.BasicConstraints], found[x509.KeyUsage]
    if basic.value.ca or not basic.critical or not usage.critical:
        return "basicConstraints or keyUsage unlike a client's"
    digital_only = usage.value.digital_signature and not any(
        getattr(usage.value, flag)
        for flag in ("content_commitment", "key_encipherment", "data_encipherment",
                     "key_agreement", "key_cert_sign", "crl_sign")
    )  # fmt: skip
    if not digital_only:
        return "a keyUsage other than digitalSignature"
    if list(found[x509.ExtendedKeyUsage].value) != [EKU.CLIENT_AUTH]:
        return "an extendedKeyUsage other than clientAuth"
    return None


def cert_validity(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a DER certificate, in UTC."""
    cert = certificate(der)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def cert_serial(der: bytes) -> str:
    """The serial number in upper-case hex, as openssl ca writes it (even length)."""
    text = f"{certificate(der).serial_number:X}"
    return "0" * (len(text) % 2) + text


def cert_subject_cn(der: bytes) -> str | None:
    """The last commonName of the subject."""
    from cryptography.x509.oid import NameOID

    names = certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[-1].value) if names else None


def crl(der: bytes) -> x509.CertificateRevocationList:
    from cryptography import x509

    try:
        return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise DERError(f"not a DER CRL ({exc})") from None


def crl_times(der: bytes) -> tuple[datetime, datetime | None]:
    """(thisUpdate, nextUpdate) of a DER CRL; nextUpdate is optional in RFC 5280."""
    parsed = crl(der)
    return parsed.last_update_utc, parsed.next_update_utc


def crl_serials(der: bytes) -> set[int]:
    """The revoked serial numbers a DER CRL lists."""
    return {entry.serial_number for entry in crl(der)}


def crl_signature_problem(der: bytes, signer_pem: bytes) -> str | None:
    """Why the CRL is not signed by the certificate in SIGNER_PEM, or None if it is."""
    try:
        parsed, signer = crl(der), certificate(pem_to_der(signer_pem))
        if parsed.issuer != signer.subject:
            return "issued by another name"
        if not parsed.is_signature_valid(signer.public_key()):  # type: ignore[arg-type]
            return "bad signature"
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def outer_length(data: bytes) -> int:
    """The length a DER object (e.g. a PKCS#12 file) declares, header included.

    Only the envelope: a file openssl cut short (full disk) is shorter than it says.
    """
    if len(data) < 2:
        raise DERError("truncated element")
    length, pos = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise DERError("bad length")
        length, pos = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return pos + length


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER of every certificate in a PEM file (a chain), in order."""
    return [pem_to_der(CERT_BEGIN + block) for block in pem.split(CERT_BEGIN)[1:]]


def serves_tls(pem: bytes) -> bool:
    """serverAuth in the extendedKeyUsage, or no extendedKeyUsage at all (any purpose);
    never a CA certificate."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    try:
        cert = certificate(pem_to_der(pem))
        if is_ca(cert):
            return False
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return EKU.SERVER_AUTH in usages


def san_hosts(der: bytes) -> set[str]:
    """The DNS names (in lower case) and IP addresses of the subjectAltName."""
    from cryptography import x509

    try:
        sans = certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    dns = {name.lower() for name in sans.value.get_values_for_type(x509.DNSName)}
    return dns | {str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)}


def same_public_key(cert_pem: bytes, csr_pem: bytes) -> bool:
    """Does the certificate carry the public key of the certification request?"""
    from cryptography import x509

    try:
        cert = certificate(pem_to_der(cert_pem))
        request = x509.load_pem_x509_csr(csr_pem)
        return cert.public_key() == request.public_key()
    except (ValueError, TypeError):
        return False


def spki(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate: its key, comparable as bytes."""
    return spki_of(certificate(der))


def csr_spki(pem: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM certification request."""
    from cryptography import x509

    return spki_of(x509.load_pem_x509_csr(pem))


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool | None:
    """Is KEY_PEM the private key of the (first) certificate in CERT_PEM? None when the
    key cannot be read without a password (an encrypted client key) or at all."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(key_pem, None)
        return spki(pem_to_der(cert_pem)) == spki_of(key)
    except (ValueError, TypeError):
        return None


def spki_of(obj: object) -> bytes:
    """The DER SubjectPublicKeyInfo of a loaded key, certificate or request (anything with
    `public_key()`): one key, whatever holds it, compares equal as bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = obj.public_key()  # type: ignore[attr-defined]
    return bytes(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """ISSUER's key signed CERT and the names chain: the one test that names can't fake.
    False for a wrong name, a key type that cannot have signed it, or a bad signature."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
