"""PKCS#12 bundles: the one place that builds `openssl pkcs12 -export`, and `p12 inspect`.

Which bundle a client takes (measured on Debian 12 with curl 7.88, requests-pkcs12,
cryptography, OpenJDK 17, NSS 3.87 and Chromium; macOS and Windows from their public
issue trackers):

- A bundle without a MAC is refused by NSS (Chromium, Firefox on Linux).
- An unencrypted key bag is skipped by Java without a word ("0 entries").
- AES-256/PBES2 or a SHA-256 MAC is refused by macOS Keychain and older Windows.
- RC2-40 needs OpenSSL 3's legacy provider (curl and the openssl command fail).

So every bundle certwiz makes keeps its MAC and its encrypted key bag; "no password"
(-u) is the empty password, which every client above accepts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import der, durations, openssl
from .errors import InputError, OpenSSLError
from .fsutil import read_bounded
from .openssl import Secret

# compat: 3DES + SHA-1 MAC, read by macOS, Windows, Android, old Java, and by OpenSSL 3
# without its legacy provider. modern: OpenSSL 3's default, AES-256 + SHA-256 MAC.
FORMATS: dict[str, tuple[str, ...]] = {
    "compat": ("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
    "modern": ("-certpbe", "AES-256-CBC", "-keypbe", "AES-256-CBC", "-macalg", "sha256"),
}
DEFAULT_FORMAT = "compat"
# PBE algorithm OIDs (DER bodies) as they appear, unencrypted, in a PKCS#12 file.
_PBE_3DES = bytes.fromhex("2a864886f70d010c0103")  # pbeWithSHAAnd3-KeyTripleDES-CBC
_PBES2 = bytes.fromhex("2a864886f70d01050d")  # PBES2 (AES-256-CBC in OpenSSL 3's default)
MAX_BYTES = 1 << 20  # a client bundle is a few KiB; more is not one


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise InputError("p12-format", f"{value!r} is not one of {', '.join(FORMATS)}")
    return value


def format_of(path: Path) -> str | None:
    """compat or modern, read from the bundle's PBE algorithm identifiers (no password
    needed: they are outside the encrypted parts); None for a bundle with neither."""
    data = path.read_bytes()
    if _PBES2 in data:
        return "modern"
    if _PBE_3DES in data:
        return "compat"
    return None


def export_args(
    *,
    key: Path,
    cert: Path,
    chain: Path,
    name: str,
    out: Path,
    p12_format: str = DEFAULT_FORMAT,
    password: Secret | None = None,
    key_passphrase: Secret | None = None,
) -> list[openssl.Arg]:
    """`openssl pkcs12 -export` arguments for KEY + CERT + CHAIN into OUT.

    `password` None means the empty password: the MAC and the encrypted key bag
    stay, so Java and NSS import it too. `key_passphrase` opens an encrypted KEY.
    """
    args: list[openssl.Arg] = [
        "pkcs12",
        "-export",
        "-inkey",
        key,
        "-in",
        cert,
        "-certfile",
        chain,
        "-name",
        name,
        "-out",
        out,
        *FORMATS[check_format(p12_format)],
    ]
    if key_passphrase is not None:
        args += ["-passin", key_passphrase]
    return [*args, "-passout", password if password is not None else Secret("")]


def export(**kwargs: Any) -> None:
    """Run `export_args(**kwargs)`: the bundle is written 0600 (openssl runs under umask 077)."""
    openssl.run(export_args(**kwargs))


# ---- inspection ---------------------------------------------------------------------

# The clients `inspect` judges, and whether the verdict was measured here or is documented.
CLIENTS: dict[str, tuple[str, bool]] = {
    "curl": ("curl --cert-type P12 (OpenSSL 3)", True),
    "openssl": ("openssl s_client / OpenSSL 3 tools", True),
    "python": ("Python: requests-pkcs12, cryptography (httpx via PEM)", True),
    "java": ("Java 17 KeyStore PKCS12, keytool", True),
    "nss": ("NSS: Chromium and Firefox on Linux (pk12util)", True),
    "macos": ("macOS Keychain", False),
    "windows": ("Windows (Server 2016 and older, older Android)", False),
}
EVERY_CLIENT = tuple(CLIENTS)
_LEGACY = re.compile(r"RC2|RC4|40Bit|AndDES-CBC", re.I)  # single DES, RC2, RC4
_MODERN = re.compile(r"PBES2|AES", re.I)


@dataclass
class Certificate:
    subject: str
    issuer: str
    not_after: str
    serial: str
    is_ca: bool


@dataclass
class Problem:
    """One thing wrong with a bundle: what, which clients it breaks, how to fix it."""

    problem: str
    breaks: list[str]
    fix: str


@dataclass
class Report:
    file: str
    password: str  # "empty" or "given": never the password itself
    mac: str | None  # e.g. "sha1", None when the bundle has no MAC
    mac_iterations: int | None
    certificate_encryption: str | None  # None: certificates stored in the clear
    key_encryption: str | None  # None: no key, or a key bag in the clear
    key_present: bool
    key_matches: bool | None  # None without a key or a leaf
    chain_complete: bool
    certificates: list[Certificate] = field(default_factory=list)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _Layout:
    """What `openssl pkcs12 -info` says about the containers (no secrets in it)."""

    mac: str | None = None
    mac_iterations: int | None = None
    cert_encryption: set[str] = field(default_factory=set)
    clear_certs: int = 0
    key_encryption: str | None = None
    clear_key: bool = False


def _layout(info: str) -> _Layout:
    layout = _Layout()
    container: str | None = None  # the encryption of the current PKCS7 container
    for line in info.splitlines():
        if m := re.match(r"MAC: (\S+), Iteration (\d+)", line):
            layout.mac, layout.mac_iterations = m.group(1), int(m.group(2))
        elif m := re.match(r"PKCS7 Encrypted data: (.+)", line):
            container = m.group(1).strip()
        elif line.startswith("PKCS7 Data"):
            container = None
        elif line.startswith("Certificate bag"):
            if container is None:
                layout.clear_certs += 1
            else:
                layout.cert_encryption.add(container)
        elif m := re.match(r"Shrouded Keybag: (.+)", line):
            layout.key_encryption = m.group(1).strip()
        elif line.startswith("Key bag"):
            layout.clear_key = True
    return layout


def _read_info(path: Path, password: Secret) -> tuple[_Layout, bool]:
    """The layout, and whether it took OpenSSL 3's legacy provider to read it."""
    base: list[openssl.Arg] = ["pkcs12", "-in", path, "-info", "-nokeys", "-noout"]
    try:
        return _layout(openssl.run_both([*base, "-passin", password])[1]), False
    except OpenSSLError as exc:
        if "Mac verify error" in exc.stderr:
            what = "wrong password for" if password.text else "a password protects"
            raise InputError(
                "password",
                f"{what} {path} (MAC verification failed); give it with "
                "--p12-passphrase-file FILE or CERTWIZ_P12_PASSPHRASE",
            ) from None
        if "unsupported" not in exc.stderr:
            raise InputError("file", f"{path} is not a PKCS#12 bundle ({exc.detail})") from None
    try:
        return _layout(openssl.run_both([*base, "-legacy", "-passin", password])[1]), True
    except OpenSSLError as exc:
        raise InputError("file", f"{path}: openssl cannot read it ({exc.detail})") from None


