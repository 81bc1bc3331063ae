"""The renewal agent: runs on the device, keeps its PKCS#12 bundle renewed over EST.

`renew` reads the bundle, and when less than `before` of the certificate's lifetime
is left it makes a new key and a CSR with the same subject (openssl, the key
encrypted on disk, its passphrase only through a pipe), POSTs simplereenroll over
mutual TLS with the current certificate, verifies the answer (chain to the CA file,
same subject, the new key, sane times) and replaces the bundle atomically with the
same password and format. `enroll` does the first enrollment with a one-time token
(HTTP Basic, RFC 7030 3.2.3). The agent needs no profile: only the CA file.

No key is ever on disk unencrypted: the current key is handed to Python's ssl from an
encrypted copy (random passphrase, 0700 scratch directory, removed once loaded).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import names, openssl, p12
from .. import openssl_args as args
from ..errors import CertwizError, InputError, RefusedByServer
from ..fsutil import install, scratch_dir
from ..openssl import Secret
from ..passphrase import Source, bundle_passphrase, resolve

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_BEFORE = "1/3"
TIMEOUT = 30.0  # seconds for one HTTP exchange; a timer retries later
SKEW = timedelta(minutes=5)  # a new certificate may start this far in the future (clocks)
LOCK_WAIT = 3 * TIMEOUT  # another agent on the same bundle finishes within this
_ENROLL_KEY_TYPE = "ec:P-256"


class AnswerRejected(CertwizError):
    """The server's answer is not a certificate this device may take; nothing was changed."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    trust: Path | None = None  # the CA file the server's certificate is checked against
    # The server's certificate must be issued directly by one of these (the profile's
    # signing CA), checked right after the handshake, before anything is sent; () when
    # --server-ca overrides. `signers` says what they are, for the error.
    issuers: tuple[x509.Certificate, ...] = ()
    signers: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def endpoint(url: str) -> Endpoint:
    """https://HOST[:PORT] (an optional trailing /); anything else is an input error."""
    rule = "must be https://HOST[:PORT] (the EST paths are fixed: /.well-known/est/)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = 443 if parts.port is None else parts.port
    except ValueError:
        raise InputError("url", f"{url!r} {rule}") from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or port == 0
    ):
        raise InputError("url", f"{url!r} {rule}")
    return Endpoint(parts.hostname, port)


def check_before(value: float | str) -> float:
    """A fraction of the lifetime in (0, 1]: 0.25, 1/3, 25%."""
    from fractions import Fraction

    rule = f"{value!r} must be a fraction of the lifetime in (0, 1]: 0.25, 1/3 or 25%"
    try:
        text = str(value).strip()
        fraction = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError("before", rule) from None
    if not 0 < fraction <= 1:
        raise InputError("before", rule)
    return float(fraction)


