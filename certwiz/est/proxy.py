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

NGINX sends the secret to whatever listens at the `--enroll` address, so that
address must be one no other local user can occupy (`check_listener`, enforced by
both `nginx render --enroll` and `certwiz serve --listen`): a TCP port below
`net.ipv4.ip_unprivileged_port_start` (1024; only root or CAP_NET_BIND_SERVICE can
bind it), or a unix socket in a directory that only root, this user or the
profile's owner can create names in, all the way up (a sticky ancestor such as /tmp
is fine above a directory such as /tmp/x owned by one of them: nobody else can
replace it), and outside the certwiz home.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ..errors import InputError
from ..fsutil import unsafe_ancestor, write_atomic
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


PORT_START_FILE = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start() -> int:
    """The lowest port any user may bind (Linux default 1024)."""
    try:
        return int(PORT_START_FILE.read_text().strip())
    except (OSError, ValueError):
        return 1024


def check_listener(
    field: str, profile: Profile, *, port: int = 0, unix: Path | None = None
) -> None:
    """InputError (FIELD) unless the EST listener is one no other local user can take
    first, while the service is down, to harvest the secret NGINX sends it."""
    if unix is None:
        start = unprivileged_port_start()
        if port >= start:
            raise InputError(
                field,
                f"port {port} can be bound by any local user, who would receive the proxy "
                f"secret; use a port below {start} or unix:/run/certwiz/est.sock",
            )
        return
    _check_socket_dir(field, profile, unix)


def _check_socket_dir(field: str, profile: Profile, path: Path) -> None:
    """Every existing directory above PATH is owned by root, this user or the profile's
    owner; the deepest existing one (where the socket, or its missing parents, will be
    made) is writable by nobody else; a higher one may be, only with the sticky bit
    (`fsutil.unsafe_ancestor`, the walk every directory check uses)."""
    home = profile.home.expanduser().resolve()
    parent = path.parent.resolve()
    if parent == home or home in parent.parents:
        raise InputError(
            field, f"{path} is inside the certwiz home {home}; put it in /run/certwiz/"
        )
    owner = profile.dir.stat().st_uid
    found = unsafe_ancestor(path.parent, owners={owner}, sticky_deepest=False)
    if found is None:
        return
    if found.uid is not None:
        problem = f"is owned by uid {found.uid}"
    else:
        problem = f"is writable by others (mode {found.mode:o})"
    raise InputError(
        field,
        f"{found.directory} {problem}: another user could bind the socket first and receive "
        "the proxy secret; use a directory only root or this user may write, "
        "such as /run/certwiz/ (mode 755)",
    )
