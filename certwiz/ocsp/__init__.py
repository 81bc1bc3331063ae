"""An OCSP responder for a profile: revocation that reaches NGINX without a reload.

This module: the profile's OCSP URL, the responder certificate and one answer;
`server` is the HTTP side (imported only by `certwiz ocsp serve`).

Each request is answered by `openssl ocsp` in one-shot mode (`-reqin`/`-respout`)
over the profile's index.txt, so every answer reads the database as it is at that
moment: the query right after `certwiz revoke` already says revoked (a long-running
`openssl ocsp -port` re-reads the index only after it served the next request, and
binds every address). The HTTP side is ours, bound only to the address given.
Answers are signed by a dedicated responder certificate (OCSPSigning, noCheck,
its own key, 30 days): the CA key is never handed to the responder.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from .. import database, leaf_urls, openssl
from ..errors import InputError, StateError
from ..fsutil import require_outside, require_safe_target
from ..profile import Profile

RESPONDER_NAME = "certwiz-ocsp-responder"
URL_FILE = leaf_urls.FILES["ocsp"]  # PROFILE/ocsp_url: the responder URL in leaves (AIA)
MAX_REQUEST = 16 * 1024
MAX_PARALLEL = 4  # openssl processes at once; more requests wait
NEXT_UPDATE_MINUTES = 5
CONTENT_TYPE_REQUEST = "application/ocsp-request"
CONTENT_TYPE_RESPONSE = "application/ocsp-response"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self}/"


def check_listen(value: str) -> Listen:
    """ADDRESS:PORT with an explicit IP address: the responder binds exactly there."""
    rule = "must be IP:PORT, e.g. 127.0.0.1:8888 or [::1]:8888 (an address is required)"
    address, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError("listen", f"{value!r} {rule}")
    bracketed = address.startswith("[") and address.endswith("]")
    host = address[1:-1] if bracketed else address
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        raise InputError("listen", f"{value!r} {rule}") from None
    if parsed.version == 6 and not bracketed:
        raise InputError("listen", f"{value!r}: put an IPv6 address in brackets, e.g. [::1]:8888")
    if "%" in host:
        raise InputError("listen", f"{value!r}: scope ids are not supported")
    return Listen(str(parsed), int(port))


def check_url(value: str, field: str = "ocsp-url") -> str:
    """An http:// URL with a host (OCSP runs over plain http; nginx asks nothing else)."""
    return leaf_urls.check_url(value, field)


def configured_url(profile: Profile) -> str | None:
    """The profile's OCSP URL (ca init/ca set --ocsp-url), or None."""
    return leaf_urls.configured(profile.dir, "ocsp")


def write_url(directory: Path, url: str | None) -> None:
    """Store URL (None removes it) in DIRECTORY/ocsp_url; the caller holds the lock."""
    leaf_urls.write(directory, "ocsp", url)


def set_url(profile: Profile, url: str | None, lock_timeout: float | None = None) -> str | None:
    """`ca set --ocsp-url`: leaves issued from now on name URL (or no responder)."""
    leaf_urls.set_urls(profile, {"ocsp": url}, lock_timeout)
    return url


def check_minutes(value: str | int) -> int:
    """--next-update-minutes: 1 to 1440."""
    try:
        minutes = int(value)
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 1440:
        raise InputError("next-update-minutes", f"{value!r} must be a whole number from 1 to 1440")
    return minutes


def responder_cert(profile: Profile) -> Path:
    return profile.cert_path(RESPONDER_NAME)


def responder_key(profile: Profile) -> Path:
    return profile.key_path(RESPONDER_NAME)


def answer(
    profile: Profile, request: bytes, next_update_minutes: int = NEXT_UPDATE_MINUTES
) -> bytes:
    """The DER OCSP response to a DER request, from index.txt as it is now."""
    if not request or len(request) > MAX_REQUEST or request[0] != 0x30:
        raise InputError("request", f"not a DER OCSP request of at most {MAX_REQUEST} bytes")
    return openssl.run_bytes(
        [
            "ocsp",
            "-index",
            profile.index,
            "-CA",
            profile.signing_cert,
            "-rsigner",
            responder_cert(profile),
            "-rkey",
            responder_key(profile),
            "-nmin",
            str(next_update_minutes),
            "-reqin",
            "/dev/stdin",
            "-respout",
            "/dev/stdout",
        ],
        stdin=request,
    )


def default_pid_file(profile: Profile) -> Path:
    return profile.dir / "ocsp.pid"


_PID_TEXT = re.compile(r"[0-9]{1,10}\n?")


def check_pid_file(profile: Profile, given: Path | None) -> Path:
    """--pid-file: outside the certwiz home (but for the default), and never an existing
    file that is not a pid file: the responder replaces it at start and deletes it at exit."""
    default = default_pid_file(profile)
    if given is None:
        return default
    path = given.expanduser().absolute()
    if path != default:
        require_outside("pid-file", path, profile.home)
        # deleted by name at exit: its directory must be one nobody else can change
        require_safe_target("pid-file", path, in_place=True)
    if path.is_symlink() or path.is_dir():
        raise InputError("pid-file", f"{path} is a link or a directory; give a plain file path")
    if path.exists():
        try:
            with path.open("rb") as handle:
                head = handle.read(16)
        except OSError as exc:
            raise InputError("pid-file", f"{path}: {exc.strerror}") from None
        if not _PID_TEXT.fullmatch(head.decode("ascii", "replace")):
            raise InputError(
                "pid-file", f"{path} exists and is not a pid file; certwiz would delete it"
            )
    return path


def check_ready(profile: Profile) -> None:
    """The responder needs its certificate and key; say how to get them."""
    for path in (responder_cert(profile), responder_key(profile)):
        if not path.is_file():
            raise StateError(
                f"profile {profile.name} has no OCSP responder certificate ({path}); "
                f"run: certwiz ocsp serve -p {profile.name} (it issues one) "
            )


# ---- the responder certificate ------------------------------------------------------

RESPONDER_DAYS = 30
RENEW_BEFORE_DAYS = 7


def responder_renewal(profile: Profile) -> str | None:
    """Why the responder certificate must be (re)issued now, or None if it is fine."""
    from datetime import UTC, datetime, timedelta

    cert, key = responder_cert(profile), responder_key(profile)
    if not cert.is_file() or not key.is_file():
        return "there is none"
    from cryptography import x509

    try:
        serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    except ValueError:
        return f"{cert} is not a certificate"
    entry = next((e for e in database.read(profile.index) if e.serial_int == serial), None)
    if entry is None or entry.status() != "valid":
        return "it is revoked, expired or unknown to the profile"
    if entry.not_after - datetime.now(UTC) < timedelta(days=RENEW_BEFORE_DAYS):
        return f"it ends within {RENEW_BEFORE_DAYS} days"
    return None
