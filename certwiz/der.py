"""Certificates and CRLs read with `cryptography`, in process.

`certwiz list` classifies every certificate of a profile as server or client, and
the consistency check reads the CRL before every change: starting `openssl` once
per file would not scale to fleets. `cryptography` is imported on first use, so a
command that reads no certificate does not pay for it.

One shortcut (`dershape`): for the few fixed shapes `openssl ca` writes for certwiz, a
small DER reader answers exactly as cryptography would, without importing it; anything
it does not recognise to the byte goes to cryptography.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import TYPE_CHECKING

from .dershape import (
    _AKI,
    _BC,
    _CLIENT_AUTH,
    _EC_POINTS,
    _EKU,
    _KU,
    _SERVER_AUTH,
    _SKI,
    _crl_shape,
    _Shape,
    _shape,
    _signed,
    _tlv,
    _Unusual,
    _verify,
)

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
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise DERError(f"not a DER certificate ({exc})") from None


def is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE (an intermediate the root signed for another system)."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# The shortcut reads a certificate in about 50 us, cryptography in about 17 us once imported
# (about 80 ms): `list` takes the first kinds by the shortcut, then the rest by cryptography.
_KINDS_BY_SHORTCUT = [2000]


def kind_of(pem: bytes) -> str:
    """'ca', 'server', 'client', 'server+client', 'other' (no EKU) or 'unknown' (unreadable)."""
    try:
        der = pem_to_der(pem)
    except DERError:
        return "unknown"
    if _KINDS_BY_SHORTCUT[0] <= 0:
        return _kind_of(der)
    _KINDS_BY_SHORTCUT[0] -= 1
    shape = _shape(der)
    if shape is not None:  # the shapes openssl writes for certwiz: no cryptography
        if shape.is_ca():
            return "ca"
        usages = shape.usages()
        if usages is None:
            return "other"
        return _kind_text(_SERVER_AUTH in usages, _CLIENT_AUTH in usages)
    return _kind_of(der)


def _kind_text(server: bool, client: bool) -> str:
    return "+".join(k for k, found in (("server", server), ("client", client)) if found) or "other"


def _kind_of(der: bytes) -> str:
    """kind_of by cryptography."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    try:  # list classifies thousands: the extensions are parsed once, looked up twice
        extensions = certificate(der).extensions
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
    return _kind_text(EKU.SERVER_AUTH in usages, EKU.CLIENT_AUTH in usages)


def plain_client_problem(pem: bytes) -> str | None:
    """What makes a certificate more than a plain client certificate, or None.

    Plain (what [client_ext] of `ca init` gives): basicConstraints CA:FALSE and keyUsage
    digitalSignature, both critical, extendedKeyUsage clientAuth only, the two key
    identifiers, and no other extension.
    """
    with_shape = _shape_of_pem(pem)
    if with_shape is not None and _plain_client(with_shape):
        return None  # the exact encodings a plain client's extensions have: cryptography agrees
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


def _shape_of_pem(pem: bytes) -> _Shape | None:
    try:
        return _shape(pem_to_der(pem))
    except DERError:
        return None


def _plain_client(shape: _Shape) -> bool:
    """BC CA:FALSE and KU digitalSignature, both critical, EKU clientAuth, SKI, AKI: no more."""
    found = shape.extensions
    return (
        set(found) == {_BC, _KU, _EKU, _SKI, _AKI}
        and found[_BC] == (True, b"\x30\x00")
        and found[_KU] == (True, b"\x03\x02\x07\x80")
        and shape.usages() == [_CLIENT_AUTH]
    )


