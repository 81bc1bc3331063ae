"""The secret NGINX sends the EST service with every request it proxies.

The service believes `X-Client-Cert` only from its proxy. A unix socket's file mode
says who may connect; a TCP port on 127.0.0.1 does not (every local process can
connect and claim any client's certificate, which is public). So `nginx render
--enroll` also writes `est_proxy.inc` (0600: nginx's master reads its config as
root), which sets `X-Certwiz-Proxy` to a random secret kept in the profile
(`est-proxy.secret`, 0600), and `certwiz serve` answers only requests that carry it.
nginx's `proxy_set_header` replaces any copy a client sent.

The secret is made once, by whichever of the two runs first, under the profile lock
in a transaction (audited, never with the secret), and then only read.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ..fsutil import write_atomic
from ..profile import Profile
from ..transaction import Transaction, transaction

SECRET_FILE = "est-proxy.secret"
HEADER = "X-Certwiz-Proxy"
ENVIRON_KEY = "HTTP_X_CERTWIZ_PROXY"
MAX_CHARS = 256


def path_of(profile: Profile) -> Path:
    return profile.dir / SECRET_FILE


def read(profile: Profile) -> str | None:
    """The secret, or None before it was made (a damaged file reads as no secret)."""
    try:
        with open(path_of(profile), "rb") as handle:
            text = handle.read(MAX_CHARS + 1).decode("ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text if 32 <= len(text) <= MAX_CHARS and text.isascii() else None


def ensure_in(tx: Transaction) -> str:
    """The secret, made inside TX (under the lock) when there is none yet."""
    found = read(tx.profile)
    if found is not None:
        return found
    made = secrets.token_urlsafe(32)
    write_atomic(path_of(tx.profile), made + "\n", 0o600)
    tx.note("est_proxy_secret", "created")
    return made


def ensure(profile: Profile, timeout: float | None = None) -> str:
    """The secret, made in a transaction of its own only when missing."""
    found = read(profile)
    if found is not None:
        return found
    with transaction(profile, "est proxy secret", timeout=timeout) as tx:
        return ensure_in(tx)
