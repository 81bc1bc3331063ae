"""Where the CLI gets a passphrase: --FIELD FILE, then an environment variable, then
a terminal prompt (like ssh-keygen). The rules for what a passphrase may be, and when
one is needed, are the library's (`certwiz.passphrase`); this is only the asking.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from ..errors import InputError
from ..fsutil import read_small_text, require_safe_source
from ..openssl import Secret
from ..passphrase import MIN_LENGTH, check_text

MAX_FILE_BYTES = 65536  # a passphrase file is one line; more is a mistake
PROMPT_TRIES = 3  # like ssh-keygen


def _from_file(path: Path, field: str) -> str:
    require_safe_source(field, path, secret=True)  # nobody else chose or can read it
    text = read_small_text(path, field, MAX_FILE_BYTES)
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise InputError(field, f"{path} is empty: the passphrase is its first line")
    return lines[0]


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def obtain(
    file: Path | None,
    env_var: str,
    field: str,
    prompt: str,
    *,
    confirm: bool,
    min_length: int = MIN_LENGTH,
) -> Secret | None:
    """The passphrase from --FIELD FILE, then $ENV_VAR, then a terminal prompt.

    Returns None when there is no source, or the prompt was answered empty.
    `min_length` 1 is for reading what another tool encrypted (any password opens it).
    """
    if file is not None:
        return Secret(check_text(_from_file(file, field), field, min_length))
    if env_var in os.environ:
        return Secret(check_text(os.environ[env_var], env_var, min_length))
    if not _interactive():
        return None
    return _prompt(field.removesuffix("-file"), prompt, confirm=confirm, min_length=min_length)


def _prompt(label: str, prompt: str, *, confirm: bool, min_length: int) -> Secret | None:
    """Ask on the terminal, like ssh-keygen: the length checked before the confirmation,
    and again after a bad answer, PROMPT_TRIES times in all.

    An error names `label` (e.g. p12-passphrase), not a file option nobody used.
    """
    problem = ""
    for attempt in range(1, PROMPT_TRIES + 1):
        first = getpass.getpass(prompt)
        if not first:
            return None
        try:
            check_text(first, label, min_length)
        except InputError as exc:
            problem = exc.rule
        else:
            if not confirm or getpass.getpass("Again, to confirm: ") == first:
                return Secret(first)
            problem = "the two passphrases differ"
        if attempt < PROMPT_TRIES:
            print(f"certwiz: {problem}; try again", file=sys.stderr, flush=True)
    raise InputError(label, f"{problem} ({PROMPT_TRIES} tries)")
