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

This module is the loop (when, the bundle lock, the two commands); its parts:
`trust` (the URL, the CA files, the server pinned to the profile's signing CA),
`device` (the bundle, new keys and CSRs), `transport` (HTTP over TLS and the
answer's status), `verify` (the new certificate checked), `pending` (a renewal's key
and CSR kept across a crash).
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .. import durations, names, p12
from ..errors import CertwizError, InputError
from ..fsutil import flock_by, install, require_no_profile, scratch_dir, unsafe_directory
from ..passphrase import Source, bundle_passphrase, resolve
from . import device, pending, transport, trust, verify

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_BEFORE = "1/3"
LOCK_WAIT = 3 * transport.TIMEOUT  # another agent on the same bundle finishes within this
_ENROLL_KEY_TYPE = "ec:P-256"


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


def require_own_directory(field: str, path: Path) -> None:
    """InputError unless PATH's directory, and every one above it, is one only root or
    this user can change (the deepest not even with the sticky bit, as in /tmp).

    The agent creates and removes entries there (the pending renewal, scratch
    directories) and replaces the bundle by rename. Run by root on a bundle in a
    directory the bot's user can write, that user could plant the names it removes and
    swap them for links: root deleted files in a directory only root could write
    (attack round 10, F2). The removals are made through directory descriptors too
    (`fsutil.remove_tree`), but what another user can plant is not ours to touch.
    """
    problem = unsafe_directory(path.parent, sticky_deepest=False)
    if problem:
        raise InputError(
            field,
            f"{problem}: another user could make the agent delete or replace files there; "
            "keep the bundle in a directory only root or this user can change "
            "(/etc/certwiz-agent/NAME/, 0700), or run the agent as that directory's user",
        )


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
        if not flock_by(fd, time.monotonic() + LOCK_WAIT):
            raise CertwizError(f"another agent holds {path.parent} (waited {LOCK_WAIT:g}s)")
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
    where = trust.endpoint(url)
    before = check_before(before)
    require_own_directory("p12", p12_path)
    trusted = trust.server_trust(ca, server_ca)
    where = replace(where, trust=trusted)
    bundle = device.read_bundle(p12_path, resolve(password))
    where = trust.pin_server(where, ca, server_ca, bundle)
    when = schedule(bundle.cert, before, now or datetime.now(UTC))
    due = force or when.due(now or datetime.now(UTC))
    if not due and not pending.dir_of(p12_path).exists():
        return _not_due(bundle, when, "not due")
    from . import wire  # only now: the codecs import what signing needs (not due: never)

    with _bundle_lock(p12_path):
        again = device.read_bundle(p12_path, bundle.password)  # what it is now that we hold it
        kept = pending.load(p12_path, again)  # a stale one is gone after this
        if again.serial != bundle.serial:
            later = schedule(again.cert, before, datetime.now(UTC))
            return _not_due(again, later, "renewed by another run", bundle.serial)
        if kept is None and not due:
            return _not_due(bundle, when, "not due")
        if kept is None:  # kept until the answer is installed: a retry sends it again
            kept = pending.begin(p12_path, bundle)
        with scratch_dir(p12_path.parent, f".{p12_path.name}.work-") as work:
            context = transport.tls_context(trusted, bundle, work)
            answer = transport.exchange(
                where, context, "POST", wire.SIMPLEREENROLL, wire.encode_csr(kept.csr),
                {"Content-Type": wire.CSR_TYPE},
            )  # fmt: skip
            certs = transport.certificates(where, answer, "simplereenroll")
            got = verify.with_cacerts(
                where, context, certs, kept.spki, bundle.cert.subject, ca, work, bundle.cert
            )
            new = device.bundle_file(work, kept.key, kept.passphrase, got.leaf, got.chain,
                                     bundle.friendly_name, bundle.p12_format,
                                     bundle.password)  # fmt: skip
            _keep_owner(new, p12_path)
            install(new, p12_path, p12_path.stat().st_mode & 0o777)
        pending.discard(kept.dir)  # a crash before this: the next run finds it stale
    due_now = when.due(now or datetime.now(UTC))
    reason = "renewed" if due_now else "forced" if force else "resumed"
    when = schedule(got.leaf, before, datetime.now(UTC))
    return Renewal(
        True,
        str(p12_path),
        reason,
        device.serial_of(got.leaf),
        bundle.serial,
        durations.stamp(got.leaf.not_valid_after_utc),
        durations.stamp(when.renew_at),
        kept.resumed,
    )


def _keep_owner(new: Path, old: Path) -> None:
    """The new bundle belongs to whoever owned the old one: an agent run by root (a
    systemd unit) must not take the bundle away from the bot's user. Without the right
    to give a file away (not root) it stays ours, as the old one was then."""
    st = old.stat()
    with contextlib.suppress(PermissionError):
        os.chown(new, st.st_uid, st.st_gid)


def _not_due(
    bundle: device.Bundle, when: Schedule, reason: str, previous: str | None = None
) -> Renewal:
    return Renewal(False, str(bundle.path), reason, bundle.serial, previous,
                   durations.stamp(when.not_after), durations.stamp(when.renew_at))  # fmt: skip


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

    where = trust.endpoint(url)
    token = token_text(token)
    name = names.enrollable_name(name)
    p12.check_format(p12_format)
    names.key_type(key_type)
    trusted = trust.server_trust(ca, server_ca)
    where = replace(where, trust=trusted)
    where = trust.pin_server(where, ca, server_ca)
    if out.is_symlink() or (out.exists() and not force):
        raise InputError("out", f"{out} exists: give --force to replace it")
    if not out.parent.is_dir():
        raise InputError("out", f"{out.parent} is not a directory")
    require_own_directory("out", out)
    require_no_profile("out", out)  # --force would replace a CA's file (round 12, F8)
    secret = bundle_passphrase(password, unencrypted=unencrypted)  # asked only now
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    from . import wire

    with scratch_dir(out.parent) as work:
        key, key_secret, csr, spki = device.new_key_and_csr(work, key_type, subject)
        context = transport.tls_context(trusted, None, work)
        basic = base64.b64encode(f"{name}:{token}".encode()).decode()
        answer = transport.exchange(
            where, context, "POST", wire.SIMPLEENROLL, wire.encode_csr(csr),
            {"Content-Type": wire.CSR_TYPE, "Authorization": f"Basic {basic}"},
        )  # fmt: skip
        certs = transport.certificates(where, answer, "simpleenroll")
        got = verify.with_cacerts(where, context, certs, spki, subject, ca, work)
        new = device.bundle_file(
            work, key, key_secret, got.leaf, got.chain, name, p12_format, secret
        )
        if force:
            install(new, out, 0o600)
        else:
            with open(new, "rb") as handle:
                os.fsync(handle.fileno())
            os.link(new, out)  # never replaces a file that appeared meanwhile
    return Enrollment(str(out), name, device.serial_of(got.leaf),
                      durations.stamp(got.leaf.not_valid_after_utc))  # fmt: skip