def _name(name: Any) -> str:
    return str(name.rfc4514_string())


def _describe(cert: Any) -> Certificate:
    from cryptography import x509

    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return Certificate(
        _name(cert.subject),
        _name(cert.issuer),
        durations.stamp(cert.not_valid_after_utc),
        f"{cert.serial_number:X}",
        is_ca,
    )


def _leaf(certs: list[Any], key: Any) -> Any | None:
    """The certificate of the key, else the one that issued no other in the bundle."""
    if key is not None:
        mine = der.spki_of(key)
        for cert in certs:
            if der.spki_of(cert) == mine:
                return cert
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    ends = [c for c in certs if c.subject not in issuers or c.issuer == c.subject]
    non_ca = [c for c in ends if not _describe(c).is_ca]
    return (non_ca or ends or [None])[0]


def _missing_issuer(leaf: Any, certs: list[Any]) -> str | None:
    """The issuer the bundle lacks on the way from LEAF to a self-signed root, or None."""
    cert, seen = leaf, 0
    while cert.issuer != cert.subject and seen <= len(certs):
        parent = next(
            (c for c in certs if c.subject == cert.issuer and der.issued_by(cert, c)), None
        )
        if parent is None:
            return _name(cert.issuer)
        cert, seen = parent, seen + 1
    return None


