"""The only place that starts `openssl`.

Secrets are handed over through pipes (`fd:N`), never on the command line,
and a failure becomes one OpenSSLError that carries openssl's telling line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CertwizError
from .errors import OpenSSLError as OpenSSLError  # callers catch openssl.OpenSSLError


@dataclass(frozen=True)
class Secret:
    """A passphrase argument; `run` turns it into `fd:N` with the text behind a pipe."""

    text: str

    def __repr__(self) -> str:
        return "Secret(***)"


Arg = str | Path | Secret

_ERROR_LINE = re.compile(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):")


def binary() -> str:
    """The openssl to run: $CERTWIZ_OPENSSL, else the one on PATH."""
    name = os.environ.get("CERTWIZ_OPENSSL", "openssl")
    found = shutil.which(name)
    if found is None:
        raise CertwizError(
            f"openssl not found ({name!r}); install it, e.g. apt-get install openssl"
        )
    return found


def explain(stderr: str) -> str:
    """Pick the line of openssl's stderr that tells a user what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m]
    plain = [
        line
        for line in lines
        if not _ERROR_LINE.match(line)
        and not line.startswith(("Using configuration", "Check that"))
    ]
    parts = plain[:1] + [r for r in reasons[:1] if not plain or r not in plain[0]]
    text = ": ".join(parts) or "no error message"
    # a wrong passphrase surfaces as any of these (OpenSSL 3 may also say "unsupported")
    if re.search(
        r"bad decrypt|read (CA )?private key|unable to load.*key|could not read key", stderr, re.I
    ):
        text += " (is the passphrase right?)"
    return text


def _pipe_with(text: str) -> int:
    """A pipe whose read end yields `text` and a newline, then end of file."""
    read_fd, write_fd = os.pipe()
    data = (text + "\n").encode()
    try:
        if len(data) > 65536:  # larger than a pipe buffer: the write would block
            raise CertwizError("a passphrase longer than 64 KiB is not supported")
        os.write(write_fd, data)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


def build_argv(args: Sequence[Arg], fds: list[int]) -> list[str]:
    """The argv for `args`, each Secret replaced by a fresh pipe's `fd:N`."""
    argv = [binary()]
    for arg in args:
        if isinstance(arg, Secret):
            fd = _pipe_with(arg.text)
            fds.append(fd)
            argv.append(f"fd:{fd}")
        else:
            argv.append(str(arg))
    return argv


def child_env() -> dict[str, str]:
    """Our environment minus CERTWIZ_*PASSPHRASE and CERTWIZ_*TOKEN (the agent's enrollment
    token), for every child (openssl, nginx).

    openssl gets secrets by pipe only; nginx needs none.
    """
    return {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("CERTWIZ_") and k.endswith(("PASSPHRASE", "TOKEN")))
    }


def run(args: Sequence[Arg], *, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    """Run `openssl ARGS...` and return its stdout; raise OpenSSLError on failure.

    Files openssl creates get mode 0600 (umask 077): callers widen what is public.
    """
    return run_both(args, cwd=cwd, stdin=stdin)[0]


def run_both(
    args: Sequence[Arg], *, cwd: Path | None = None, stdin: bytes | None = None
) -> tuple[str, str]:
    """Like `run`, but return (stdout, stderr): `pkcs12 -info` reports on stderr."""
    out, err = _run_raw(args, cwd=cwd, stdin=stdin)
    return out.decode(errors="replace"), err.decode(errors="replace")


def run_bytes(args: Sequence[Arg], *, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """`run` for binary output (DER): stdout exactly as openssl wrote it."""
    return _run_raw(args, cwd=cwd, stdin=stdin)[0]


def _run_raw(args: Sequence[Arg], *, cwd: Path | None, stdin: bytes | None) -> tuple[bytes, bytes]:
    """The one place openssl runs: (stdout, stderr) as bytes, OpenSSLError on failure."""
    fds: list[int] = []
    try:
        argv = build_argv(args, fds)
        proc = subprocess.run(
            argv,
            cwd=cwd,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            pass_fds=fds,
            umask=0o077,
            env=child_env(),
            check=False,
        )
    finally:
        for fd in fds:
            os.close(fd)
    if proc.returncode != 0:
        command = str(args[0]) if args else "?"
        stderr = proc.stderr.decode(errors="replace")
        raise OpenSSLError(command, explain(stderr), proc.returncode, stderr)
    return proc.stdout, proc.stderr


def jobs() -> int:
    """How many openssl processes to run at once: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_concurrently(
    chains: Sequence[Sequence[Sequence[Arg]]],
    *,
    workers: int | None = None,
    done: Callable[[int], None] | None = None,
) -> None:
    """Run each chain (commands run in order) concurrently with the others, `workers`
    chains at a time (default: every core); `done(i)` after chain i finished.

    The first failure stops what has not started and is raised once the running
    chains end. Each command goes through `run`: secrets by pipe, same errors.
    """

    from concurrent.futures import (
        FIRST_EXCEPTION,
        ThreadPoolExecutor,
        wait,
    )  # here: only batch runs need threads

    def chain(index: int) -> int:
        for command in chains[index]:
            run(command)
        return index

    with ThreadPoolExecutor(workers or jobs()) as pool:
        pending = {pool.submit(chain, i) for i in range(len(chains))}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    index = future.result()  # raises the chain's failure
                    if done is not None:
                        done(index)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
