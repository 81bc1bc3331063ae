"""The EST service (RFC 7030 subset): a WSGI app that NGINX proxies `/.well-known/est/` to.

- `GET cacerts`: the CA chain (both levels of a two-level profile), certs-only PKCS#7.
- `POST simplereenroll`: renewal by possession. NGINX verified the client certificate
  and passes it URL-encoded in `X-Client-Cert` (`$ssl_client_escaped_cert`, set by
  the rendered proxy.inc, which replaces any copy the client sent). The service
  believes that header only from its trusted proxy, checks the certificate itself
  again (signed by this CA, in index.txt byte for byte, valid, not revoked, not
  already superseded), requires the CSR's subject to be the certificate's, and
  signs a certificate of the same kind and lifetime for the CSR's key; the old one
  is superseded after a grace (`renew.renew_with_csr`).
- `POST simpleenroll`: first enrollment with a one-time token (HTTP Basic, user =
  the name, password = the token from `certwiz client invite`): `issue.sign_csr_in`,
  extensions only from certwiz.

Who may talk to it: only the trusted proxy. On a unix socket that is whoever may
open the socket (its file mode); on TCP, peers whose address is in `trusted`
(default loopback). Any other peer gets 403 for everything: the service is never
reached directly. Every refusal is a 4xx with a one-line reason and an audit record;
a refusal writes nothing else. Every change runs in a transaction under the
profile lock, like the CLI's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import audit, database, der, derived, durations, grace, issue, names
from .. import renew as renewing
from ..errors import CertwizError, InputError, LockTimeout, StateError
from ..openssl import Secret
from ..profile import Profile
from ..transaction import transaction
from . import proxy, tokens, wire

if TYPE_CHECKING:
    from cryptography import x509

CERT_HEADER = "HTTP_X_CLIENT_CERT"  # X-Client-Cert, as proxy.inc sets it
MAX_CERT_HEADER = 16384  # a URL-encoded PEM certificate is a few KiB
DEFAULT_GRACE = "5m"
REALM = 'Basic realm="certwiz EST", charset="UTF-8"'

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]


class Refused(CertwizError):
    """A request the service answers with a 4xx (or 5xx) and one line; nothing written."""

    exit_code = 2

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
        detail: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason  # what the client is told
        self.detail = detail or reason  # what the audit record says (paths, openssl's words)
        self.headers = list(headers)
        self.recorded = False  # the transaction it was raised in already audited it


class AlreadyRenewed(Refused):
    """The presented certificate was renewed already (409), into `successor`."""

    def __init__(self, serial: str, successor: str, name: str) -> None:
        super().__init__(409, f"already renewed: {serial} was superseded by {successor}")
        self.successor = successor
        self.name = name


class RecordBudget:
    """How many refusal records the service may write: BURST at once, then RATE a second.

    simpleenroll needs no certificate, so anyone who reaches it can make refusals; one
    audit record each would grow audit.log until the disk is full, and a full audit.log
    refuses every change, revoke included. Refusals over the budget are counted, and the
    next record written says how many were not (`suppressed`): none goes unaccounted.
    """

    def __init__(self, rate: float = 1.0, burst: int = 60) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), time.monotonic()
        self._suppressed = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """None: over budget (counted); else how many were suppressed before this one."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                self._suppressed += 1
                return None
            self._tokens -= 1
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed


@dataclass(frozen=True)
class Settings:
    """What the service trusts and how it signs.

    `unix`: served on a unix socket (every peer passed the socket's file mode);
    else `trusted` lists the peer addresses (the proxy) it answers.
    """

    profile: Profile
    unix: bool = False
    trusted: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    grace: timedelta | None = field(default_factory=lambda: durations.parse(DEFAULT_GRACE, "grace"))
    lock_timeout: float = 10.0
    ca_passphrase: Secret | None = None
    proxy_secret: str | None = None  # est/proxy.py: what NGINX sends in X-Certwiz-Proxy
    records: RecordBudget = field(default_factory=RecordBudget, compare=False)

    def trusts(self, environ: Environ) -> bool:
        """From the proxy: an allowed peer, carrying the proxy's secret (when one is set)."""
        if not (self.unix or str(environ.get("REMOTE_ADDR", "")) in self.trusted):
            return False
        if self.proxy_secret is None:
            return True
        given = str(environ.get(proxy.ENVIRON_KEY, ""))[: proxy.MAX_CHARS]
        return hmac.compare_digest(given.encode(), self.proxy_secret.encode())


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    name: str = ""  # for the request log line


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

