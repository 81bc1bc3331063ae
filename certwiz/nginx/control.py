"""Run the operator's nginx: `nginx -t`, then `nginx -s reload`.

The nginx command comes from --nginx-cmd, $CERTWIZ_NGINX_CMD or `nginx` on PATH
(then the sbin directories), and runs without certwiz's passphrase variables.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import openssl
from ..errors import CertwizError, InputError
from . import workers

NGINX_CMD_ENV = "CERTWIZ_NGINX_CMD"
DEFAULT_NGINX_CMD = "nginx"
# Debian puts nginx in /usr/sbin, which a non-login or non-root PATH often lacks.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
NGINX_TIMEOUT = 60
RELOAD_TIMEOUT_ENV = "CERTWIZ_RELOAD_TIMEOUT"
RELOAD_TIMEOUT = 30.0


class NginxError(CertwizError):
    """nginx -t or nginx -s reload failed; the message holds nginx's telling line."""


def command_words(spec: str | None = None) -> list[str]:
    """The nginx command as words: SPEC, else $CERTWIZ_NGINX_CMD, else `nginx` (shlex)."""
    text = spec if spec is not None else os.environ.get(NGINX_CMD_ENV, DEFAULT_NGINX_CMD)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError("nginx-cmd", f"{text!r} does not parse as a command: {exc}") from None
    if not words:
        raise InputError("nginx-cmd", "must not be empty; e.g. 'nginx -c /etc/nginx/nginx.conf'")
    return words


def find_binary(name: str = "nginx") -> str | None:
    """NAME on PATH, else in the sbin directories (absent from many PATHs)."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def resolve(words: Sequence[str]) -> list[str]:
    """WORDS with the program replaced by its full path; a CertwizError when missing."""
    found = find_binary(words[0])
    if found is None:
        raise CertwizError(
            f"nginx not found ({words[0]!r}); install it (apt-get install "
            f"nginx) or give --nginx-cmd / {NGINX_CMD_ENV}"
        )
    reload_timeout()  # a bad $CERTWIZ_RELOAD_TIMEOUT is refused before anything changes
    return [found, *words[1:]]


def reload_hint(words: Sequence[str]) -> str:
    """The one command a user runs to make nginx read a new CRL."""
    return f"{shlex.join([*words, '-t'])} && {shlex.join([*words, '-s', 'reload'])}"


_LOG_PREFIX = re.compile(
    r"^(?:nginx: )?(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(\[\w+\]) (?:\d+#\d+: )?"
)


def _telling_line(output: str, returncode: int) -> str:
    """nginx's most severe message, without its time stamp and pid."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for level in ("[emerg]", "[alert]", "[crit]", "[error]"):
        for line in lines:
            if level in line:
                return _LOG_PREFIX.sub(r"nginx: \1 ", line)
    return lines[-1] if lines else f"exit code {returncode}"


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run nginx (or --nginx-cmd) without the CERTWIZ_*PASSPHRASE variables: it needs none.
    Its output is bytes: `nginx -T` copies the config files, whatever their encoding."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=openssl.child_env(),
            timeout=NGINX_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NginxError(f"{shlex.join(argv)} did not finish in {NGINX_TIMEOUT}s") from None
    except OSError as exc:
        raise NginxError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _text(proc: subprocess.CompletedProcess[bytes]) -> str:
    """nginx's stderr and stdout as text; a byte that is not UTF-8 (a config comment in
    Latin-1) becomes a lone surrogate, so the paths in it still name the files (as
    doctor reads configs)."""
    return (proc.stderr + proc.stdout).decode("utf-8", "surrogateescape")


def _telling(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The telling line, printable (undecodable bytes as \\xNN)."""
    text = (proc.stderr + proc.stdout).decode("utf-8", "backslashreplace")
    return _telling_line(text, proc.returncode)


def test_config(argv: Sequence[str]) -> str:
    """`nginx -t` (as `-V -T`: the same test, plus the build options and the config,
    which tell where the pid file is); NginxError with nginx's line when it fails."""
    proc = _run([*argv, "-V", "-T"])
    if proc.returncode != 0:
        raise NginxError(f"nginx -t failed, nginx NOT reloaded: {_telling(proc)}")
    return _text(proc)


def reload_timeout() -> float:
    """Seconds `reload` waits for the new workers: $CERTWIZ_RELOAD_TIMEOUT, default 30."""
    text = os.environ.get(RELOAD_TIMEOUT_ENV, str(RELOAD_TIMEOUT))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise InputError(RELOAD_TIMEOUT_ENV, f"{text!r} must be a number of seconds from 0 to 3600")
    return value


@dataclass(frozen=True)
class Reloaded:
    """How a reload went: nginx's master, and how long until only new workers served."""

    master: int | None
    seconds: float
    note: str = ""


def reload(
    argv: Sequence[str],
    timeout: float | None = None,
    refuse: Callable[[str], list[str]] | None = None,
) -> Reloaded:
    """`nginx -t`; only if it passes `nginx -s reload`; then wait until the new config
    serves: the master runs new workers and every old one stopped accepting (its
    graceful exit), at most TIMEOUT seconds, else NginxError (nginx reads the CRL at
    load, so before that a revoked client still gets in). REFUSE: what, in the
    `nginx -T` output, forbids the reload (NginxError naming it, nothing reloaded)."""
    limit = reload_timeout() if timeout is None else timeout
    output = test_config(argv)
    try:
        problems = refuse(output) if refuse is not None else []
    except Exception as exc:  # after a revocation: one line, never a traceback
        raise NginxError(
            f"nginx NOT reloaded: cannot check the configuration it would load "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if problems:
        raise NginxError("nginx NOT reloaded: " + "; ".join(problems))
    pid_file = workers.pid_path(list(argv), output)
    master = workers.master_pid(pid_file)
    old = workers.children(master) if master is not None else set()
    start = time.monotonic()
    proc = _run([*argv, "-s", "reload"])
    if proc.returncode != 0:
        raise NginxError(f"nginx -s reload failed: {_telling(proc)}")
    if master is None:
        where = pid_file or "no pid file in nginx -V -T"
        return Reloaded(None, 0.0, f"not waited for the new workers: no nginx master at {where}")
    still = workers.wait_replaced(master, old, limit)
    if still:
        raise NginxError(
            f"nginx -s reload sent, but after {limit:g}s nginx's old worker(s) "
            f"{', '.join(map(str, still))} still accept connections with the old "
            f"configuration (a failed reload is in nginx's error log; a busy nginx may "
            f"need a larger {RELOAD_TIMEOUT_ENV})"
        )
    return Reloaded(master, time.monotonic() - start)
