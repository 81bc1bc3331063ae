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
from collections.abc import Sequence

from .. import openssl
from ..errors import CertwizError, InputError

NGINX_CMD_ENV = "CERTWIZ_NGINX_CMD"
DEFAULT_NGINX_CMD = "nginx"
# Debian puts nginx in /usr/sbin, which a non-login or non-root PATH often lacks.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
NGINX_TIMEOUT = 60


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


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run nginx (or --nginx-cmd) without the CERTWIZ_*PASSPHRASE variables: it needs none."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=openssl.child_env(),
            timeout=NGINX_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NginxError(f"{shlex.join(argv)} did not finish in {NGINX_TIMEOUT}s") from None
    except OSError as exc:
        raise NginxError(f"cannot run {argv[0]}: {exc.strerror}") from None


def test_config(argv: Sequence[str]) -> None:
    """`nginx -t`: raise NginxError with nginx's error line when the config is bad."""
    proc = _run([*argv, "-t"])
    if proc.returncode != 0:
        line = _telling_line(proc.stderr + proc.stdout, proc.returncode)
        raise NginxError(f"nginx -t failed, nginx NOT reloaded: {line}")


def reload(argv: Sequence[str]) -> None:
    """`nginx -t`, and only if it passes `nginx -s reload` (nginx reads the CRL at load)."""
    test_config(argv)
    proc = _run([*argv, "-s", "reload"])
    if proc.returncode != 0:
        line = _telling_line(proc.stderr + proc.stdout, proc.returncode)
        raise NginxError(f"nginx -s reload failed: {line}")