ROUTES = {
    wire.CACERTS: ("GET", "est cacerts"),
    wire.SIMPLEENROLL: ("POST", "est simpleenroll"),
    wire.SIMPLEREENROLL: ("POST", "est simplereenroll"),
}


def make_app(settings: Settings) -> Callable[[Environ, StartResponse], list[bytes]]:
    """The WSGI application for SETTINGS."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        answer = handle(settings, environ)
        environ["certwiz.name"] = answer.name  # for the request log
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            ("Cache-Control", "no-store"),
            *answer.headers,
        ]
        start_response(f"{answer.status} {REASONS.get(answer.status, '')}".rstrip(), headers)
        return [answer.body]

    return app


def handle(settings: Settings, environ: Environ) -> Answer:
    """One request: route, authenticate, act; every refusal audited once."""
    path = str(environ.get("PATH_INFO", ""))
    route = ROUTES.get(path)
    if route is None:
        return _text(404, "not an EST endpoint of this service")
    method, command = route
    context: dict[str, Any] = {"names": [], "peer": str(environ.get("REMOTE_ADDR", ""))}
    try:
        if not settings.trusts(environ):
            raise Refused(403, "only the trusted proxy may call this service")
        if environ.get("REQUEST_METHOD") != method:
            raise Refused(405, f"use {method}", [("Allow", method)])
        if path == wire.CACERTS:
            return Answer(200, cacerts(settings.profile), wire.PKCS7_TYPE)
        if path == wire.SIMPLEENROLL:
            issued = enroll(settings, environ, context)
        else:
            issued = reenroll(settings, environ, context)
        return Answer(200, issued, wire.CERTS_ONLY_TYPE, name=",".join(context["names"]))
    except Refused as exc:
        refusal = exc
    except LockTimeout as exc:
        refusal = Refused(503, "the CA is busy, try again", [("Retry-After", "5")], str(exc))
    except (InputError, StateError) as exc:
        refusal = Refused(400, str(exc))
        refusal.recorded = bool(context.get("recorded"))
    except (CertwizError, OSError) as exc:
        # the client learns no path or openssl message; the audit record has them
        refusal = Refused(500, "the CA could not sign (see its audit log)", (), audit.describe(exc))
        refusal.recorded = bool(context.get("recorded"))
    except Exception as exc:  # a bug: still one line, one record, no traceback to the client
        refusal = Refused(500, "internal error (see the audit log)", (), audit.describe(exc))
        refusal.recorded = bool(context.get("recorded"))
    if not (refusal.recorded or context.get("recorded")):
        _audit_refusal(settings, command, context, refusal)
    return _text(refusal.status, refusal.reason, refusal.headers, name=",".join(context["names"]))


def _text(
    status: int, reason: str, headers: Iterable[tuple[str, str]] = (), name: str = ""
) -> Answer:
    line = " ".join(reason.split())  # one line, whatever the error said
    return Answer(
        status, (line + "\n").encode("utf-8", "replace"), headers=list(headers), name=name
    )


def _audit_refusal(
    settings: Settings,
    command: str,
    context: dict[str, Any],
    refusal: Refused,
    *,
    repeated: bool = False,
) -> None:
    """One audit record for a refusal outside any transaction (under the lock, like every
    record); a profile too busy to take it still gets its answer. `repeated`: not a
    refusal but a renewal answered again (AlreadyRenewed with the successor's key)."""
    record = audit.new_record(settings.profile.name, command, list(context["names"]))
    if repeated and isinstance(refusal, AlreadyRenewed):
        record.update(result="repeated", serials=[refusal.successor])
    else:
        suppressed = settings.records.take()
        if suppressed is None:
            return  # counted; the next record written reports it
        record.update(result="refused", status=refusal.status, error=refusal.detail)
        if suppressed:
            record["suppressed"] = suppressed
    record["peer"] = context["peer"]
    try:
        with settings.profile.lock(settings.lock_timeout):
            audit.require_room(audit.path_of(settings.profile))
            audit.append(audit.path_of(settings.profile), record)
    except (CertwizError, OSError):
        pass


def _body(environ: Environ) -> bytes:
    """The request body: application/pkcs10, at most wire.MAX_REQUEST_BYTES."""
    if wire.media_type(environ.get("CONTENT_TYPE")) != wire.CSR_TYPE:
        raise Refused(415, f"Content-Type must be {wire.CSR_TYPE}")
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise Refused(411, "Content-Length required") from None
    if length > wire.MAX_REQUEST_BYTES:
        raise Refused(413, f"body larger than {wire.MAX_REQUEST_BYTES} bytes")
    data: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    return data


def cacerts(profile: Profile) -> bytes:
    """The chain above a leaf (signing CA, and its root in a two-level profile), as its
    sources say: no lock, so not a chain.pem a killed `ca renew` left behind (derived)."""
    from cryptography import x509

    chain = derived.handed_out(profile, profile.chain)
    return wire.encode_certs(x509.load_pem_x509_certificates(chain))


def _csr(body: bytes) -> tuple[issue.Csr, x509.CertificateSigningRequest]:
    from cryptography import x509

    der_csr = wire.decode_csr(body)
    checked = issue.load_csr(der_csr, field="body")
    return checked, x509.load_der_x509_csr(der_csr)


def _issued_body(profile: Profile, serial: str) -> bytes:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(profile.newcert_path(serial).read_bytes())
    return wire.encode_certs([leaf])


# --- simplereenroll ---------------------------------------------------------------


def presented(environ: Environ) -> x509.Certificate:
    """The client certificate NGINX verified (X-Client-Cert, URL-encoded PEM)."""
    raw = str(environ.get(CERT_HEADER, ""))
    if not raw:
        raise Refused(403, "no client certificate: renew with your current certificate")
    if len(raw) > MAX_CERT_HEADER:
        raise Refused(400, "client certificate header too large")
    pem = urllib.parse.unquote(raw).encode("utf-8", "replace")
    try:
        return der.certificate(der.pem_to_der(pem))
    except ValueError:
        raise Refused(400, "client certificate header is not a PEM certificate") from None


def current_of(profile: Profile, cert: x509.Certificate) -> renewing.Current:
    """The profile's current certificate CERT is, re-checked here (not only by NGINX):
    signed by this CA, in index.txt byte for byte, valid, and not already renewed."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    signer = x509.load_pem_x509_certificate(profile.signing_cert.read_bytes())
    if not der.issued_by(cert, signer):
        raise Refused(403, "client certificate not issued by this CA")
    serial = f"{cert.serial_number:X}"
    entry = next(
        (e for e in database.read(profile.index) if e.serial_int == cert.serial_number), None
    )
    if entry is None:
        raise Refused(403, f"client certificate {serial} is not in this CA's database")
    stored = profile.newcert_path(entry.serial)
    try:
        same = der.pem_to_der(stored.read_bytes()) == cert.public_bytes(Encoding.DER)
    except (OSError, ValueError):
        same = False
    if not same:
        raise Refused(403, f"client certificate {serial} differs from the one this CA issued")
    state = entry.status()
    if state != "valid":
        raise Refused(403, f"client certificate {entry.serial} is {state}")
    now = datetime.now(UTC)
    if cert.not_valid_before_utc > now:
        raise Refused(403, f"client certificate {entry.serial} is not valid yet")
    name = entry.common_name or ""
    pending = grace.read(profile).get(entry.serial)
    if pending is not None:
        raise AlreadyRenewed(entry.serial, pending.successor, name)
    if not names.names_files(name):
        raise Refused(403, f"client certificate {entry.serial} has no certwiz name")
    if cert.subject != x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]):
        # certwiz signs CN=NAME only, and the agent rightly refuses a certificate whose
        # subject is not its own: renewing /O=Acme/CN=NAME here would sign, put the old
        # certificate in its grace and leave the device with neither (attack round 12, F4)
        raise Refused(
            403,
            f"client certificate {entry.serial} has more in its subject than CN={name}: "
            "EST renews only CN=NAME; renew it with `certwiz client renew` or re-enroll",
        )
    try:
        current = renewing.current(profile, name, "client")
    except StateError as exc:
        raise Refused(403, str(exc)) from None
    if current.entry.serial_int != entry.serial_int:
        raise Refused(409, f"already renewed: {name}'s current certificate is not {serial}")
    return current


def _cns(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    values = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return [v.value for v in values if isinstance(v.value, str)][:1]


def reenroll(settings: Settings, environ: Environ, context: dict[str, Any]) -> bytes:
    """Renewal by possession of the current certificate; returns the response body.

    A repeat of a renewal that was answered (same certificate, same key in the CSR: a
    device that crashed before it stored the answer, or retried on a timeout) gets the
    same certificate again, not a second one; a renewal with another key gets 409.
    """
    profile = settings.profile
    cert = presented(environ)
    context["names"] = _cns(cert)  # who asked, for the record of a refusal
    try:
        old = current_of(profile, cert)
    except AlreadyRenewed as exc:
        context["names"] = [exc.name]
        checked, _ = _csr(_body(environ))
        again = _repeat(profile, exc, checked)
        _audit_refusal(settings, "est simplereenroll", context, exc, repeated=again is not None)
        context["recorded"] = True
        if again is None:
            raise
        return again
    name = old.entry.common_name or ""
    context["names"] = [name]
    checked, request = _csr(_body(environ))  # read only once the caller is known
    if request.subject != cert.subject:
        raise Refused(
            403,
            f"the CSR's subject {request.subject.rfc4514_string()!r} is not the "
            f"certificate's {cert.subject.rfc4514_string()!r}",
        )
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    with transaction(profile, "est simplereenroll", [name], timeout=settings.lock_timeout) as tx:
        context["recorded"] = True  # from here the transaction's record says how it ended
        tx.note("peer", context["peer"])
        try:
            old = current_of(profile, cert)  # again under the lock: one renewal wins a race
        except AlreadyRenewed as exc:
            again = _repeat(profile, exc, checked)
            if again is None:
                raise
            tx.note("repeated", exc.successor)
            return again
        done = renewing.renew_with_csr(
            tx,
            old,
            checked,
            validity=validity,
            grace_period=settings.grace,
            ca_passphrase=settings.ca_passphrase,
        )
        return _issued_body(profile, done.serial)


def _repeat(profile: Profile, renewed: AlreadyRenewed, checked: issue.Csr) -> bytes | None:
    """The successor's response again when the CSR holds its key and it is still valid."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    wanted = x509.load_pem_x509_csr(checked.pem).public_key().public_bytes(*spki)
    successor = int(renewed.successor, 16)
    entry = next((e for e in database.read(profile.index) if e.serial_int == successor), None)
    if entry is None or entry.status() != "valid":
        return None
    cert = x509.load_pem_x509_certificate(profile.newcert_path(entry.serial).read_bytes())
    if cert.public_key().public_bytes(*spki) != wanted:
        return None
    return wire.encode_certs([cert])


# --- simpleenroll -----------------------------------------------------------------


def basic_credentials(environ: Environ) -> tuple[str, str]:
    """(user, password) of an HTTP Basic Authorization header; 401 when there is none."""
    challenge = [("WWW-Authenticate", REALM)]
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise Refused(401, "enrollment needs HTTP Basic: user NAME, password the token", challenge)
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Refused(401, "Authorization is not valid Basic credentials", challenge) from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise Refused(401, "Authorization needs user NAME and the token as password", challenge)
    return user, password


def enroll(settings: Settings, environ: Environ, context: dict[str, Any]) -> bytes:
    """First enrollment with a one-time token; returns the response body."""
    profile = settings.profile
    user, token = basic_credentials(environ)
    try:
        name = names.client_name(user)
    except InputError:
        raise Refused(401, "unknown enrollment token", [("WWW-Authenticate", REALM)]) from None
    context["names"] = [name]
    try:
        invite = tokens.find(profile, name, token)
    except StateError as exc:
        raise Refused(401, str(exc), [("WWW-Authenticate", REALM)]) from None
    checked, _ = _csr(_body(environ))  # read only once the token is known
    issue.csr_name(checked, name, "client")  # a CSR naming another CN is refused
    validity = durations.parse(invite.days, "days")
    with transaction(profile, "est simpleenroll", [name], timeout=settings.lock_timeout) as tx:
        context["recorded"] = True
        tx.note("peer", context["peer"])
        try:
            invite = tokens.find(profile, name, token)  # again under the lock: single use
        except StateError as exc:
            raise Refused(401, str(exc), [("WWW-Authenticate", REALM)]) from None
        try:
            issue.check_no_valid(profile, name)
        except StateError as exc:
            raise Refused(409, str(exc)) from None
        done = issue.sign_csr_in(
            tx,
            checked,
            name,
            "client",
            validity=validity,
            sans=[],
            ca_passphrase=settings.ca_passphrase,
            redeeming=True,
        )
        tokens.spend(tx, invite)
        return _issued_body(profile, done.serial)
