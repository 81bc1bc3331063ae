"""The URLs written into every leaf issued from now on: where the CRL is published
(CRL distribution point) and the OCSP responder (authority information access).

Each is a one-line file in the profile (`crl_url`, `ocsp_url`), written by `ca init`
and `ca set` under the lock and read at each signing; leaves already issued keep
what they were issued with.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from . import names
from .errors import InputError
from .fsutil import write_atomic
from .profile import Profile

FILES = {"crl": "crl_url", "ocsp": "ocsp_url"}


def check_url(value: str, field: str) -> str:
    """An http:// URL with a host: CRL and OCSP fetches run over plain http (RFC 5280)."""
    rule = "must be an http:// URL, e.g. http://127.0.0.1:8888/"
    if not value or any(
        ord(ch) <= 0x20 or ord(ch) >= 0x7F or ch in "\"'\\$;{}<>`#," for ch in value
    ):
        raise InputError(field, f"{value!r} {rule}, without spaces, quotes, '$', ';' or '#'")
    try:
        parts = urlsplit(value)
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:  # e.g. http://[::1/ (an unclosed IPv6 bracket)
        raise InputError(field, f"{value!r} {rule} ({exc})") from None
    if parts.scheme != "http" or not hostname or "@" in parts.netloc:
        raise InputError(field, f"{value!r} {rule} (no credentials)")
    if port is not None and not 1 <= port <= 65535:
        raise InputError(field, f"{value!r}: the port must be a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise InputError(field, f"{value!r}: no query string or fragment allowed")
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        names.dns_name(hostname, field)
    return value


def configured(directory: Path, kind: str) -> str | None:
    """The KIND (crl, ocsp) URL stored in the profile DIRECTORY, or None."""
    try:
        text = (directory / FILES[kind]).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text or None


def write(directory: Path, kind: str, url: str | None) -> None:
    """Store URL (None removes it); the caller holds the lock or owns DIRECTORY."""
    path = directory / FILES[kind]
    if url is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    write_atomic(path, check_url(url, f"{kind}-url") + "\n", 0o644)


def set_urls(
    profile: Profile, changes: dict[str, str | None], lock_timeout: float | None = None
) -> dict[str, str | None]:
    """`ca set`: leaves issued from now on carry each URL of CHANGES (None: none)."""
    from .transaction import transaction

    for kind, url in changes.items():
        if url is not None:
            check_url(url, f"{kind}-url")
    with transaction(profile, "ca set", [], timeout=lock_timeout) as tx:
        for kind, url in changes.items():
            tx.note(FILES[kind], url)
            write(profile.dir, kind, url)
    return changes
