"""Running the EST app: waitress, in the foreground, bound only where told.

waitress is pure Python (no C extension, no other dependency), maintained by the
Pylons project, production-grade (HTTP/1.1 parsing, request body limits, a thread
pool) and serves both TCP and unix sockets. The service answers a handful of
requests a day per device behind NGINX, so a thread pool is plenty.

`--listen 127.0.0.1:PORT` or `[::1]:PORT` (an IP literal: no name to resolve to
something unexpected), or `unix:/path` (the socket is made with `socket_mode`
before anyone can connect). NGINX sends the proxy secret there, so `certwiz serve`
also requires an address no other local user can take first (proxy.check_listener).
SIGTERM and SIGINT stop it cleanly: no new connections, the socket file removed, exit 0.
One log line per request, without secrets: peer, method, path, status, bytes, the name
involved, seconds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import check
from ..errors import CertwizError, InputError
from . import service, wire

LOG = logging.getLogger("certwiz.est")

# Idle connections (attack round 10, F16, checked for this service too): waitress reads
# every connection in one loop, so an idle one holds no thread; it is closed once it has
# been silent CHANNEL_TIMEOUT seconds (checked every CLEANUP_INTERVAL); beyond
# CONNECTION_LIMIT open at once waitress stops accepting until some close. Set here, not
# left to waitress's defaults (120 s, every 30 s, 100).
CHANNEL_TIMEOUT = 60
CLEANUP_INTERVAL = 10
CONNECTION_LIMIT = 256


@dataclass(frozen=True)
class Listen:
    """Where to bind: host and port, or a unix socket path."""

    host: str = ""
    port: int = 0
    unix: Path | None = None

    def url(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_listen(value: str) -> Listen:
    """`ADDRESS:PORT` (an IP literal, IPv6 in brackets) or `unix:/absolute/path`."""
    if value.startswith("unix:"):
        path = Path(value[len("unix:") :])
        if not path.is_absolute() or len(str(path)) > 100:
            raise InputError("listen", "unix:PATH needs an absolute path of at most 100 chars")
        if path.exists() and not stat.S_ISSOCK(path.lstat().st_mode):
            raise InputError("listen", f"{path} exists and is not a socket")
        if not path.parent.is_dir():
            raise InputError("listen", f"{path.parent} is not a directory")
        return Listen(unix=path)
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        address, port = None, 0
    if not sep or address is None or not 1 <= port <= 65535:
        raise InputError(
            "listen",
            f"{value!r}: give ADDRESS:PORT (an IP address, e.g. 127.0.0.1:8443) or unix:/path",
        )
    return Listen(host=str(address), port=port)


def parse_socket_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0o600 <= mode <= 0o666 or mode & 0o111 or not mode & 0o600 == 0o600:
        raise InputError("socket-mode", f"{value!r}: an octal mode such as 600 or 660")
    return mode


def trusted_addresses(values: list[str]) -> frozenset[str]:
    """The proxy addresses whose requests the service answers (IP literals)."""
    found = set()
    for value in values:
        try:
            found.add(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise InputError("trusted-proxy", f"{value!r} is not an IP address") from None
    return frozenset(found)


def logged(
    app: Callable[[dict[str, Any], Callable[..., Any]], list[bytes]],
    line: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    """APP, calling LINE once per request with what the request log shows."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, *rest)

        body = app(environ, start)
        path = str(environ.get("PATH_INFO", ""))
        line(
            {
                "peer": str(environ.get("REMOTE_ADDR", "")),
                "method": str(environ.get("REQUEST_METHOD", ""))[:16],
                "path": path if len(path) <= 120 else path[:120] + "...",
                "status": seen.get("status", 0),
                "bytes": sum(len(part) for part in body),
                "name": str(environ.get("certwiz.name", "")),
                "seconds": round(time.monotonic() - started, 3),
            }
        )
        return body

    return wrapper


def _answering(path: Path) -> bool:
    """Does a process accept connections on the unix socket PATH?"""
    import socket

    if not (path.exists() and stat.S_ISSOCK(path.lstat().st_mode)):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False  # a stale socket file a killed run left: it is replaced
    return True


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    if mask is None:
        yield
        return
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def run(
    settings: service.Settings,
    listen: Listen,
    *,
    socket_mode: int = 0o660,
    threads: int = 4,
    on_request: Callable[[dict[str, Any]], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; returns after a clean stop."""
    import waitress  # type: ignore[import-untyped]

    check.refuse_live_copy(settings.profile)  # it would enroll into a copy (round 11, F4)

    app = logged(service.make_app(settings), on_request or (lambda _: None))
    options: dict[str, Any] = {
        "threads": threads,
        # above the app's own cap (and nginx's 128k): the app refuses a large body with one
        # line and an audit record; waitress's own 413 would be a page and unrecorded
        "max_request_body_size": 8 * wire.MAX_REQUEST_BYTES,
        "ident": "certwiz-est",
        "expose_tracebacks": False,
        "channel_timeout": CHANNEL_TIMEOUT,
        "cleanup_interval": CLEANUP_INTERVAL,
        "connection_limit": CONNECTION_LIMIT,
    }
    if listen.unix is not None:
        options.update(unix_socket=str(listen.unix), unix_socket_perms=f"{socket_mode:o}")
    else:
        options.update(host=listen.host, port=listen.port)
    # a unix socket is born with no more than its final mode: nobody connects in between
    if listen.unix is not None and _answering(listen.unix):
        # waitress would unlink the socket of a running service and take its place
        raise CertwizError(f"cannot listen on {listen.url()}: a service is listening there")
    try:
        with _umask(0o777 & ~socket_mode if listen.unix is not None else None):
            server = waitress.create_server(app, **options)
    except OSError as exc:
        raise CertwizError(f"cannot listen on {listen.url()}: {exc.strerror}") from None

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready(listen.url())
        server.run()  # returns on SystemExit/KeyboardInterrupt, after the workers stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(OSError):
            server.close()
        if listen.unix is not None:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(listen.unix.lstat().st_mode):
                    listen.unix.unlink()