def _check_ca(path: Path, field: str = "ca") -> Path:
    """A CA file: PEM with at least one certificate (what TLS and `verify` trust)."""
    from .. import der

    try:
        with open(path, "rb") as handle:
            data = handle.read(p12.MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > p12.MAX_BYTES or not der.pem_certificates(data):
        raise InputError(field, f"{path} holds no PEM certificate (give a CA's certificate)")
    return path


def _server_trust(ca: Path, server_ca: Path | None) -> Path:
    """What the server's certificate must chain to in TLS: --server-ca (e.g. a public CA's
    bundle when NGINX shows a public certificate), else the client certificates' CA."""
    _check_ca(ca)
    return ca if server_ca is None else _check_ca(server_ca, "server-ca")


def _ca_certs(ca: Path) -> list[x509.Certificate]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(ca.read_bytes())


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """ISSUER's key signed CERT (and the names chain): the one test that names can't fake."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _pin_server(
    where: Endpoint, ca: Path, server_ca: Path | None, current: Bundle | None = None
) -> Endpoint:
    """WHERE, trusting only the profile's own signing CA for the server.

    Chaining to the root is not enough: the root may sign other CAs (`ca sign-intermediate`:
    Vault, step-ca, cert-manager), and any of them could mint a server certificate for
    this host and collect the token or hand out its own certificates. So the server's
    certificate must be issued directly by a certificate in --ca (a single-level profile's
    ca.crt, a two-level one's chain.pem or intermediate) or, for a renewal, by the CA that
    issued the current certificate (found in the bundle's chain or --ca by its signature).
    --server-ca is the explicit override: the server is then checked against it alone."""
    if server_ca is not None:
        return where
    issuers = _ca_certs(ca)
    signers = f"a certificate in {ca}"
    if current is not None:
        mine = next((c for c in [*current.chain, *issuers] if _issued_by(current.cert, c)), None)
        if mine is not None and mine not in issuers:
            issuers.append(mine)
            signers = (
                f"{mine.subject.rfc4514_string()!r} (the current certificate's CA) or {signers}"
            )
    return replace(where, issuers=tuple(issuers), signers=signers)


def _check_server(where: Endpoint, der: bytes | None) -> None:
    """The server's certificate (DER, verified by TLS already) comes from WHERE.issuers."""
    from cryptography import x509

    if not where.issuers:
        return
    cert = x509.load_der_x509_certificate(der) if der else None
    if cert is None or not any(_issued_by(cert, issuer) for issuer in where.issuers):
        who = "none" if cert is None else repr(cert.issuer.rfc4514_string())
        raise CertwizError(
            f"{where.url}: the server certificate is issued by {who}, not by {where.signers}: "
            "refused before sending anything (another CA under the same root? give the "
            "server's CA with --server-ca)"
        )


# ---- the bundle -----------------------------------------------------------------------


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
        return _serial(self.cert)


def read_bundle(path: Path, password: Secret | None) -> Bundle:
    from cryptography.hazmat.primitives.serialization import pkcs12

    if path.is_symlink():
        raise InputError("p12", f"{path} is a symlink: give the bundle itself (it is replaced)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(p12.MAX_BYTES + 1)
    except OSError as exc:
        raise InputError("p12", f"cannot read {path}: {exc.strerror}") from None
    if len(data) > p12.MAX_BYTES:
        raise InputError("p12", f"{path} is larger than {p12.MAX_BYTES} bytes: not a bundle")
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
    if _spki(cert) != _spki(loaded.key):
        raise InputError("p12", f"{path}: its key does not match its certificate")
    if fmt is None:
        raise InputError("p12", f"{path} is neither compat nor modern PKCS#12 (re-issue it)")
    name = loaded.cert.friendly_name
    friendly = name.decode(errors="replace") if name else _cn(cert) or "certwiz"
    chain = [extra.certificate for extra in loaded.additional_certs]
    return Bundle(path, password, fmt, loaded.key, cert, friendly, chain)


def _spki(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        obj.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _cn(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[-1].value) if found else None


def _serial(cert: x509.Certificate) -> str:
    """Upper-case hex of even length, as openssl ca writes it in index.txt."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from .. import der

    return der.cert_serial(cert.public_bytes(Encoding.DER))


def _stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}"


# ---- when ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    not_before: datetime
    not_after: datetime
    renew_at: datetime  # the first moment less than `before` of the lifetime is left
    left: float  # fraction of the lifetime left now (negative: expired)

    def due(self, now: datetime) -> bool:
        return now >= self.renew_at


def schedule(cert: x509.Certificate, before: float, now: datetime) -> Schedule:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    lifetime = max(end - start, timedelta(seconds=1))
    return Schedule(start, end, end - lifetime * before, (end - now) / lifetime)


# ---- HTTP over TLS ----------------------------------------------------------------------


def _context(ca: Path, identity: Bundle | None, work: Path) -> ssl.SSLContext:
    """TLS that trusts CA only; with IDENTITY it presents the bundle's certificate.

    Python's ssl reads the key from a file: it gets a copy encrypted under a random
    passphrase (0600 in the 0700 WORK), deleted as soon as it is loaded.
    """
    from cryptography.hazmat.primitives import serialization

    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # every certificate in CA is an anchor: a two-level profile's intermediate alone will do
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if identity is not None:
        password = secrets.token_urlsafe(32).encode()
        cert_file, key_file = work / "current.crt", work / "current.key"
        key_pem = identity.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        _write_private(key_file, key_pem)
        _write_private(cert_file, identity.cert.public_bytes(serialization.Encoding.PEM))
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=lambda: password)
        finally:
            key_file.unlink()
            cert_file.unlink()
    return context


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: str | None


def _exchange(
    where: Endpoint,
    context: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request; a connection or TLS failure is a CertwizError (exit 1: retry later)."""
    import http.client  # only when a request is made (not due: never)

    from . import wire

    conn = http.client.HTTPSConnection(where.host, where.port, context=context, timeout=TIMEOUT)
    try:
        conn.connect()  # the handshake first: nothing is sent to a server of another CA
        _check_server(where, conn.sock.getpeercert(binary_form=True))
        conn.request(method, path, body=body, headers={"User-Agent": "certwiz-agent",
                                                       **(headers or {})})  # fmt: skip
        response = conn.getresponse()
        data = response.read(wire.MAX_RESPONSE_BYTES + 1)
        return Answer(
            response.status,
            response.getheader("Content-Type") or "",
            data,
            response.getheader("Retry-After"),
        )
    except ssl.SSLCertVerificationError as exc:
        raise CertwizError(
            f"{where.url}: the server certificate does not verify against {where.trust} "
            f"({exc.verify_message}; a server certificate of another CA: --server-ca FILE)"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise CertwizError(f"cannot reach {where.url}: {reason}") from None
    finally:
        conn.close()


def _reason(body: bytes) -> str:
    """The server's one-line reason, printable and short (never trusted as more)."""
    text = body[:4096].decode("utf-8", errors="replace")
    for line in text.splitlines():
        line = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
        if line and not line.startswith("<"):
            return line[:200]
    import re

    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    return title.group(1).strip()[:200] if title else "no reason given"


def _certificates(where: Endpoint, answer: Answer, what: str) -> list[x509.Certificate]:
    """The certificates of a 200 certs-only answer; any other answer is an error."""
    from . import wire

    if answer.status == 200:
        if wire.media_type(answer.content_type) != wire.PKCS7_TYPE:
            raise AnswerRejected(f"{what}: the answer is {answer.content_type!r}, not PKCS#7")
        try:
            return wire.decode_certs(answer.body)
        except InputError as exc:
            raise AnswerRejected(f"{what}: {exc}") from None
    if answer.status == 202:
        later = f"; retry after {answer.retry_after}" if answer.retry_after else ""
        raise CertwizError(f"{what}: the server has not signed yet (202){later}")
    if 400 <= answer.status < 500:
        raise RefusedByServer(
            f"{what}: refused by {where.url} ({answer.status}: {_reason(answer.body)})"
        )
    raise CertwizError(f"{what}: {where.url} answered {answer.status}: {_reason(answer.body)}")


# ---- key, request, verification, bundle ------------------------------------------------


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


def _new_key_and_csr(
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

    return key, passphrase, request.public_bytes(serialization.Encoding.DER), _spki(request)


@dataclass(frozen=True)
class Verified:
    leaf: x509.Certificate
    chain: list[x509.Certificate]  # the issuers to put in the bundle (not the leaf)


def _pem(certs: list[x509.Certificate]) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _verify(
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

    leaf = next((c for c in certs if _spki(c) == key_spki), None)
    if leaf is None:
        raise AnswerRejected("the answer holds no certificate for the new key")
    if subject is not None and leaf.subject != subject:
        raise AnswerRejected(
            f"the new certificate is for {leaf.subject.rfc4514_string()!r}, "
            f"not {subject.rfc4514_string()!r}"
        )
    if leaf.not_valid_before_utc > now + SKEW or leaf.not_valid_after_utc <= now:
        raise AnswerRejected(
            f"the new certificate is valid from {_stamp(leaf.not_valid_before_utc)} to "
            f"{_stamp(leaf.not_valid_after_utc)}, not now ({_stamp(now)})"
        )
    with contextlib.suppress(x509.ExtensionNotFound):
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise AnswerRejected("the new certificate is a CA certificate")
    seen: set[bytes] = {_spki(leaf) + leaf.tbs_certificate_bytes}
    chain = []
    for cert in [*certs, *extra, *x509.load_pem_x509_certificates(ca.read_bytes())]:
        ident = _spki(cert) + cert.tbs_certificate_bytes
        if ident not in seen:
            seen.add(ident)
            chain.append(cert)
    leaf_file, chain_file = work / "leaf.pem", work / "chain.pem"
    leaf_file.write_bytes(_pem([leaf]))
    chain_file.write_bytes(_pem(chain))
    try:
        openssl.run(args.verify(ca, leaf_file, chain_file, "sslclient", partial=True))
    except openssl.OpenSSLError as exc:
        raise AnswerRejected(
            f"the new certificate does not verify against {ca}: {exc.detail}"
        ) from None
    _same_signer(leaf, current, chain if current is not None else _ca_certs(ca), ca)
    return Verified(leaf, chain)


def _same_signer(
    leaf: x509.Certificate, current: x509.Certificate | None, pool: list[x509.Certificate],
    ca: Path,
) -> None:  # fmt: skip
    """LEAF is issued by the CA that issued CURRENT (None: by a certificate in CA), whose
    certificate is in POOL; anything else under the same root is refused."""
    issuer = leaf.issuer.rfc4514_string()
    if current is None:
        if not any(_issued_by(leaf, c) for c in pool):
            raise AnswerRejected(
                f"the new certificate is issued by {issuer!r}, not directly by a certificate "
                f"in {ca} (another CA under the same root?)"
            )
        return
    mine = current.issuer.rfc4514_string()
    same = leaf.issuer == current.issuer and _aki(leaf) == _aki(current)
    if not same or not any(_issued_by(leaf, c) and _issued_by(current, c) for c in pool):
        raise AnswerRejected(
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


def _bundle_file(
    work: Path, key: Path, key_passphrase: Secret, got: Verified, name: str, fmt: str,
    password: Secret | None,
) -> Path:  # fmt: skip
    """WORK/new.p12: the new key, certificate and chain, FMT, PASSWORD (None: empty)."""
    cert, chain, out = work / "leaf.pem", work / "chain.pem", work / "new.p12"
    cert.write_bytes(_pem([got.leaf]))
    chain.write_bytes(_pem(got.chain))
    p12.export(key=key, cert=cert, chain=chain, name=name, out=out, p12_format=fmt,
               password=password, key_passphrase=key_passphrase)  # fmt: skip
    return out


# ---- a pending renewal ----------------------------------------------------------------------
#
# The service signs once per certificate: a repeat with the SAME key gets the same new
# certificate back, another key gets 409 (and after the grace the device is locked out).
# So the new key and its CSR are kept beside the bundle until the answer is installed,
# and a run after a crash (killed, power lost, the answer lost on the way) sends them again.

_PENDING_KEY, _PENDING_CSR, _PENDING_STATE = "new.key", "req.csr", "state.json"


@dataclass(frozen=True)
class Pending:
    """A renewal begun for the bundle's certificate `for_serial`: DIR/new.key (encrypted
    under `passphrase`), its CSR (DER) and the key's SPKI."""

    dir: Path
    key: Path
    passphrase: Secret
    csr: bytes
    spki: bytes
    resumed: bool  # made by an earlier run


def pending_dir(p12_path: Path) -> Path:
    """.NAME.pending beside the bundle (0700; the agent's flock covers it)."""
    return p12_path.parent / f".{p12_path.name}.pending"


def _pending_passphrase(bundle: Bundle) -> Secret:
    """The pending key's passphrase, derived from the bundle's CURRENT key (HKDF-SHA256,
    bound to the certificate's serial), never stored.

    Why this one: it must survive the crash, and it does, because the bundle keeps the
    current key until the new bundle is installed; a random one would die with the
    process. It is exactly as secret as the bundle's own key: whoever can open the bundle
    (its password) can open the pending key, nobody else; a passphrase derived from the
    bundle password would be a constant for the -u (empty password) bundles bots use.
    A bundle replaced meanwhile (another key) cannot open it: the pending state is stale.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = bundle.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = b"certwiz agent pending renewal key " + bundle.serial.encode()
    derived = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(material)
    return Secret(base64.urlsafe_b64encode(derived).decode().rstrip("="))


def _discard(path: Path) -> None:
    """Remove a pending directory (its files, then itself); gone already is fine. A
    symlink (or a file) in its place is removed itself, never followed."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
            return
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def _load_pending(p12_path: Path, bundle: Bundle) -> Pending | None:
    """The pending renewal of BUNDLE's certificate, or None. Held under the bundle lock.

    A stale one is removed: made for another certificate (the bundle was renewed, or
    replaced by the operator), older than the bundle's certificate, or whose key does not
    open with the bundle's key or does not match its CSR and subject. So are the leftovers
    of a killed run (.NAME.pending-XXXX, .NAME.work-XXXX): the lock says none is alive."""
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for kind in ("pending", "work"):
        for leftover in p12_path.parent.glob(f".{p12_path.name}.{kind}-*"):
            _discard(leftover)
    where = pending_dir(p12_path)
    if not where.exists():
        return None
    passphrase = _pending_passphrase(bundle)
    try:
        if where.is_symlink() or not where.is_dir():
            raise ValueError("not a directory")
        state = json.loads((where / _PENDING_STATE).read_text())
        created = datetime.fromisoformat(state["created"])
        older = created < bundle.cert.not_valid_before_utc - SKEW  # than what it renews
        if state["for_serial"] != bundle.serial or older:
            raise ValueError("made for another certificate")
        key = serialization.load_pem_private_key(
            (where / _PENDING_KEY).read_bytes(), passphrase.text.encode()
        )
        request = x509.load_der_x509_csr(csr := (where / _PENDING_CSR).read_bytes())
        if _spki(key) != _spki(request) or request.subject != bundle.cert.subject:
            raise ValueError("the key does not match its request")
    except (OSError, ValueError, KeyError, TypeError):
        _discard(where)  # stale or damaged: a new renewal starts from scratch
        return None
    return Pending(where, where / _PENDING_KEY, passphrase, csr, _spki(request), True)


def _begin_pending(p12_path: Path, bundle: Bundle) -> Pending:
    """A new key and CSR, kept as BUNDLE's pending renewal (written in a 0700 directory
    beside the bundle, fsynced, then renamed into place: whole or not at all)."""
    import json
    import tempfile

    passphrase = _pending_passphrase(bundle)
    build = Path(tempfile.mkdtemp(dir=p12_path.parent, prefix=f".{p12_path.name}.pending-"))
    try:
        key, _, csr, spki = _new_key_and_csr(
            build, names.key_type_of(bundle.cert), bundle.cert.subject, passphrase
        )
        key.chmod(0o600)
        (build / "req.cnf").unlink()
        (build / "req.csr").unlink()
        _write_private(build / _PENDING_CSR, csr)
        state = {"for_serial": bundle.serial, "created": _stamp(datetime.now(UTC))}
        _write_private(build / _PENDING_STATE, json.dumps(state).encode())
        for child in build.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        where = pending_dir(p12_path)
        os.rename(build, where)
    except BaseException:
        _discard(build)
        raise
    dir_fd = os.open(p12_path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return Pending(where, where / _PENDING_KEY, passphrase, csr, spki, False)


# ---- the two commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class Renewal:
    """What `renew` did, for printing and --json (no secret in it)."""

    renewed: bool
    file: str
    # renewed (due), forced, resumed (not due: a renewal an earlier run began), not due,
    # renewed by another run
    reason: str
    serial: str  # the bundle's certificate now
    previous_serial: str | None
    not_after: str
    renew_at: str  # when the certificate now in the bundle becomes due
    resumed: bool = False  # the key and CSR sent were an earlier run's (pending renewal)


@contextlib.contextmanager
def _bundle_lock(path: Path) -> Iterator[None]:
    """One agent at a time per bundle directory: a flock on the directory (no file left).

    The holder reads the bundle again: another agent may have renewed it meanwhile.
    """
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise CertwizError(f"another agent holds {path.parent} (waited {LOCK_WAIT:g}s)")
            time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def renew(
    url: str,
    p12_path: Path,
    ca: Path,
    *,
    password: Source,
    before: float | str = DEFAULT_BEFORE,
    force: bool = False,
    server_ca: Path | None = None,
    now: datetime | None = None,
) -> Renewal:
    """Renew the bundle's certificate over EST when it is due (or `force`).

    `password` None is the empty one; a provider is asked only after the other input
    was checked."""
    where = endpoint(url)
    before = check_before(before)
    trust = _server_trust(ca, server_ca)
    where = replace(where, trust=trust)
    bundle = read_bundle(p12_path, resolve(password))
    where = _pin_server(where, ca, server_ca, bundle)
    when = schedule(bundle.cert, before, now or datetime.now(UTC))
    due = force or when.due(now or datetime.now(UTC))
    if not due and not pending_dir(p12_path).exists():
        return _not_due(bundle, when, "not due")
    from . import wire  # only now: the codecs import what signing needs (not due: never)

    with _bundle_lock(p12_path):
        again = read_bundle(p12_path, bundle.password)  # what it is now that we hold it
        pending = _load_pending(p12_path, again)  # a stale one is gone after this
        if again.serial != bundle.serial:
            later = schedule(again.cert, before, datetime.now(UTC))
            return _not_due(again, later, "renewed by another run", bundle.serial)
        if pending is None and not due:
            return _not_due(bundle, when, "not due")
        if pending is None:  # kept until the answer is installed: a retry sends it again
            pending = _begin_pending(p12_path, bundle)
        with scratch_dir(p12_path.parent, f".{p12_path.name}.work-") as work:
            context = _context(trust, bundle, work)
            answer = _exchange(
                where, context, "POST", wire.SIMPLEREENROLL, wire.encode_csr(pending.csr),
                {"Content-Type": wire.CSR_TYPE},
            )  # fmt: skip
            certs = _certificates(where, answer, "simplereenroll")
            got = _verified_with_cacerts(
                where, context, certs, pending.spki, bundle.cert.subject, ca, work, bundle.cert
            )
            new = _bundle_file(work, pending.key, pending.passphrase, got, bundle.friendly_name,
                               bundle.p12_format, bundle.password)  # fmt: skip
            _keep_owner(new, p12_path)
            install(new, p12_path, p12_path.stat().st_mode & 0o777)
        _discard(pending.dir)  # a crash before this: the next run finds it stale
    due_now = when.due(now or datetime.now(UTC))
    reason = "renewed" if due_now else "forced" if force else "resumed"
    when = schedule(got.leaf, before, datetime.now(UTC))
    return Renewal(
        True,
        str(p12_path),
        reason,
        _serial(got.leaf),
        bundle.serial,
        _stamp(got.leaf.not_valid_after_utc),
        _stamp(when.renew_at),
        pending.resumed,
    )


def _keep_owner(new: Path, old: Path) -> None:
    """The new bundle belongs to whoever owned the old one: an agent run by root (a
    systemd unit) must not take the bundle away from the bot's user. Without the right
    to give a file away (not root) it stays ours, as the old one was then."""
    st = old.stat()
    with contextlib.suppress(PermissionError):
        os.chown(new, st.st_uid, st.st_gid)


def _not_due(bundle: Bundle, when: Schedule, reason: str, previous: str | None = None) -> Renewal:
    return Renewal(False, str(bundle.path), reason, bundle.serial, previous,
                   _stamp(when.not_after), _stamp(when.renew_at))  # fmt: skip


def _verified_with_cacerts(
    where: Endpoint,
    context: ssl.SSLContext,
    certs: list[x509.Certificate],
    spki: bytes,
    subject: x509.Name | None,
    ca: Path,
    work: Path,
    current: x509.Certificate | None = None,
) -> Verified:
    """`_verify`; when the answer lacks an intermediate, again with GET cacerts."""
    now = datetime.now(UTC)
    try:
        return _verify(certs, [], spki, subject, ca, work, now, current)
    except AnswerRejected as exc:
        if "does not verify" not in str(exc):
            raise
        from . import wire

        answer = _exchange(where, context, "GET", wire.CACERTS)
        try:
            extra = _certificates(where, answer, "cacerts")
        except CertwizError:
            raise exc from None
        return _verify(certs, extra, spki, subject, ca, work, now, current)


@dataclass(frozen=True)
class Enrollment:
    file: str
    name: str
    serial: str
    not_after: str


def token_text(token: str, field: str = "token") -> str:
    """A token as given: one printable line without spaces (it goes into a header)."""
    token = token.strip()
    if not token or len(token) > 1024 or not all(c.isprintable() and not c.isspace()
                                                 for c in token):  # fmt: skip
        raise InputError(field, "a token is one line of printable characters, as invite gave it")
    return token


def enroll(
    url: str,
    token: str,
    ca: Path,
    out: Path,
    *,
    password: Source,
    unencrypted: bool = False,
    name: str,
    p12_format: str = p12.DEFAULT_FORMAT,
    key_type: str = _ENROLL_KEY_TYPE,
    force: bool = False,
    server_ca: Path | None = None,
) -> Enrollment:
    """First enrollment: a key born here, a CSR for CN=NAME, simpleenroll with HTTP
    Basic (RFC 7030 3.2.3: user NAME, password the token) over server-authenticated
    TLS, the answer verified like a renewal's, the bundle written to OUT."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    where = endpoint(url)
    token = token_text(token)
    name = names.client_name(name)
    p12.check_format(p12_format)
    names.key_type(key_type)
    trust = _server_trust(ca, server_ca)
    where = replace(where, trust=trust)
    where = _pin_server(where, ca, server_ca)
    if out.is_symlink() or (out.exists() and not force):
        raise InputError("out", f"{out} exists: give --force to replace it")
    if not out.parent.is_dir():
        raise InputError("out", f"{out.parent} is not a directory")
    secret = bundle_passphrase(password, unencrypted=unencrypted)  # asked only now
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    from . import wire

    with scratch_dir(out.parent) as work:
        key, key_secret, csr, spki = _new_key_and_csr(work, key_type, subject)
        context = _context(trust, None, work)
        basic = base64.b64encode(f"{name}:{token}".encode()).decode()
        answer = _exchange(
            where, context, "POST", wire.SIMPLEENROLL, wire.encode_csr(csr),
            {"Content-Type": wire.CSR_TYPE, "Authorization": f"Basic {basic}"},
        )  # fmt: skip
        certs = _certificates(where, answer, "simpleenroll")
        got = _verified_with_cacerts(where, context, certs, spki, subject, ca, work)
        new = _bundle_file(work, key, key_secret, got, name, p12_format, secret)
        if force:
            install(new, out, 0o600)
        else:
            with open(new, "rb") as handle:
                os.fsync(handle.fileno())
            os.link(new, out)  # never replaces a file that appeared meanwhile
    return Enrollment(str(out), name, _serial(got.leaf),
                      _stamp(got.leaf.not_valid_after_utc))  # fmt: skip