def inspect(path: Path, password: Secret | None = None) -> Report:
    """What is inside a bundle and which clients take it; `password` None = the empty one."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = read_bounded(path, "file", MAX_BYTES, ": not a client bundle")
    secret = password if password is not None else Secret("")
    layout, legacy = _read_info(path, secret)
    try:
        bundle = pkcs12.load_pkcs12(data, secret.text.encode() if secret.text else None)
    except ValueError as exc:
        raise InputError("file", f"{path} cannot be read as PKCS#12 ({exc})") from None
    certs = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
    certs += [c.certificate for c in bundle.additional_certs]
    leaf = _leaf(certs, bundle.key)
    key_matches = (
        None if bundle.key is None or leaf is None else der.spki_of(leaf) == der.spki_of(bundle.key)
    )
    missing = _missing_issuer(leaf, certs) if leaf is not None else None
    report = Report(
        file=str(path),
        password="given" if secret.text else "empty",
        mac=layout.mac,
        mac_iterations=layout.mac_iterations,
        certificate_encryption=", ".join(sorted(layout.cert_encryption)) or None,
        key_encryption=layout.key_encryption,
        key_present=bundle.key is not None,
        key_matches=key_matches,
        chain_complete=leaf is not None and missing is None,
        certificates=[_describe(c) for c in ([leaf] if leaf is not None else [])]
        + [_describe(c) for c in certs if c is not leaf],
    )
    report.problems = _problems(report, layout, legacy, leaf, missing)
    report.clients = _verdicts(report)
    return report


REBUNDLE = "certwiz client rebundle -p PROFILE -n NAME"


def _problems(
    report: Report, layout: _Layout, legacy: bool, leaf: Any, missing: str | None
) -> list[Problem]:
    found: list[Problem] = []

    def add(problem: str, breaks: tuple[str, ...] | list[str], fix: str) -> None:
        found.append(Problem(problem, list(breaks), fix))

    if leaf is None:
        add("no certificate in the bundle", EVERY_CLIENT, REBUNDLE)
    if not report.key_present:
        add("no private key in the bundle: nothing can prove the identity", EVERY_CLIENT, REBUNDLE)
    elif report.key_matches is False:
        add(
            "the private key does not match the certificate: the TLS handshake fails",
            EVERY_CLIENT,
            f"{REBUNDLE} (from the key and certificate in the profile)",
        )
    if layout.mac is None:
        add(
            "no MAC: NSS refuses the bundle (SEC_ERROR_BAD_DER), so Chromium and Firefox "
            "cannot import it",
            ["nss"],
            f"{REBUNDLE} (certwiz bundles always carry a MAC, also with -u)",
        )
    if layout.clear_key:
        add(
            "the key bag is not encrypted: Java loads 0 entries without an error and "
            "sends no certificate",
            ["java"],
            f"{REBUNDLE} (an empty password still encrypts the key bag)",
        )
    algorithms = [a for a in (layout.key_encryption, *layout.cert_encryption) if a]
    if legacy or any(_LEGACY.search(a) for a in algorithms):
        add(
            "legacy encryption (RC2/RC4/DES): OpenSSL 3 reads it only with its legacy "
            "provider, so curl and openssl fail",
            ["curl", "openssl"],
            f"{REBUNDLE} --p12-format compat",
        )
    if any(_MODERN.search(a) for a in algorithms) or (
        layout.mac is not None and layout.mac.lower() not in ("sha1",)
    ):
        add(
            "AES/PBES2 encryption or a SHA-2 MAC: macOS Keychain and older Windows refuse "
            'the bundle ("MAC verification failed")',
            ["macos", "windows"],
            f"{REBUNDLE} --p12-format compat",
        )
    if leaf is not None and missing is not None:
        add(
            f"the chain is incomplete: the issuer {missing!r} is not in the bundle, so a "
            "server that does not hold it refuses the certificate",
            [],
            f"{REBUNDLE} (adds the profile's ca.crt)",
        )
    if leaf is not None and leaf.not_valid_after_utc < datetime.now(UTC):
        add(
            f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
            EVERY_CLIENT,
            "issue a new certificate (revoke, then client issue)",
        )
    return found


_HOW = {
    "curl": ("--cert-type P12 --cert FILE:", "--cert-type P12 --cert FILE:PASSWORD"),
    "openssl": ("-passin with an empty line", "-passin fd:N / file:PATH"),
    "python": ("password '' (or None)", "the password"),
    "java": ("new char[0] (not null: with null no certificate is sent)", "the password"),
    "nss": ("pk12util -W '' ; browsers: leave the password field empty", "the password"),
    "macos": ("leave the password field empty", "the password"),
    "windows": ("leave the password field empty", "the password"),
}


def _verdicts(report: Report) -> dict[str, dict[str, Any]]:
    verdicts = {}
    for client, (label, tested) in CLIENTS.items():
        broken = [p.problem for p in report.problems if client in p.breaks]
        empty, given = _HOW[client]
        verdicts[client] = {
            "client": label,
            "accepts": not broken,
            "source": "tested" if tested else "documented",
            "password": empty if report.password == "empty" else given,
        }
    return verdicts
