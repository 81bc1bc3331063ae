"""Shared fixtures: a temporary certwiz home, the CLI as a real process, parsers."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from cryptography import x509

from certwiz import ca
from certwiz.profile import Profile

REPO = Path(__file__).resolve().parent.parent
CERTWIZ_PREFIX = "CERTWIZ_"
pytest_plugins = ["pytester"]  # tests of the hooks below


def in_ci() -> bool:
    """Whether this run is CI (`.ci/run` sets CI=true; "", 0, false and no mean not)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, install: str) -> NoReturn:
    """A real component a test needs is absent: under CI that FAILS, elsewhere it skips."""
    if in_ci():
        pytest.fail(f"CI is set but {what} is missing ({install}): this test must run here")
    pytest.skip(f"{what} is missing ({install})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI no test may skip: whatever skip a test (or a new one) reaches fails there.

    Every component the suite needs is installed by .ci/run; a skip in CI would be a
    green run that proved nothing.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI is set, so this test may not skip: {reason}"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def clean_env(
    home: Path | None = None, extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()
) -> dict[str, str]:
    """This environment without any CERTWIZ_ variable (nor those starting with DROP), then
    CERTWIZ_HOME=HOME if given, then EXTRA: what a shell on a fresh server has.

    The one helper for it: tests never inherit a CERTWIZ_ setting of the shell running them.
    """
    prefixes = (CERTWIZ_PREFIX, *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    if home is not None:
        env["CERTWIZ_HOME"] = str(home)
    env.update(extra or {})
    return env


def run_certwiz(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> Result:
    """certwiz as a user runs it: a separate process, no terminal on stdin."""
    proc = subprocess.run(
        [sys.executable, "-m", "certwiz", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        env=clean_env(home, env),
        cwd=cwd or home.parent,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


INVOKE_TIMEOUT = 120.0  # seconds, as run_certwiz's


class Hung(Exception):
    """An in-process certwiz call ran past INVOKE_TIMEOUT."""


def _hung(signum: int, frame: object) -> None:
    raise Hung(f"certwiz did not finish within {INVOKE_TIMEOUT:.0f} s")


def invoke(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> Result:
    """certwiz in this process (Typer's CliRunner): the same app, parsing, library and
    one-line error reporting as `run_certwiz`, without its ~0.3 s interpreter start.

    The `cli` fixture's way. What is about the process itself (argv, secrets in /proc,
    signals, a terminal, the entry point, the interpreter's exit) uses `run_certwiz`
    (`cli_process`). An exception escaping the app comes back as a traceback on stderr
    and exit 1, as a process shows it. Not thread-safe (it swaps os.environ, sys.std* and
    the working directory): call it from one thread.
    """
    from typer.testing import CliRunner

    from certwiz.cli import app

    wanted = clean_env(home, env)
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
    overrides.update(wanted)
    previous = Path.cwd()
    os.chdir(cwd or home.parent)
    guard = threading.current_thread() is threading.main_thread()
    if guard:  # what run_certwiz's timeout=120 is: a hung command fails, CI goes on
        old_handler = signal.signal(signal.SIGALRM, _hung)
        signal.setitimer(signal.ITIMER_REAL, INVOKE_TIMEOUT)
    try:
        done = CliRunner().invoke(
            app, list(args), input=stdin or "", env=overrides, prog_name="certwiz"
        )
    finally:
        if guard:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
        os.chdir(previous)
    stderr = done.stderr
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        stderr += "".join(traceback.format_exception(done.exception))
        return Result(1, done.stdout, stderr)
    return Result(done.exit_code, done.stdout, stderr)


def drop_certwiz_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's CERTWIZ_ variables gone for one test (clean_env's rule, in place)."""
    for key in set(os.environ) - set(clean_env()):
        monkeypatch.delenv(key)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    drop_certwiz_env(monkeypatch)
    path = tmp_path / "certs"
    monkeypatch.setenv("CERTWIZ_HOME", str(path))
    return path


@pytest.fixture
def cli(home: Path) -> Callable[..., Result]:
    """certwiz in HOME, in this process (`invoke`): for what the command does."""

    def call(*args: str, **kwargs: object) -> Result:
        return invoke(home, *args, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def cli_process(home: Path) -> Callable[..., Result]:
    """certwiz in HOME as a real process (`run_certwiz`): for what is about the process."""

    def call(*args: str, **kwargs: object) -> Result:
        return run_certwiz(home, *args, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def profile(home: Path) -> Profile:
    """A fresh profile 'my-app' with an unencrypted EC CA, made through the library."""
    return ca.init("my-app", home)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file below `directory` (mode, sha256): 'byte for byte unchanged' made checkable."""
    state: dict[str, tuple[int, str]] = {}
    if not directory.exists():
        return state
    for path in sorted(directory.rglob("*")):
        rel = str(path.relative_to(directory))
        if path.is_symlink():
            state[rel] = (0, "symlink->" + os.readlink(path))
        elif path.is_file():
            state[rel] = (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[rel] = (path.stat().st_mode, "dir")
    return state


def openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real openssl binary, run directly by a test (the hand-run side)."""
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=check)


def hand_sign(
    cnf: Path, work: Path, cn: str, *ca_args: str, subj: str = "", req_args: tuple[str, ...] = ()
) -> Path:
    """Sign a fresh EC key for /CN=cn with `openssl ca -config cnf` run by hand, as a user would.

    Extra arguments go to `openssl ca` (e.g. -extensions client_ext, -startdate ...);
    `subj` replaces the subject /CN=cn, `req_args` go to `openssl req`.
    """
    work.mkdir(parents=True, exist_ok=True)
    key, csr, crt = work / f"{cn}.key", work / f"{cn}.csr", work / f"{cn}.pem"
    subject = subj or f"/CN={cn}"
    openssl("req", *req_args, "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-subj", subject, "-out", str(csr))  # fmt: skip
    openssl("ca", "-batch", "-notext", "-config", str(cnf), "-in", str(csr), "-out", str(crt),
            *ca_args)  # fmt: skip
    return crt


def crl_check(ca_cert: Path, crl: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    """`openssl verify -crl_check`: the independent verdict on revocation."""
    return openssl("verify", "-crl_check", "-CAfile", str(ca_cert), "-CRLfile", str(crl),
                   str(cert), check=False)  # fmt: skip


def killed_at(
    where: str, action: Callable[[], object], *, after: bool = False, nth: int = 0
) -> None:
    """ACTION in a forked child, SIGKILLed at WHERE ("module.function"): when it calls that
    function for the NTH time (from 0), or, AFTER, once that call returned. The state a
    kill (an OOM kill, a hang-up, a Ctrl-C) at that exact step leaves, deterministically."""
    import importlib

    module_name, attr = where.rsplit(".", 1)
    pid = os.fork()
    if pid == 0:
        try:
            module = importlib.import_module(module_name)
            real = getattr(module, attr)
            calls = [0]

            def die(*args: object, **kwargs: object) -> object:
                if calls[0] < nth:
                    calls[0] += 1
                    return real(*args, **kwargs)
                if after:
                    real(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
                return None

            setattr(module, attr, die)
            action()
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "no kill landed"


def certwiz_argv(module: str = "", settings: Mapping[str, float] | None = None) -> list[str]:
    """python's arguments that run certwiz as `python -m certwiz` does, after replacing
    constants of MODULE (e.g. a service's timeout: a test need not wait the real one)."""
    if not settings:
        return ["-m", "certwiz"]
    lines = [f"import sys, {module} as m"] + [f"m.{k} = {v!r}" for k, v in settings.items()]
    lines += ["from certwiz.entry import main", "sys.argv[0] = 'certwiz'", "main()"]
    return ["-c", "\n".join(lines)]


def thread_count(pid: int) -> int:
    """How many threads process PID has now (/proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:", 1)[1].split()[0])


def closed_by_peer(sock: socket.socket, bound: float = 60) -> bool:
    """Whether the other end closed SOCK (EOF or reset) within BOUND seconds."""
    sock.settimeout(bound)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
