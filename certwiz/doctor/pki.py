"""Certificates, keys and CRLs as `doctor` reads them (with `cryptography`).

Imported only by the doctor (and probe): most commands never load cryptography.
Every reader returns what it could parse and says why it could not, so a
finding can name the file instead of a traceback.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..der import pem_certificates

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


class Unreadable(Exception):
    """A file doctor needs to read is missing, unreadable or not what it should be."""


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Unreadable(f"{path} does not exist") from None
    except PermissionError:
        raise Unreadable(f"{path} is not readable by this user") from None
    except IsADirectoryError:
        raise Unreadable(f"{path} is a directory") from None


def certificates(path: Path) -> list[x509.Certificate]:
    data = _bytes(path)
    try:
        with warnings.catch_warnings():  # public bundles hold old certificates
            warnings.simplefilter("ignore")
            # every spelling nginx (OpenSSL) reads, TRUSTED CERTIFICATE too (der's reader)
            found = [x509.load_der_x509_certificate(d) for d in pem_certificates(data)]
    except ValueError:
        found = []
    if not found:
        raise Unreadable(f"{path} holds no PEM certificate")
    return found


def crls(path: Path) -> list[x509.CertificateRevocationList]:
    data = _bytes(path)
    found = []
    for block in _PEM_CRL.findall(data):
        try:
            found.append(x509.load_pem_x509_crl(block))
        except ValueError:
            raise Unreadable(f"{path} holds a damaged CRL") from None
    if not found:
        raise Unreadable(f"{path} holds no PEM CRL")
    return found


def private_key(path: Path) -> object | None:
    """The key, or None when it is encrypted (doctor never asks for a passphrase)."""
    data = _bytes(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return None
    except ValueError:
        raise Unreadable(f"{path} holds no readable PEM private key") from None


def public_bytes(key: object) -> bytes:
    data: bytes = key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def der_crl(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def now() -> datetime:
    return datetime.now(UTC)


def not_after(cert: x509.Certificate) -> datetime:
    return cert.not_valid_after_utc


def signed_by(
    item: x509.Certificate | x509.CertificateRevocationList, ca: x509.Certificate
) -> bool:
    """Was ITEM (a certificate or a CRL) signed by CA's key?"""
    if item.issuer != ca.subject:
        return False
    if isinstance(item, x509.CertificateRevocationList):
        try:
            return item.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    key = ca.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                item.signature,
                item.tbs_certificate_bytes,
                padding.PKCS1v15(),
                item.signature_hash_algorithm,  # type: ignore[arg-type]
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(
                item.signature,
                item.tbs_certificate_bytes,
                ec.ECDSA(item.signature_hash_algorithm),  # type: ignore[arg-type]
            )
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(item.signature, item.tbs_certificate_bytes)
        else:
            return False
    except Exception:  # cryptography raises InvalidSignature and friends
        return False
    return True


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def revoked_serials(crl: x509.CertificateRevocationList) -> set[int]:
    return {entry.serial_number for entry in crl}


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def usages(cert: x509.Certificate) -> set[str]:
    """'server' and/or 'client' from the extendedKeyUsage (empty without one)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return set()
    out = set()
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        out.add("server")
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku:
        out.add("client")
    return out


def subject_text(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


@dataclass(frozen=True)
class Names:
    dns: list[str]
    ips: list[str]


def san_names(cert: x509.Certificate) -> Names | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    return Names(
        [n.lower() for n in san.get_values_for_type(x509.DNSName)],
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
    )


def covers(names: Names, host: str) -> bool:
    """Does a SAN list cover HOST (RFC 6125: a wildcard covers one left-most label)?"""
    import ipaddress

    try:
        return str(ipaddress.ip_address(host)) in names.ips
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in names.dns:
        if name == host:
            return True
        if name.startswith("*.") and host.startswith("*."):
            continue
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False
