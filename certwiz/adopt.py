"""Adopting a CA that already exists: a hand-made `openssl ca` directory or an easy-rsa PKI.

The source is only read. The new profile gets the same CA key and certificate, the
same index.txt byte for byte (every serial, status, date and reason), each
certificate under newcerts/SERIAL.pem and the current one of each name under
issued/NAME.crt, a serial above every serial ever issued, and a fresh CRL whose
number is above any earlier one. Like `ca init`, it is built in a scratch
directory and renamed into place, so the profile exists whole or not at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import audit, check, database, der, names, openssl, openssl_args
from .ca import built, new_profile, render_cnf
from .errors import InputError
from .fsutil import write_atomic
from .openssl import Secret
from .profile import Profile
from .render import render_openssl

if TYPE_CHECKING:
    from cryptography import x509

FIELD = "from"
CA_CERT_NAMES = ("ca.crt", "cacert.pem", "ca.pem", "ca-cert.pem", "certs/ca.crt")
CA_KEY_NAMES = ("private/ca.key", "private/cakey.pem", "private/ca.pem", "ca.key")
# Where the certificates of index.txt lie: openssl's newcerts/, CA.pl's certs/, easy-rsa's
# certs_by_serial/ (revoked ones move to revoked/certs_by_serial/), and issued/ by name.
CERT_DIRS = ("newcerts", "certs", "certs_by_serial", "revoked/certs_by_serial", "issued")


@dataclass
class Source:
    """What was found in the directory to adopt."""

    dir: Path
    layout: str  # "easy-rsa" or "openssl"
    ca_cert: Path
    ca_key: Path
    index: Path
    serial: Path | None
    crlnumber: Path | None
    crl: Path | None
    entries: list[database.Entry] = field(default_factory=list)

    def key_encrypted(self) -> bool:
        with open(self.ca_key, "rb") as handle:
            head = handle.read(4096)
        return b"ENCRYPTED" in head


@dataclass(frozen=True)
class Adopted:
    """What `adopt` made, for printing and --json."""

    profile: str
    dir: str
    source: str
    layout: str
    entries: int
    valid: int
    revoked: int
    expired: int
    names: list[str]
    next_serial: str
    crl_number: str


def _first(base: Path, candidates: tuple[str, ...], what: str) -> Path:
    for name in candidates:
        path = base / name
        if path.is_file():
            return path
    raise InputError(FIELD, f"{base} has no {what} (looked for {', '.join(candidates)})")


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def find(directory: Path | str) -> Source:
    """Recognise an easy-rsa PKI (the pki/ folder or its parent) or an openssl ca directory."""
    base = Path(directory).expanduser().absolute()
    if (base / "pki" / "index.txt").is_file():
        base = base / "pki"
    if not base.is_dir():
        raise InputError(FIELD, f"{base} is not a directory")
    index = base / "index.txt"
    if not index.is_file():
        raise InputError(FIELD, f"{base} is not a CA directory: it has no index.txt")
    easy = (base / "certs_by_serial").is_dir() or (base / "openssl-easyrsa.cnf").is_file()
    source = Source(
        dir=base,
        layout="easy-rsa" if easy else "openssl",
        ca_cert=_first(base, CA_CERT_NAMES, "CA certificate"),
        ca_key=_first(base, CA_KEY_NAMES, "CA private key"),
        index=index,
        serial=_optional(base / "serial"),
        crlnumber=_optional(base / "crlnumber"),
        crl=_optional(base / "crl.pem"),
    )
    try:
        source.entries = database.read(index)
    except database.DatabaseError as exc:
        raise InputError(FIELD, f"damaged database: {exc}") from None
    except (OSError, UnicodeError) as exc:
        raise InputError(FIELD, f"cannot read {index}: {exc}") from None
    seen: dict[int, int] = {}
    for number, entry in enumerate(source.entries, 1):
        if entry.serial_int in seen:
            raise InputError(
                FIELD,
                f"damaged database: {index}:{number}: serial {entry.serial} "
                f"repeats line {seen[entry.serial_int]}",
            )
        seen[entry.serial_int] = number
    return source


def _load_cert(path: Path) -> x509.Certificate:
    from cryptography import x509

    data = path.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InputError(FIELD, f"{path}: not a certificate ({exc})") from None


def _public_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_ca(source: Source, passphrase: Secret | None) -> x509.Certificate:
    """The CA certificate is a CA and the key is its key (openssl reads the key)."""
    from cryptography import x509

    cert = _load_cert(source.ca_cert)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InputError(FIELD, f"{source.ca_cert}: not a CA certificate (no CA:TRUE)")
    if source.key_encrypted() and passphrase is None:
        raise InputError(
            "ca-passphrase-file",
            f"{source.ca_key} is encrypted: give --ca-passphrase-file FILE "
            "or set CERTWIZ_CA_PASSPHRASE",
        )
    args: list[openssl.Arg] = ["pkey", "-in", source.ca_key, "-pubout"]
    if passphrase is not None:
        args += ["-passin", passphrase]
    try:
        public = openssl.run(args).encode()
    except openssl.OpenSSLError as exc:
        raise InputError(FIELD, f"{source.ca_key}: cannot read the key ({exc.detail})") from None
    if public.strip() != _public_pem(cert).strip():
        raise InputError(FIELD, f"{source.ca_key} does not match {source.ca_cert}")
    return cert


def _certificates(source: Source, ca: x509.Certificate) -> dict[int, bytes]:
    """Every certificate the source holds that the CA signed, by serial, as PEM."""
    from cryptography.hazmat.primitives import serialization

    found: dict[int, bytes] = {}
    for sub in CERT_DIRS:
        folder = source.dir / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                cert = _load_cert(path)
            except InputError:
                continue  # not a certificate (e.g. a README): not ours to judge
            if cert.issuer != ca.subject or cert.serial_number in found:
                continue
            if not der.issued_by(cert, ca):
                continue
            found[cert.serial_number] = cert.public_bytes(serialization.Encoding.PEM)
    return found


def _hex(value: int) -> str:
    text = f"{value:X}"
    return "0" * (len(text) % 2) + text


def _number_in(path: Path | None) -> int:
    """The hex number in serial/crlnumber, 0 when absent; a bad file is refused."""
    if path is None:
        return 0
    try:
        return check._hex_file(path)
    except check.ProfileCorrupt as exc:
        raise InputError(FIELD, f"damaged database: {exc}") from None


def _crl_number(path: Path | None, ca: x509.Certificate) -> int:
    """The number of the source's last CRL (0 without one): the next must be higher."""
    if path is None:
        return 0
    from cryptography import x509

    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
        if crl.issuer != ca.subject:
            return 0
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except (ValueError, x509.ExtensionNotFound):
        return 0


