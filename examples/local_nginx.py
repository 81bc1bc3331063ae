"""Run a private nginx in front of the echo backend: for the tests and `make demo`.

Everything nginx writes (pid file, logs, temp files, its nginx.conf wrapper
rendered from nginx/standalone.conf.j2) lives under one prefix directory; it
listens on 127.0.0.1 only, on the port the rendered mtls_proxy.conf names.

    python examples/local_nginx.py up RUNDIR PROFILE SERVER   # prints the HTTPS port
    python examples/local_nginx.py down RUNDIR                # stops both, by pid
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from certwiz import nginx as certwiz_nginx
from certwiz.nginx.workers import alive, children

START_TIMEOUT = 20.0


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_privileged_port() -> int:
    """A port below 1024 on 127.0.0.1 nobody listens on right now (needs root, as CI is):
    `certwiz serve` on TCP takes only ports no other local user can bind."""
    import random

    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except PermissionError:
                raise RuntimeError("binding a port below 1024 needs root") from None
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024 on 127.0.0.1")


def wait_for(condition: object, what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll CONDITION (a callable) until true; raise TimeoutError naming WHAT."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = START_TIMEOUT) -> None:
    """Signal PID and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    wait_for(lambda: not alive(pid), f"process {pid} to exit", timeout)


class LocalNginx:
    """nginx in the foreground (`daemon off`) as our child, all its state under PREFIX."""

    def __init__(
        self, prefix: Path, site: Path | Sequence[Path], binary: str | None = None
    ) -> None:
        found = binary or certwiz_nginx.find_binary("nginx")
        if found is None:
            raise FileNotFoundError("nginx not found; install it: apt-get install nginx")
        self.binary = found
        self.prefix = prefix.absolute()
        self.sites = [p.absolute() for p in ([site] if isinstance(site, Path) else site)]
        self.conf = self.prefix / "nginx.conf"
        self.pid_file = self.prefix / "nginx.pid"
        self.error_log = self.prefix / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_directives: list[str] = []  # extra lines for http { } (tests)

    @property
    def words(self) -> list[str]:
        """The nginx command for this instance (what --nginx-cmd takes)."""
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf)]

    @property
    def command(self) -> str:
        return shlex.join(self.words)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "nginx is not started"
        return self.proc.pid

    def start(self) -> LocalNginx:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._main_conf())
        certwiz_nginx.test_config(self.words)
        with open(self.prefix / "stderr.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*self.words, "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        # nginx writes its pid file after it has bound its listening sockets.
        try:
            wait_for(self._started, "nginx to write its pid file")
            # ... and before its workers exist: callers compare worker sets across reloads.
            wait_for(lambda: bool(self.workers()), "nginx to start its workers")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.log_tail()}") from None
        return self

    def _main_conf(self) -> str:
        return certwiz_nginx.render_standalone(
            self.prefix, self.sites, http_directives=self.http_directives
        )

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return int(self.pid_file.read_text().strip() or 0) == self.pid
        except (OSError, ValueError):
            return False

    def workers(self) -> set[int]:
        return children(self.pid)

    @contextlib.contextmanager
    def reloading(self) -> Iterator[None]:
        """Around something that reloads nginx: on exit, wait until only new workers serve."""
        before = self.workers()
        yield
        try:
            wait_for(
                lambda: bool(self.workers()) and not self.workers() & before,
                "nginx to replace its workers after a reload",
            )
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None

    def reload(self) -> None:
        """nginx -t, nginx -s reload (certwiz's own code path), then wait for new workers."""
        with self.reloading():
            certwiz_nginx.reload(self.words)

    def serve(self, sites: Sequence[Path]) -> None:
        """Include SITES (in this order) instead, and reload."""
        self.sites = [p.absolute() for p in sites]
        self.conf.write_text(self._main_conf())
        self.reload()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 15) -> str:
        text = ""
        for log in (self.prefix / "stderr.log", self.error_log):
            if log.is_file():
                text += "".join(log.read_text(errors="replace").splitlines(True)[-lines:])
        return text


def _up(rundir: Path, profile: str, server: str) -> None:
    """Start the echo backend and nginx detached; record their pids; print the HTTPS port."""
    rundir.mkdir(parents=True, exist_ok=True)
    port_file = rundir / "backend.port"
    port_file.unlink(missing_ok=True)
    # Detached, with its output in a file: holding our stdout open would keep a
    # shell's $(local_nginx.py up ...) waiting for ever.
    with open(rundir / "backend.log", "ab") as log:
        backend = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("echo_backend.py")),
                "--port-file",
                str(port_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    (rundir / "backend.pid").write_text(f"{backend.pid}\n")
    wait_for(port_file.is_file, "the echo backend to listen")
    https_port = free_port()
    out = rundir / "conf"
    render = subprocess.run(
        [
            sys.executable,
            "-m",
            "certwiz",
            "nginx",
            "render",
            "-p",
            profile,
            "--server",
            server,
            "--upstream",
            f"http://127.0.0.1:{port_file.read_text().strip()}",
            "--listen",
            f"127.0.0.1:{https_port}",
            "--out",
            str(out),
        ],
        stdout=sys.stderr,
        check=False,
    )
    if render.returncode != 0:
        raise SystemExit(render.returncode)
    server_nginx = LocalNginx(rundir / "nginx", out / certwiz_nginx.SITE_CONF).start()
    (rundir / "nginx.cmd").write_text(server_nginx.command + "\n")
    print(https_port)


def _down(rundir: Path) -> None:
    """Stop what `up` started, by the pids it recorded (nginx: its own pid file)."""
    for pid_file in (rundir / "nginx" / "nginx.pid", rundir / "backend.pid"):
        with contextlib.suppress(OSError, ValueError):
            stop_pid(int(pid_file.read_text().strip()))
            pid_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description="a local nginx + echo backend for the demo")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up")
    up.add_argument("rundir", type=Path)
    up.add_argument("profile")
    up.add_argument("server")
    down = sub.add_parser("down")
    down.add_argument("rundir", type=Path)
    args = parser.parse_args()
    if args.action == "up":
        _up(args.rundir.absolute(), args.profile, args.server)
    else:
        _down(args.rundir.absolute())


if __name__ == "__main__":
    main()
