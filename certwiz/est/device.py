"""What the device holds: its PKCS#12 bundle read in process, a new key and CSR made by
openssl (the key encrypted on disk, its passphrase only through a pipe), and the new
bundle written with the same password and format.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import der, openssl, p12
from .. import openssl_args as args
from ..errors import CertwizError, InputError
from ..fsutil import read_bounded
from ..openssl import Secret

if TYPE_CHECKING:
    from cryptography import x509


@dataclass
class Bundle:
    """What a device's p12 holds, read in process (the key never leaves memory)."""

    path: Path
    password: Secret | None
    p12_format: str
    key: Any
    cert: x509.Certificate
    friendly_name: str
    chain: list[x509.Certificate] = field(default_factory=list)  # its CA certificates

    @property
    def serial(self) -> str:
        return serial_of(self.cert)


def read_bundle(path: Path, password: Secret | None) -> Bundle:
    from cryptography.hazmat.primitives.serialization import pkcs12

    if path.is_symlink():
        raise InputError("p12", f"{path} is a symlink: give the bundle itself (it is replaced)")
    data = read_bounded(path, "p12", p12.MAX_BYTES, ": not a bundle")
    fmt = p12.format_of(path)
    try:
        loaded = pkcs12.load_pkcs12(data, password.text.encode() if password else None)
    except ValueError:
        if fmt is None:
            raise InputError("p12", f"{path} is not a PKCS#12 bundle") from None
        what = "wrong password for" if password else "a password protects"
        raise InputError(
            "p12-passphrase-file",
            f"{what} {path}; give -u for an empty password, or --p12-passphrase-file FILE "
            "or CERTWIZ_P12_PASSPHRASE",
        ) from None
    if loaded.key is None or loaded.cert is None:
        raise InputError("p12", f"{path} holds no key and certificate of its own")
    cert = loaded.cert.certificate
    if der.spki_of(cert) != der.spki_of(loaded.key):
        raise InputError("p12", f"{path}: its key does not match its certificate")
    if fmt is None:
        raise InputError("p12", f"{path} is neither compat nor modern PKCS#12 (re-issue it)")
    name = loaded.cert.friendly_name
    friendly = name.decode(errors="replace") if name else _cn(cert) or "certwiz"
    chain = [extra.certificate for extra in loaded.additional_certs]
    return Bundle(path, password, fmt, loaded.key, cert, friendly, chain)


def _cn(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[-1].value) if found else None


def serial_of(cert: x509.Certificate) -> str:
    """Upper-case hex of even length, as openssl ca writes it in index.txt."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return der.cert_serial(cert.public_bytes(Encoding.DER))


def write_private(path: Path, data: bytes) -> None:
    """A new file (never an existing one, never through a link) readable by us alone."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _rdns(name: x509.Name) -> list[list[tuple[str, str]]]:
    rdns = []
    for rdn in name.rdns:
        pairs = []
        for attribute in rdn:
            if not isinstance(attribute.value, str):
                raise InputError("p12", "the certificate's subject holds a non-text attribute")
            pairs.append((attribute.oid.dotted_string, attribute.value))
        rdns.append(pairs)
    return rdns


def new_key_and_csr(
    work: Path, key_type: str, subject: x509.Name, passphrase: Secret | None = None
) -> tuple[Path, Secret, bytes, bytes]:
    """WORK/new.key (encrypted under PASSPHRASE, else a random one), the CSR's DER, the
    key's SPKI."""
    from cryptography import x509

    from .. import render

    key, csr, cnf = work / "new.key", work / "req.csr", work / "req.cnf"
    passphrase = passphrase or Secret(secrets.token_urlsafe(32))
    cnf.write_text(render.render_openssl("device_req.cnf.j2"))
    openssl.run(args.keygen(key_type, key, passphrase))
    subj = args.subject_of(_rdns(subject))
    openssl.run(args.request(cnf, key, "", csr, passphrase, subj=subj))
    request = x509.load_pem_x509_csr(csr.read_bytes())
    if request.subject != subject:
        raise CertwizError(
            f"openssl made a request for {request.subject.rfc4514_string()!r}, "
            f"not {subject.rfc4514_string()!r}"
        )
    from cryptography.hazmat.primitives import serialization

    return key, passphrase, request.public_bytes(serialization.Encoding.DER), der.spki_of(request)


def pem(certs: list[x509.Certificate]) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def bundle_file(
    work: Path, key: Path, key_passphrase: Secret, leaf: x509.Certificate,
    issuers: list[x509.Certificate], name: str, fmt: str, password: Secret | None,
) -> Path:  # fmt: skip
    """WORK/new.p12: the new key, its certificate LEAF and the ISSUERS, FMT, PASSWORD
    (None: empty)."""
    cert, chain, out = work / "leaf.pem", work / "chain.pem", work / "new.p12"
    cert.write_bytes(pem([leaf]))
    chain.write_bytes(pem(issuers))
    p12.export(key=key, cert=cert, chain=chain, name=name, out=out, p12_format=fmt,
               password=password, key_passphrase=key_passphrase)  # fmt: skip
    return out