def cert_validity(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a DER certificate, in UTC."""
    shape = _shape(der)
    if shape is not None:
        return shape.validity
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
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise DERError(f"not a DER CRL ({exc})") from None


def crl_times(der: bytes) -> tuple[datetime, datetime | None]:
    """(thisUpdate, nextUpdate) of a DER CRL; nextUpdate is optional in RFC 5280."""
    shape = _crl_shape(der)
    if shape is not None:
        return shape.times
    parsed = crl(der)
    return parsed.last_update_utc, parsed.next_update_utc


def crl_serials(der: bytes) -> set[int]:
    """The revoked serial numbers a DER CRL lists."""
    shape = _crl_shape(der)
    if shape is not None:
        return shape.serials
    return {entry.serial_number for entry in crl(der)}


def crl_signature_problem(der: bytes, signer_pem: bytes) -> str | None:
    """Why the CRL is not signed by the certificate in SIGNER_PEM, or None if it is."""
    shape, known = _crl_shape(der), _shape_of_pem(signer_pem)
    if shape is not None and known is not None and shape.issuer == known.subject:
        valid = _verify(known.key, shape.algorithm, shape.signature, shape.signed)
        if valid is not None:  # without cryptography.x509 (about 80 ms of every change)
            return None if valid else "bad signature"
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


# OpenSSL (PEM_X509_INFO_read_bio, what nginx's CA files go through) reads a certificate
# in every spelling: BEGIN CERTIFICATE, the old BEGIN X509 CERTIFICATE, and BEGIN TRUSTED
# CERTIFICATE (the certificate followed by its trust settings).
_ANY_CERT = re.compile(
    rb"-----BEGIN ((?:X509 |TRUSTED )?CERTIFICATE)-----(.*?)-----END \1-----", re.S
)


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER of every certificate in a PEM file (a chain), in order, in any spelling
    OpenSSL reads as one (a CA file in the old one still makes nginx trust that CA)."""
    out = []
    for label, body in _ANY_CERT.findall(pem):
        try:
            data = base64.b64decode(b"".join(body.split()))
        except binascii.Error as exc:
            raise DERError(str(exc)) from exc
        if label == b"TRUSTED CERTIFICATE":
            data = _first_element(data)
        out.append(data)
    return out


def _first_element(data: bytes) -> bytes:
    """The first DER element of DATA (a trusted certificate's X509, without its trust)."""
    try:
        _, _, end = _tlv(data, 0, len(data))
    except _Unusual:
        raise DERError("a damaged TRUSTED CERTIFICATE") from None
    return data[:end]


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
    """The DNS names (in lower case) and IP addresses (`names.canonical_ip`: a mapped
    ::ffff:a.b.c.d as a.b.c.d) of the subjectAltName."""
    from cryptography import x509

    from .names import canonical_ip

    try:
        sans = certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    dns = {name.lower() for name in sans.value.get_values_for_type(x509.DNSName)}
    return dns | {canonical_ip(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)}


def same_public_key(cert_pem: bytes, csr_pem: bytes) -> bool:
    """Does the certificate carry the public key of the certification request?"""
    from cryptography import x509

    try:
        cert = certificate(pem_to_der(cert_pem))
        request = x509.load_pem_x509_csr(csr_pem)
        return cert.public_key() == request.public_key()
    except (ValueError, TypeError):
        return False


def key_of_cert(der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a DER certificate, as its bytes stand, read
    without cryptography (what compares the CAs of a home's profiles on every change);
    cryptography's `spki` for a certificate of another shape. Compare these only with
    each other."""
    try:
        _, _, tbs = _signed(der)
        index = 6 if tbs and tbs[0][0] == 0xA0 else 5  # after [0] version, if present
        if len(tbs) > index and tbs[index][0] == 0x30:
            return der[tbs[index - 1][2] : tbs[index][2]]
    except _Unusual:
        pass
    return spki(der)


def spki(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate: its key, comparable as bytes."""
    return spki_of(certificate(der))


def key_of(der: bytes) -> bytes | None:
    """spki(DER), or None where spki raises: `list`-scale comparisons of keys (thousands of
    revoked certificates against one request). An EC key in the form cryptography writes
    (a named curve, an uncompressed point) is that form already: its bytes are taken as
    they are once the point is checked, without cryptography.x509."""
    shape = _shape(der)
    if shape is not None:
        _, _, end = _tlv(shape.key, 0, len(shape.key))
        size = _EC_POINTS.get(shape.key[:end])
        point = shape.key[end + 3 :]
        if size is not None and shape.key[end : end + 4] == bytes([3, size + 1, 0, 4]):
            from cryptography.hazmat.primitives.asymmetric import ec

            curves: dict[int, ec.EllipticCurve] = {65: ec.SECP256R1(), 97: ec.SECP384R1()}
            curve = curves.get(size, ec.SECP521R1())
            try:
                ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
            except ValueError:
                return None  # not a point on the curve: spki raises the same
            return shape.key_info
    try:
        return spki(der)
    except (ValueError, TypeError):
        return None


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
