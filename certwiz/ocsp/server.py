"""The responder's HTTP side: bound only to the address given, one `openssl ocsp`
per request (through certwiz.openssl), a pid file, and a clean stop on SIGTERM."""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from ..errors import CertwizError, InputError, StateError
from ..profile import Profile
from . import (
    CONTENT_TYPE_RESPONSE,
    MAX_PARALLEL,
    MAX_REQUEST,
    NEXT_UPDATE_MINUTES,
    Listen,
    answer,
    check_ready,
    default_pid_file,
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "certwiz-ocsp"
    sys_version = ""

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._fail(411, "Content-Length required")
            return
        if not 0 < length <= MAX_REQUEST:
            self._fail(413, f"an OCSP request is at most {MAX_REQUEST} bytes")
            return
        self._respond(self.rfile.read(length))

    def do_GET(self) -> None:
        encoded = unquote(self.path.lstrip("/"))
        if not encoded or len(encoded) > MAX_REQUEST * 2:
            self._fail(400, "GET /BASE64-OF-DER-REQUEST (RFC 6960 A.1)")
            return
        try:
            request = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self._fail(400, "the path is not base64")
            return
        self._respond(request)

    def _respond(self, request: bytes) -> None:
        try:
            with self.server.slots:
                body = answer(self.server.profile, request, self.server.next_update_minutes)
        except InputError as exc:
            self._fail(400, exc.rule)
            return
        except CertwizError as exc:  # openssl could not parse or sign
            self._fail(400 if "request" in str(exc).lower() else 500, "no OCSP response")
            self.log_message("openssl failed: %s", exc)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_RESPONSE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, status: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"certwiz ocsp: {self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: Listen, profile: Profile, next_update_minutes: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        self.profile = profile
        self.next_update_minutes = next_update_minutes
        self.slots = threading.BoundedSemaphore(MAX_PARALLEL)
        super().__init__((listen.host, listen.port), _Handler)


# ---- pid file and the foreground loop -------------------------------------------------


def running_pid(pid_file: Path) -> int | None:
    """The pid in PID_FILE if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _one_per_profile(profile: Profile) -> int:
    """Hold PROFILE/.ocsp.lock for the responder's life (the fd returned): a second
    responder for the profile is refused whatever --pid-file it was given."""
    path = profile.dir / ".ocsp.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StateError(
            f"an OCSP responder already runs for profile {profile.name} (under another "
            "pid file); stop it first"
        ) from None
    return fd


def _claim(pid_file: Path) -> None:
    pid = running_pid(pid_file)
    if pid is not None and pid != os.getpid():
        raise StateError(f"an OCSP responder already runs (pid {pid}, {pid_file}); stop it first")
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def serve(
    profile: Profile,
    listen: Listen,
    *,
    pid_file: Path | None = None,
    next_update_minutes: int = NEXT_UPDATE_MINUTES,
    on_ready: Callable[[Listen], None] | None = None,
) -> None:
    """Answer OCSP requests on LISTEN until SIGTERM or SIGINT; then remove the pid file."""
    check_ready(profile)
    pid_file = pid_file or default_pid_file(profile)
    try:
        server = _Server(listen, profile, next_update_minutes)
    except OSError as exc:
        raise CertwizError(f"cannot listen on {listen}: {exc.strerror}") from None
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    held = None
    try:
        _claim(pid_file)  # first: the same pid file names the running responder's pid
        try:
            held = _one_per_profile(profile)
        except StateError:
            pid_file.unlink(missing_ok=True)  # ours: _claim just wrote it
            raise
        try:
            if on_ready is not None:
                on_ready(Listen(listen.host, server.server_address[1]))
            server.serve_forever(poll_interval=0.2)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if running_pid(pid_file) in (os.getpid(), None):
                    pid_file.unlink()
    finally:
        server.server_close()
        if held is not None:
            os.close(held)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
