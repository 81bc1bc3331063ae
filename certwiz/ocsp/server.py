"""The responder's HTTP side: bound only to the address given, `openssl ocsp` (through
certwiz.openssl) for what is not cached, a pid file, and a clean stop on SIGTERM.

Connections are read by one asyncio loop, not by a thread each: an idle or slow
connection costs a socket and no thread, and is closed when its whole request has not
arrived within READ_TIMEOUT. At most MAX_CONNECTIONS are open at once; a new one closes
the oldest of the address holding the most. Answers about the profile's certificates
come from a cache (`_Answers`) or one openssl run per question; other requests wait in
a short queue of their own; openssl runs in a pool of MAX_PARALLEL threads (+1 for the
others). Before (attack round 10, F16) every connection had a thread and no timeout;
then (round 11, F3) every whole request queued an openssl run, unbounded, even for a
client that had left: any local user could exhaust the responder NGINX needs for every
handshake (it fails closed)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import io
import os
import signal
import socket
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization

from .. import check, database
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
    responder_cert,
    responder_key,
)

READ_TIMEOUT = 10.0  # seconds for a whole request (NGINX and openssl send theirs at once)
MAX_CONNECTIONS = 256  # open at once; a new one closes the oldest of the busiest address
MAX_HEAD = 128 * 1024  # request line and headers (a GET carries the request in its path)
BACKLOG = 4096  # connections the kernel holds until accepted (asyncio's 100 dropped SYNs)
ACCEPT_BATCH = 64  # accepted per turn of the loop (below MAX_CONNECTIONS: none closed at once)
CACHE_SECONDS = 60.0  # an answer is reused at most this long (and a fifth of nextUpdate)
MAX_CACHED = 4096  # answers kept (the least recently used go first)
MAX_OTHERS = 16  # requests about other certificates waiting for openssl; more get 503


@dataclass(frozen=True)
class _Settings:
    profile: Profile
    next_update_minutes: int


class _Handler(BaseHTTPRequestHandler):
    """http.server's parsing and replies, on a request already read whole (RAW) and
    into a buffer: the socket is the event loop's, never a thread's. After parsing,
    `request` is the DER OCSP request, or None and `output` is the refusal (4xx)."""

    server: Any  # the _Settings (BaseHTTPRequestHandler's name for it)
    protocol_version = "HTTP/1.0"
    server_version = "certwiz-ocsp"
    sys_version = ""

    def __init__(self, raw: bytes, peer: tuple[str, int], settings: _Settings) -> None:
        self.raw = raw
        self.request_der: bytes | None = None
        self.output = b""
        post = _plain_post(raw)
        if post is None:
            super().__init__(None, peer, settings)  # type: ignore[arg-type]
            return
        # what NGINX and openssl send: no header but Content-Length matters, and
        # http.server's header parsing (the email package) cost more than the answer
        self.client_address, self.server = peer, settings
        self.requestline, self.request_version, self.command = post[0], post[1], "POST"
        self.request_der = post[2]

    def setup(self) -> None:
        self.rfile = io.BytesIO(self.raw)
        self.wfile = self._out = io.BytesIO()

    def finish(self) -> None:
        self.output = self._out.getvalue()

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.fail(411, "Content-Length required")
            return
        if not 0 < length <= MAX_REQUEST:
            self.fail(413, f"an OCSP request is at most {MAX_REQUEST} bytes")
            return
        self.request_der = self.rfile.read(length)

    def do_GET(self) -> None:
        encoded = unquote(self.path.lstrip("/"))
        if not encoded or len(encoded) > MAX_REQUEST * 2:
            self.fail(400, "GET /BASE64-OF-DER-REQUEST (RFC 6960 A.1)")
            return
        try:
            self.request_der = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self.fail(400, "the path is not base64")

    def respond(self, body: bytes) -> bytes:
        """The reply carrying the DER OCSP response BODY."""
        self.wfile = self._out = io.BytesIO()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_RESPONSE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        return self._out.getvalue()

    def fail(self, status: int, text: str) -> bytes:
        self.wfile = self._out = io.BytesIO()
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return self._out.getvalue()

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


def _plain_post(raw: bytes) -> tuple[str, str, bytes] | None:
    """(request line, version, body) of `POST PATH HTTP/1.x` whose whole body (its
    Content-Length, at most MAX_REQUEST) arrived; None for anything else."""
    head, _, body = raw.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0]
    method, _, rest = line.partition(b" ")
    path, _, version = rest.partition(b" ")
    if method != b"POST" or version not in (b"HTTP/1.0", b"HTTP/1.1") or not path.isascii():
        return None
    if not 0 < _content_length(head) == len(body) <= MAX_REQUEST:
        return None
    return line.decode("ascii"), version.decode("ascii"), body


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


class Busy(Exception):
    """Too many requests about other certificates wait already (503)."""


def _inputs(profile: Profile) -> tuple[str, ...]:
    """What every answer depends on: the index, the CA certificate that signs leaves,
    the responder's certificate and key."""
    paths = (profile.index, profile.signing_cert, responder_cert(profile), responder_key(profile))
    return tuple(str(path) for path in paths)


