"""The responder's HTTP side: bound only to the address given, one `openssl ocsp`
per request (through certwiz.openssl), a pid file, and a clean stop on SIGTERM.

Connections are read by one asyncio loop, not by a thread each: an idle or slow
connection costs a socket and no thread, and is closed when its whole request has not
arrived within READ_TIMEOUT. At most MAX_CONNECTIONS are open at once; a new one closes
the oldest still being read. A request read whole goes to a pool of MAX_PARALLEL threads
(one `openssl ocsp` each). Before (attack round 10, F16) every connection had a thread
and no timeout: idle local connections piled up threads forever, and the responder,
which NGINX needs for every handshake (it fails closed), could be exhausted by any
local user.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import io
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .. import check
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

READ_TIMEOUT = 10.0  # seconds for a whole request (NGINX and openssl send theirs at once)
MAX_CONNECTIONS = 256  # open at once; a new one closes the oldest still being read
MAX_HEAD = 128 * 1024  # request line and headers (a GET carries the request in its path)


@dataclass(frozen=True)
class _Settings:
    profile: Profile
    next_update_minutes: int


class _Handler(BaseHTTPRequestHandler):
    """http.server's parsing and replies, on a request already read whole (RAW) and
    into a buffer (`output`): the socket is the event loop's, never a thread's."""

    server: Any  # the _Settings (BaseHTTPRequestHandler's name for it)
    protocol_version = "HTTP/1.0"
    server_version = "certwiz-ocsp"
    sys_version = ""

    def __init__(self, raw: bytes, peer: tuple[str, int], settings: _Settings) -> None:
        self.raw = raw
        self.output = b""
        super().__init__(None, peer, settings)  # type: ignore[arg-type]

    def setup(self) -> None:
        self.rfile = io.BytesIO(self.raw)
        self.wfile = self._out = io.BytesIO()

    def finish(self) -> None:
        self.output = self._out.getvalue()

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
        settings: _Settings = self.server
        try:
            body = answer(settings.profile, request, settings.next_update_minutes)
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


def _content_length(head: bytes) -> int:
    """The Content-Length of a request head, 0 when there is none or it is not a number
    (the handler then answers 411)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip()) if value.strip().isdigit() else 0
    return 0


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """A request's head and (when it is small enough to answer) its body; what arrived
    before the client closed its side is answered too."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    length = _content_length(head)
    if not 0 < length <= MAX_REQUEST:
        return head  # the handler refuses it without the body (411, 413)
    try:
        return head + await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        return head + exc.partial


class _Responder:
    """The event loop's side: connections in, whole requests to the pool, replies out."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="certwiz-ocsp")
        self.open: dict[asyncio.StreamWriter, bool] = {}  # oldest first; True: being read

    def _make_room(self) -> bool:
        """Close the oldest connection still being read when MAX_CONNECTIONS are open;
        False when every open one is already answered (the new one is then closed)."""
        if len(self.open) < MAX_CONNECTIONS:
            return True
        for writer, reading in self.open.items():
            if reading:
                writer.transport.abort()
                del self.open[writer]
                return True
        return False

    def _answer(self, raw: bytes, peer: tuple[str, int]) -> bytes:
        return _Handler(raw, peer, self.settings).output

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._make_room():
            writer.transport.abort()
            return
        self.open[writer] = True
        sent = False
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                raw = await _read_request(reader)
            if writer not in self.open:  # closed for a newer connection meanwhile
                return
            self.open[writer] = False
            peer = writer.get_extra_info("peername") or ("unix", 0)
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self.pool, self._answer, raw, peer[:2])
            writer.write(reply)
            async with asyncio.timeout(READ_TIMEOUT):
                await writer.drain()
            sent = True
        except (TimeoutError, OSError, asyncio.LimitOverrunError, ValueError):
            pass  # too slow, too large a head, or gone: closed without an answer
        finally:
            self.open.pop(writer, None)
            if sent:
                writer.close()  # after the reply
            else:
                writer.transport.abort()  # nothing waits to be sent to a client not reading


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
    check.refuse_live_copy(profile)  # it would answer from a copy's index (round 11, F4)
    pid_file = pid_file or default_pid_file(profile)
    responder = _Responder(_Settings(profile, next_update_minutes))
    try:
        asyncio.run(_serve(responder, listen, pid_file, on_ready))
    finally:
        responder.pool.shutdown(wait=True, cancel_futures=True)


async def _serve(
    responder: _Responder,
    listen: Listen,
    pid_file: Path,
    on_ready: Callable[[Listen], None] | None,
) -> None:
    try:
        server = await asyncio.start_server(
            responder.connection, listen.host, listen.port, reuse_address=True, limit=MAX_HEAD
        )
    except OSError as exc:
        raise CertwizError(f"cannot listen on {listen}: {exc.strerror}") from None
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    held = None
    try:
        _claim(pid_file)  # first: the same pid file names the running responder's pid
        try:
            held = _one_per_profile(responder.settings.profile)
        except StateError:
            pid_file.unlink(missing_ok=True)  # ours: _claim just wrote it
            raise
        try:
            if on_ready is not None:
                on_ready(Listen(listen.host, server.sockets[0].getsockname()[1]))
            await stopping.wait()
        finally:
            with contextlib.suppress(FileNotFoundError):
                if running_pid(pid_file) in (os.getpid(), None):
                    pid_file.unlink()
    finally:
        server.close()
        for writer in list(responder.open):
            writer.transport.abort()
        if held is not None:
            os.close(held)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