def _current_by_name(source: Source, certs: dict[int, bytes]) -> dict[str, database.Entry]:
    """The newest valid certificate of each name certwiz can use as a file name."""
    current: dict[str, database.Entry] = {}
    for entry in source.entries:
        name = entry.common_name
        if name is None or entry.status() != "valid" or entry.serial_int not in certs:
            continue
        if not names.names_files(name):
            continue  # kept in the database and listed, but not a file name
        current[name] = entry
    return current


def _copy_leaf_key(source: Source, name: str, cert_pem: bytes, target: Path) -> bool:
    """easy-rsa keeps private/NAME.key: copy it when it is this certificate's key."""
    key = source.dir / "private" / f"{name}.key"
    if not key.is_file() or key.is_symlink():
        return False
    data = key.read_bytes()
    if b"ENCRYPTED" not in data[:4096]:
        try:
            public = openssl.run(["pkey", "-in", key, "-pubout"]).encode()
        except openssl.OpenSSLError:
            return False
        from cryptography import x509

        if public.strip() != _public_pem(x509.load_pem_x509_certificate(cert_pem)).strip():
            return False
    write_atomic(target, data, 0o600)
    return True


def adopt(
    name: str,
    source_dir: Path | str,
    home: Path | str | None = None,
    *,
    passphrase: Secret | None = None,
    crl_days: int = 90,
) -> Adopted:
    """Make profile NAME from the CA in `source_dir`; the source is never written."""
    names.profile_name(name)
    names.days(crl_days, "crl-days")
    profile = new_profile(name, home)
    source = find(source_dir)
    ca = _check_ca(source, passphrase)
    certs = _certificates(source, ca)
    for number, entry in enumerate(source.entries, 1):
        if entry.flag == "V" and entry.serial_int not in certs:
            raise InputError(
                FIELD,
                f"damaged database: {source.index}:{number}: no certificate with serial "
                f"{entry.serial} signed by {source.ca_cert} in {source.dir}",
            )
    highest = max((e.serial_int for e in source.entries), default=0)
    next_serial = max(_number_in(source.serial), highest + 1, 1)
    crl_number = max(_number_in(source.crlnumber), _crl_number(source.crl, ca) + 1, 1)
    from cryptography.hazmat.primitives.asymmetric import rsa

    is_rsa = isinstance(ca.public_key(), rsa.RSAPublicKey)
    with built(profile) as work:  # renamed into place once whole
        for sub in ("newcerts", "issued", "reqs"):
            (work / sub).mkdir(mode=0o755)
        (work / "private").mkdir(mode=0o700)
        key_type = "rsa:2048" if is_rsa else "ec:P-256"  # only chooses server keyUsage by hand
        write_atomic(work / "openssl.cnf", render_cnf(profile, work, key_type, crl_days))
        write_atomic(work / "index.txt", source.index.read_bytes())
        write_atomic(work / "index.txt.attr", render_openssl("index.txt.attr.j2"))
        write_atomic(work / "serial", _hex(next_serial) + "\n")
        write_atomic(work / "crlnumber", _hex(crl_number) + "\n")
        write_atomic(work / ".lock", "", mode=0o600)
        write_atomic(work / "ca.crt", source.ca_cert.read_bytes(), 0o644)
        write_atomic(work / "private" / "ca.key", source.ca_key.read_bytes(), 0o600)
        for serial, pem in certs.items():
            write_atomic(work / "newcerts" / f"{_hex(serial)}.pem", pem, 0o644)
        current = _current_by_name(source, certs)
        keys = 0
        for leaf, entry in current.items():
            pem = certs[entry.serial_int]
            write_atomic(work / "issued" / f"{leaf}.crt", pem, 0o644)
            keys += _copy_leaf_key(source, leaf, pem, work / "private" / f"{leaf}.key")
        openssl.run(openssl_args.gencrl(work / "openssl.cnf", work / "crl.pem", passphrase))
        os.chmod(work / "crl.pem", 0o644)
        scratch = Profile(work.name, work.parent)
        report = check.verify_profile(scratch)
        if report.problems:
            raise InputError(FIELD, f"the adopted database does not add up: {report.problems[0]}")
        statuses = [e.status() for e in source.entries]
        done = Adopted(
            profile=profile.name,
            dir=str(profile.dir),
            source=str(source.dir),
            layout=source.layout,
            entries=len(source.entries),
            valid=statuses.count("valid"),
            revoked=statuses.count("revoked"),
            expired=statuses.count("expired"),
            names=sorted(current),
            next_serial=_hex(next_serial),
            crl_number=_hex(crl_number),
        )
        record = audit.new_record(profile.name, "ca adopt", sorted(current))
        record.update(
            source=str(source.dir),
            layout=source.layout,
            entries=done.entries,
            leaf_keys=keys,
            key_encrypted=passphrase is not None,
        )
        audit.append(work / audit.AUDIT_FILE, record)
        write_atomic(work / "openssl.cnf", render_cnf(profile, profile.dir, key_type, crl_days))
    return done
