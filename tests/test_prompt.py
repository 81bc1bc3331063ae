"""Passphrases typed at a real terminal (a pty): checked early, asked again, labelled right.

certwiz runs in a pseudo-terminal made by pty.fork (so getpass reads /dev/tty, as for a
person); the test types the answers when the prompts appear.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import clean_env, snapshot

PROMPT_WAIT = 30.0  # a guard against a child stuck at a prompt, not a timing assertion


def typed(home: Path, args: list[str], script: list[tuple[str, str]]) -> tuple[int, str]:
    """Run certwiz on a pty; for each (prompt, answer) wait for the prompt, type the answer.

    Returns the exit code and everything the terminal showed.
    """
    env = clean_env(home)
    pid, fd = pty.fork()
    if pid == 0:  # the child: certwiz with the pty as its controlling terminal
        os.chdir(home.parent)
        os.execve(sys.executable, [sys.executable, "-m", "certwiz", *args], env)
    shown = b""
    seen = 0
    pending = list(script)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], PROMPT_WAIT)
            if not ready:
                raise AssertionError(f"certwiz hung; the terminal showed:\n{shown.decode()}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            while pending and pending[0][0].encode() in shown[seen:]:
                prompt, answer = pending.pop(0)
                seen = shown.index(prompt.encode(), seen) + len(prompt)
                os.write(fd, answer.encode() + b"\n")
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still waiting at a prompt nobody answers: end it (our child, by pid)
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert not pending, f"never asked {pending[0][0]!r}; the terminal showed:\n{shown.decode()}"
    return os.waitstatus_to_exitcode(status), shown.decode().replace("\r\n", "\n")


BUNDLE = "Password for bot-01.p12: "
AGAIN = "Again, to confirm: "


def test_short_answer_is_refused_before_the_confirmation_then_asked_again(
    cli, profile, home: Path
) -> None:
    code, shown = typed(
        home,
        ["client", "issue", "-p", "my-app", "-n", "bot-01"],
        [(BUNDLE, "abc"), (BUNDLE, "good-pass"), (AGAIN, "good-pass")],
    )
    assert code == 0, shown
    # The short answer was refused at once: one confirmation prompt in all, for the good one.
    assert shown.count(AGAIN) == 1
    assert "certwiz: a passphrase needs at least 4 characters; try again" in shown
    assert "p12-passphrase-file" not in shown
    bundle = pkcs12.load_pkcs12((home / "my-app/private/bot-01.p12").read_bytes(), b"good-pass")
    assert bundle.cert is not None


def test_differing_confirmation_asks_again(cli, profile, home: Path) -> None:
    code, shown = typed(
        home,
        ["client", "issue", "-p", "my-app", "-n", "bot-01"],
        [(BUNDLE, "first-pass"), (AGAIN, "other-pass"), (BUNDLE, "third-pass"),
         (AGAIN, "third-pass")],
    )  # fmt: skip
    assert code == 0, shown
    assert "certwiz: the two passphrases differ; try again" in shown
    bundle = pkcs12.load_pkcs12((home / "my-app/private/bot-01.p12").read_bytes(), b"third-pass")
    assert bundle.key is not None


def test_three_bad_answers_stop_with_one_line_and_nothing_written(cli, profile, home: Path) -> None:
    before = snapshot(profile.dir)
    code, shown = typed(
        home,
        ["client", "issue", "-p", "my-app", "-n", "bot-01"],
        [(BUNDLE, "ab"), (BUNDLE, "good-pass"), (AGAIN, "typo-pass"), (BUNDLE, "x")],
    )
    assert code == 2, shown
    assert shown.count(BUNDLE) == 3
    errors = [line for line in shown.splitlines() if line.startswith("certwiz: error:")]
    assert errors == [
        "certwiz: error: p12-passphrase: a passphrase needs at least 4 characters (3 tries)"
    ]
    assert "try again" not in shown.splitlines()[-1]
    assert snapshot(profile.dir) == before


def test_new_ca_key_at_the_prompt(cli, home: Path) -> None:
    ask = "Passphrase for the new CA key (empty: none): "
    code, shown = typed(
        home,
        ["ca", "init", "-p", "typed"],
        [(ask, "no"), (ask, "ca-secret"), (AGAIN, "ca-secret")],
    )
    assert code == 0, shown
    assert "ca-passphrase-file" not in shown.split("Next:")[0]
    assert b"ENCRYPTED" in (home / "typed/private/ca.key").read_bytes()
    assert "asks for its passphrase" in shown  # the Next: hint for an encrypted key
    # Signing asks for it, on the same terminal.
    code, shown = typed(
        home,
        ["server", "issue", "-p", "typed", "-n", "api.local"],
        [("Passphrase of the typed CA key: ", "ca-secret")],
    )
    assert code == 0, shown
    assert (home / "typed/issued/api.local.crt").is_file()