def _state(paths: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """The files of PATHS (`_inputs`) as they are now: a change to any of them (a
    revocation rewrites index.txt) is a new state, so it reaches the very next answer."""
    found: list[tuple[int, ...]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append((0,))
            continue
        found.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(found)


@dataclass
class _Job:
    """One `openssl ocsp` run that requests with the same key wait for together."""

    gone: list[Callable[[], bool]]
    done: asyncio.Future[bytes | None]


class _Answers:
    """Signed answers, cached per certificate asked about until the state (`_state`)
    changes or CACHE_SECONDS pass: answering the same question again costs a dict look-up
    on the event loop, not an openssl run, so a local flood of requests costs its sender
    as much as the responder (attack round 11, F3).

    A request about ONE certificate of the profile (its serial in index.txt, the issuer
    hashes of the CA that signs leaves: what NGINX sends) is answered from the cache or
    by one openssl run that every request with the same question waits for; its nonce
    is not echoed (RFC 5019: answers made once for many). Every other request (another
    CA's or an unknown serial, several certificates) is answered by openssl as it came,
    one at a time, at most MAX_OTHERS waiting (more get 503), and skipped when its
    client has gone: a flood of made-up serials cannot delay the profile's own.
    """

    def __init__(self, settings: _Settings, pool: ThreadPoolExecutor) -> None:
        self.settings = settings
        self.pool = pool
        self.inputs = _inputs(settings.profile)  # paths built once: a request costs 4 stats
        self.lifetime = min(CACHE_SECONDS, settings.next_update_minutes * 60 / 5)
        self.state: tuple[tuple[int, ...], ...] | None = None
        self.known: frozenset[int] = frozenset()  # serials of index.txt
        self.ours: frozenset[tuple[str, bytes, bytes]] = frozenset()  # issuer hashes
        self.loading: asyncio.Future[None] | None = None
        self.cache: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self.keys: dict[bytes, bytes | None] = {}  # request as sent -> `_own`'s key
        # one job per question AND state: a request never joins a run started for an older
        # state (a revocation that returned reaches the next request, attack round 14, F6)
        self.pending: dict[tuple[tuple[tuple[int, ...], ...], bytes], _Job] = {}
        self.own_slots = asyncio.Semaphore(MAX_PARALLEL)
        self.other_slot = asyncio.Semaphore(1)
        self.others = 0

    def _load(self) -> tuple[frozenset[int], frozenset[tuple[str, bytes, bytes]]]:
        """The serials of index.txt and the issuer hashes of the CA (a thread's work)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509 import ocsp as x509_ocsp

        profile = self.settings.profile
        known = frozenset(e.serial_int for e in database.read(profile.index))
        ours: set[tuple[str, bytes, bytes]] = set()
        with contextlib.suppress(OSError, ValueError):
            ca = x509.load_pem_x509_certificate(profile.signing_cert.read_bytes())
            for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
                built = x509_ocsp.OCSPRequestBuilder().add_certificate(ca, ca, algorithm).build()
                ours.add((algorithm.name, built.issuer_name_hash, built.issuer_key_hash))
        return known, frozenset(ours)

    async def _current(self) -> tuple[tuple[int, ...], ...]:
        """The state now; the serials and hashes loaded for it (once, by one thread)."""
        state = _state(self.inputs)
        while state != self.state:
            if self.loading is None:
                self.loading = asyncio.get_running_loop().create_future()
                loading = self.loading
                try:
                    loaded = await asyncio.get_running_loop().run_in_executor(self.pool, self._load)
                    self.known, self.ours = loaded
                    self.state = state
                    self.cache.clear()
                    self.keys.clear()
                finally:
                    self.loading = None
                    loading.set_result(None)
            else:
                await asyncio.shield(self.loading)
            state = _state(self.inputs)
        return state

    def _own(self, request: bytes) -> bytes | None:
        """The request rebuilt about its one certificate (no nonce, no extensions) when
        it asks about one certificate of the profile; else None."""
        from cryptography.x509 import ocsp as x509_ocsp

        try:
            parsed = x509_ocsp.load_der_ocsp_request(request)
            issuer = (parsed.hash_algorithm.name, parsed.issuer_name_hash, parsed.issuer_key_hash)
            if issuer not in self.ours or parsed.serial_number not in self.known:
                return None
            canonical = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                parsed.issuer_name_hash,
                parsed.issuer_key_hash,
                parsed.serial_number,
                parsed.hash_algorithm,
            )
            return canonical.build().public_bytes(serialization.Encoding.DER)
        except (ValueError, TypeError):  # not one request cryptography reads: openssl's
            return None

    async def answer(self, request: bytes, gone: Callable[[], bool]) -> bytes | None:
        """The DER response to REQUEST; None when its client went away before its turn.
        Busy when too many other requests wait; openssl's errors as `ocsp.answer`'s."""
        state = await self._current()
        if request in self.keys:
            key = self.keys[request]
        else:
            key = self.keys[request] = self._own(request)
            if len(self.keys) > MAX_CACHED:
                self.keys.clear()  # made-up requests: start again rather than grow
        if key is None:
            return await self._other(request, gone)
        now = time.monotonic()
        cached = self.cache.get(key)
        if cached is not None and now - cached[0] < self.lifetime:
            self.cache.move_to_end(key)
            return cached[1]
        job = self.pending.get((state, key))
        if job is None:
            job = _Job([], asyncio.get_running_loop().create_future())
            self.pending[state, key] = job
            asyncio.get_running_loop().create_task(self._run(key, job, state))
        job.gone.append(gone)
        return await asyncio.shield(job.done)

    async def _run(self, key: bytes, job: _Job, state: tuple[tuple[int, ...], ...]) -> None:
        try:
            async with self.own_slots:
                if all(gone() for gone in job.gone):
                    body = None  # nobody waits for it any more
                else:
                    body = await asyncio.get_running_loop().run_in_executor(
                        self.pool, self._sign, key
                    )
        except Exception as exc:  # openssl's: every waiter gets it
            self.pending.pop((state, key), None)
            job.done.set_exception(exc)
            return
        self.pending.pop((state, key), None)
        if body is not None and state == self.state:  # not if the index changed meanwhile
            self.cache[key] = (time.monotonic(), body)
            while len(self.cache) > MAX_CACHED:
                self.cache.popitem(last=False)
        job.done.set_result(body)

    async def _other(self, request: bytes, gone: Callable[[], bool]) -> bytes | None:
        if self.others >= MAX_OTHERS:
            raise Busy
        self.others += 1
        try:
            async with self.other_slot:
                if gone():
                    return None
                return await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._sign, request
                )
        finally:
            self.others -= 1

    def _sign(self, request: bytes) -> bytes:
        return answer(self.settings.profile, request, self.settings.next_update_minutes)


class _Responder:
    """The event loop's side: connections in, requests answered, replies out."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(MAX_PARALLEL + 1, thread_name_prefix="certwiz-ocsp")
        self.answers = _Answers(settings, self.pool)
        # per peer address, its connections oldest first: being read, and waiting for
        # their answer (O(1) to find whom to close: a flood must not make each accept slow)
        self.reading: dict[str, OrderedDict[asyncio.StreamWriter, None]] = {}
        self.waiting: dict[str, OrderedDict[asyncio.StreamWriter, None]] = {}
        self.count = Counter[str]()

    def _add(self, table: dict[str, OrderedDict[asyncio.StreamWriter, None]], peer: str,
             writer: asyncio.StreamWriter) -> None:  # fmt: skip
        table.setdefault(peer, OrderedDict())[writer] = None
        self.count[peer] += 1

    def _drop(self, peer: str, writer: asyncio.StreamWriter) -> bool:
        """Forget WRITER; False if it was already closed for a newer connection."""
        for table in (self.reading, self.waiting):
            mine = table.get(peer)
            if mine is not None and writer in mine:
                del mine[writer]
                if not mine:
                    del table[peer]
                self.count[peer] -= 1
                if not self.count[peer]:
                    del self.count[peer]  # one entry per address connected now, not ever
                return True
        return False

    def is_open(self, peer: str, writer: asyncio.StreamWriter) -> bool:
        return writer in self.reading.get(peer, ()) or writer in self.waiting.get(peer, ())

    def _make_room(self) -> None:
        """When MAX_CONNECTIONS are open, close the oldest connection of the address that
        holds the most (one still being read first, else one waiting for its answer): a
        flood from one address costs that address its own connections, never another's.
        On the loopback every local process shares one address; there the oldest goes,
        and the answers' cache keeps every turn short."""
        if self.count.total() < MAX_CONNECTIONS:
            return
        busiest = max(self.count, key=self.count.__getitem__)
        table = self.reading if busiest in self.reading else self.waiting
        writer = next(iter(table[busiest]))
        self._drop(busiest, writer)
        writer.transport.abort()

    def close_all(self) -> None:
        for table in (self.reading, self.waiting):
            for mine in table.values():
                for writer in mine:
                    writer.transport.abort()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("unix", 0)
        address = str(peer[0])
        self._make_room()
        self._add(self.reading, address, writer)
        sent = False
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                raw = await _read_request(reader)
            if not self._drop(address, writer):  # closed for a newer connection meanwhile
                return
            self._add(self.waiting, address, writer)
            reply = await self._reply(raw, peer[:2], reader, writer)
            if reply is None or not self.is_open(address, writer):
                return
            writer.write(reply)
            async with asyncio.timeout(READ_TIMEOUT):
                await writer.drain()
            sent = True
        except (TimeoutError, OSError, asyncio.LimitOverrunError, ValueError):
            pass  # too slow, too large a head, or gone: closed without an answer
        finally:
            self._drop(address, writer)
            if sent:
                writer.close()  # after the reply
            else:
                writer.transport.abort()  # nothing waits to be sent to a client not reading

    async def _reply(
        self,
        raw: bytes,
        peer: tuple[str, int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bytes | None:
        """The bytes to send for RAW, or None when its client has gone meanwhile."""
        handler = _Handler(raw, peer, self.settings)
        if handler.request_der is None:
            return handler.output  # refused while parsing (4xx)

        def gone() -> bool:  # a client that closed (or was closed) waits for nothing
            return reader.at_eof() or writer.transport.is_closing()

        try:
            body = await self.answers.answer(handler.request_der, gone)
        except Busy:
            return handler.fail(503, "busy: too many requests about other certificates")
        except InputError as exc:
            return handler.fail(400, exc.rule)
        except CertwizError as exc:  # openssl could not parse or sign
            handler.log_message("openssl failed: %s", exc)
            return handler.fail(400 if "request" in str(exc).lower() else 500, "no OCSP response")
        return None if body is None else handler.respond(body)


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
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.create_server((listen.host, listen.port), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise CertwizError(f"cannot listen on {listen}: {exc.strerror}") from None
    # asyncio accepts up to `backlog` connections per turn of the loop (and listen()s
    # with it): a few per turn, so a burst is answered before the next is taken in,
    # while the kernel's queue stays long (a full queue drops SYNs: a 1 s retransmit)
    server = await asyncio.start_server(
        responder.connection, sock=sock, limit=MAX_HEAD, backlog=ACCEPT_BATCH
    )
    sock.listen(BACKLOG)
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
        responder.close_all()
        if held is not None:
            os.close(held)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
