"""`certwiz probe`: prove from the outside that a live endpoint refuses what it must.

It connects to the one endpoint it is given (URL, or --resolve's address) with no
client certificate, a fresh valid one, one from a throwaway foreign CA that has
the same subject as the profile's CA, an expired one and a revoked one, and
reads the answer (a TLS alert or an HTTP status). The profile's probe
certificates are named certwiz-probe-..., live an hour at most, are revoked
when the probe ends and are recorded in the audit log like every change. Their
keys live only in a private temporary directory that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from . import crl, database, durations, issue, names, openssl
from .errors import CertwizError, InputError
from .fsutil import install
from .openssl import Secret
from .profile import Profile
from .transaction import Transaction, transaction

TIMEOUT = 10.0
PROBE_PREFIX = "certwiz-probe-"
PROBE_LIFETIME = timedelta(hours=1)
# What a server answers when it refuses a client certificate after the handshake:
# nginx 400 (its 495/496 when error_page shows them), or an explicit 403/421.
REFUSED_STATUS = frozenset({400, 403, 421, 495, 496})
PASS, FAIL, FAIL_OPEN, SKIP = "PASS", "FAIL", "FAIL-OPEN", "SKIP"
REFUSED, ACCEPTED = "refused", "accepted"


class ProbeError(CertwizError):
    """The endpoint could not be reached or spoke no TLS: nothing was concluded."""


@dataclass(frozen=True)
class Target:
    """Where to connect (address, port) and what to ask for (host, path)."""

    url: str
    host: str
    port: int
    path: str
    address: str

    @property
    def connect_arg(self) -> str:
        """ADDRESS:PORT for `openssl s_client -connect` (IPv6 in brackets)."""
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


def target(url: str, resolve: str | None = None) -> Target:
    """Check URL (https only) and --resolve HOST:PORT:ADDR like curl's; InputError otherwise."""
    if any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in url):
        raise InputError("url", f"{url!r} must be an https:// URL without spaces")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError("url", f"{url!r} must be an https:// URL, e.g. https://app.example.com/")
    if "@" in parts.netloc:
        raise InputError("url", f"{url!r}: credentials in the URL are not supported")
    try:
        port = parts.port or 443
    except ValueError:
        raise InputError("url", f"{url!r}: the port must be a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise InputError("url", f"{url!r}: the port must be a number from 1 to 65535")
    host = parts.hostname
    _check_host(host, "url")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    address = host
    if resolve is not None:
        r_host, sep1, rest = resolve.partition(":")
        r_port, sep2, r_addr = rest.partition(":")
        r_addr = r_addr.strip("[]")
        if not (sep1 and sep2) or not r_port.isdigit():
            raise InputError("resolve", f"{resolve!r} must be HOST:PORT:ADDRESS, like curl's")
        if r_host.lower() != host.lower() or int(r_port) != port:
            raise InputError(
                "resolve", f"{resolve!r} does not name the URL's host and port ({host}:{port})"
            )
        try:
            ipaddress.ip_address(r_addr)
        except ValueError:
            raise InputError("resolve", f"{resolve!r}: {r_addr!r} is not an IP address") from None
        address = r_addr
    return Target(url, host, port, path, address)


def _check_host(host: str, field: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        names.dns_name(host, field)


@dataclass(frozen=True)
class Observation:
    """What one connection showed: refused or accepted, and how (alert or status)."""

    outcome: str
    text: str


def _context(server_ca: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _alert(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or str(exc)
    return f"TLS alert: {str(reason).lower().replace('_', ' ')}"


def connect(
    where: Target, server_ca: Path, cert: Path | None = None, key: Path | None = None
) -> Observation:
    """One HTTPS request (GET path, Connection: close) over a fresh TLS connection."""
    context = _context(server_ca, cert, key)
    try:
        raw = socket.create_connection((where.address, where.port), timeout=TIMEOUT)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {where.connect_arg}: {exc.strerror or exc}") from None
    try:
        with context.wrap_socket(raw, server_hostname=where.host) as tls:
            request = (
                f"GET {where.path} HTTP/1.1\r\nHost: {where.host}\r\n"
                "User-Agent: certwiz-probe\r\nConnection: close\r\n\r\n"
            )
            tls.sendall(request.encode())
            head = b""
            while b"\r\n" not in head and len(head) < 8192:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
    except ssl.SSLCertVerificationError as exc:
        raise ProbeError(
            f"the server certificate of {where.host} does not verify against the profile's "
            f"CA ({exc.verify_message}); give --server-ca FILE"
        ) from None
    except ssl.SSLError as exc:
        return Observation(REFUSED, _alert(exc))
    except (ConnectionResetError, BrokenPipeError):
        return Observation(REFUSED, "connection reset")
    except TimeoutError:
        raise ProbeError(f"{where.connect_arg} did not answer in {TIMEOUT:g}s") from None
    finally:
        raw.close()
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = line.split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return Observation(REFUSED, "connection closed without an HTTP answer")
    status = int(fields[1])
    return Observation(REFUSED if status in REFUSED_STATUS else ACCEPTED, f"HTTP {status}")


def advertised_cas(where: Target, server_ca: Path) -> list[str]:
    """The CA names the server asks client certificates from (its trust list), RFC 2253."""
    out = openssl.run(
        [
            "s_client",
            "-connect",
            where.connect_arg,
            "-servername",
            where.host,
            "-CAfile",
            server_ca,
            "-nameopt",
            "RFC2253",
        ]
    )
    lines = out.splitlines()
    try:
        start = lines.index("Acceptable client certificate CA names") + 1
    except ValueError:
        return []
    found = []
    for line in lines[start:]:
        if line.startswith(("Client Certificate Types", "Requested Signature", "---")):
            break
        found.append(line.strip())
    return found


# ---- the cases ----------------------------------------------------------------------


@dataclass
class Case:
    case: str
    expected: str
    observed: str = ""
    result: str = ""
    note: str = ""


@dataclass
class ProbeReport:
    profile: str
    url: str
    address: str
    reloaded: bool
    cases: list[Case] = field(default_factory=list)
    probe_names: list[str] = field(default_factory=list)
    revoked_at: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if any(c.result in (FAIL, FAIL_OPEN) for c in self.cases) else 0

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data

    def table(self) -> str:
        rows = [("CASE", "EXPECTED", "OBSERVED", "RESULT")]
        rows += [(c.case, c.expected, c.observed, c.result) for c in self.cases]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        lines += [f"{c.case}: {c.note}" for c in self.cases if c.note]
        return "\n".join(lines)


def judge(case: Case, seen: Observation) -> Case:
    case.observed = seen.text
    if seen.outcome == case.expected:
        case.result = PASS
    elif case.expected == ACCEPTED:
        case.result = FAIL
    else:
        case.result = FAIL_OPEN
    return case


def probe_name(kind: str, stamp: str) -> str:
    return f"{PROBE_PREFIX}{stamp}-{kind}"


def new_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A 0700 directory for the probe keys, removed whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="certwiz-probe-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


Issuer = Callable[[str, datetime, datetime], tuple[Path, Path]]


def foreign_client(
    issuer_of: Path, work: Path, name: str, *, same_subject: bool = True
) -> tuple[Path, Path]:
    """A client certificate from a throwaway CA whose subject copies the profile CA's.

    A server that checks only issuer and subject names would take it; one that
    verifies the signature refuses it. With SAME_SUBJECT False the throwaway CA has
    a name of its own ("certwiz probe unknown CA"): that is what `optional_no_ca`
    lets through. The throwaway CA key never leaves memory.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    genuine = x509.load_pem_x509_certificate(issuer_of.read_bytes())
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(  # the same names as the profile's CA, or a name of its own
            genuine.issuer
            if same_subject
            else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certwiz probe unknown CA")])
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + PROBE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    label = "foreign" if same_subject else "unknown-ca"
    cert_path, key_path = work / f"{label}.crt", work / f"{label}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# ---- the run ------------------------------------------------------------------------


@dataclass
class Probes:
    """The profile's probe certificates: name -> (certificate, key, serial)."""

    stamp: str
    made: dict[str, tuple[Path, Path, str]] = field(default_factory=dict)
    revoked_at: datetime | None = None


def issue_probes(
    profile: Profile,
    work: Path,
    probes: Probes,
    ca_passphrase: Secret | None,
    lock_timeout: float | None = None,
) -> None:
    """Valid, expired and revoked probe certificates in ONE audited change.

    The revoked one is revoked at once and the CRL renewed, so that a server that
    reloads its CRL now must refuse it. Keys stay in WORK; the certificates go to
    issued/ like every certificate of the profile. PROBES is filled as they are made,
    so that a failure half-way still leaves the caller what to retire.
    """
    stamp = probes.stamp
    now = datetime.now(UTC)
    periods = {  # kind -> (not before, validity)
        "valid": (now - timedelta(minutes=5), PROBE_LIFETIME),
        "expired": (now - timedelta(days=2), timedelta(days=1)),
        "revoked": (now - timedelta(minutes=5), PROBE_LIFETIME),
    }
    all_names = [probe_name(kind, stamp) for kind in periods]
    with transaction(profile, "probe issue", all_names, timeout=lock_timeout) as tx:
        for kind, (start, validity) in periods.items():
            name = probe_name(kind, stamp)
            folder = work / kind
            folder.mkdir(mode=0o700)
            with tx.operation("client issue", [name]):
                key, csr = issue.key_and_csr(profile, folder, name, "ec:P-256", None)
                serial, cert = issue.sign(
                    tx, folder, csr, name, "client", validity, [],
                    rsa=False, ca_passphrase=ca_passphrase, not_before=start,
                )  # fmt: skip
                install(cert, profile.cert_path(name), 0o644)
            probes.made[kind] = (profile.cert_path(name), key, serial)
        with tx.operation("revoke", [probe_name("revoked", stamp)]):
            _revoke(tx, [probes.made["revoked"][2]], ca_passphrase)
        probes.revoked_at = datetime.now(UTC)


def retire_probes(
    profile: Profile,
    probes: Probes,
    ca_passphrase: Secret | None,
    lock_timeout: float | None = None,
) -> list[str]:
    """Revoke every probe certificate still in force (valid or expired), renew the CRL."""
    made = {serial: kind for kind, (_, _, serial) in probes.made.items()}
    if not made:
        return []
    names_ = [probe_name(kind, probes.stamp) for kind in made.values()]
    with transaction(profile, "probe retire", names_, timeout=lock_timeout) as tx:
        flags = {e.serial_int: e.flag for e in database.read(profile.index)}
        serials = [s for s in made if flags.get(int(s, 16)) in ("V", "E")]
        if serials:
            _revoke(tx, serials, ca_passphrase)
    return serials


def _revoke(tx: Transaction, serials: list[str], ca_passphrase: Secret | None) -> None:
    """Revoke SERIALS (cessationOfOperation) inside TX, then publish the CRL."""
    by_serial = {e.serial_int: e for e in database.read(tx.profile.index)}
    for serial in serials:
        crl.revoke_entry(
            tx.profile, by_serial[int(serial, 16)], "cessationOfOperation", ca_passphrase
        )
        tx.note_serial(serial)
    crl.regenerate_crl(tx.profile, ca_passphrase, None)


def run(
    profile: Profile,
    where: Target,
    *,
    server_ca: Path | None = None,
    reload: Callable[[], object] | None = None,
    ca_passphrase: Secret | None = None,
    lock_timeout: float | None = None,
) -> ProbeReport:
    """Every case against WHERE; the probe certificates are revoked whatever happens."""
    server_ca = server_ca or profile.ca_cert
    if not server_ca.is_file():
        raise InputError("server-ca", f"{server_ca} is not a file")
    report = ProbeReport(profile.name, where.url, where.connect_arg, reload is not None)
    none = Case("none", REFUSED)
    judge(none, connect(where, server_ca))  # reachable? before anything is issued
    stamp = new_stamp()
    probes = Probes(stamp)
    with private_dir() as work:
        try:
            issue_probes(profile, work, probes, ca_passphrase, lock_timeout)
            report.probe_names = [probe_name(kind, stamp) for kind in probes.made]
            report.revoked_at = f"{probes.revoked_at:{durations.STAMP}}"  # set by issue_probes
            if reload is not None:
                reload()
            valid_cert, valid_key, _ = probes.made["valid"]
            foreign = foreign_client(valid_cert, work, probe_name("foreign", stamp))
            unknown = foreign_client(
                valid_cert, work, probe_name("unknown-ca", stamp), same_subject=False
            )
            report.cases.append(none)
            for kind, cert_key in (
                ("valid", (valid_cert, valid_key)),
                ("foreign", foreign),
                ("unknown-ca", unknown),
                ("expired", probes.made["expired"][:2]),
                ("revoked", probes.made["revoked"][:2]),
            ):
                expected = ACCEPTED if kind == "valid" else REFUSED
                case = judge(Case(kind, expected), connect(where, server_ca, *cert_key))
                report.cases.append(case)
            _note_revoked(report, reload is not None)
            report.cases.append(trust_case(where, server_ca, profile))
        finally:
            retire_probes(profile, probes, ca_passphrase, lock_timeout)
            if reload is not None and probes.made:
                reload()
    return report


def _note_revoked(report: ProbeReport, reloaded: bool) -> None:
    case = next(c for c in report.cases if c.case == "revoked")
    if case.result == FAIL_OPEN and not reloaded:
        case.note = (
            f"the server's CRL predates the probe's revocation at {report.revoked_at}: it "
            "was not reloaded since (give --reload, or reload nginx and probe again)"
        )


def trust_case(where: Target, server_ca: Path, profile: Profile) -> Case:
    """Does the server ask for client certificates from the profile's CAs only?"""
    from cryptography import x509

    case = Case("trust", "profile CA only")
    chain = x509.load_pem_x509_certificates(profile.chain.read_bytes())
    mine = {c.subject.rfc4514_string() for c in chain}
    advertised = advertised_cas(where, server_ca)
    if not advertised:
        case.observed, case.result = "no CA names sent", SKIP
        case.note = "the server sends no acceptable CA names, so the probe cannot tell"
        return case
    extra = [name for name in advertised if name not in mine]
    case.observed = "; ".join(advertised)
    case.result = FAIL if extra else PASS
    if extra:
        case.note = f"the server also trusts: {'; '.join(extra)}"
    return case
