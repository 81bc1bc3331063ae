"""Where passphrases come from: a file, an environment variable, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from .errors import InputError
from .fsutil import read_small_text
from .openssl import Secret

CA_ENV = "CERTWIZ_CA_PASSPHRASE"
P12_ENV = "CERTWIZ_P12_PASSPHRASE"
MAX_FILE_BYTES = 65536  # a passphrase file is one line; more is a mistake
MIN_LENGTH = 4  # openssl refuses shorter passphrases when it encrypts


def _from_file(path: Path, field: str) -> str:
    text = read_small_text(path, field, MAX_FILE_BYTES)
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise InputError(field, f"{path} is empty: the passphrase is its first line")
    return lines[0]


def _check(text: str, field: str, min_length: int = MIN_LENGTH) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise InputError(field, "a passphrase cannot hold a newline or NUL")
    if len(text) < min_length:
        raise InputError(field, f"a passphrase needs at least {min_length} characters")
    return text


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
        return Secret(_check(_from_file(file, field), field, min_length))
    if env_var in os.environ:
        return Secret(_check(os.environ[env_var], env_var, min_length))
    if not _interactive():
        return None
    first = getpass.getpass(prompt)
    if not first:
        return None
    if confirm and getpass.getpass("Again, to confirm: ") != first:
        raise InputError(field, "the two passphrases differ")
    return Secret(_check(first, field, min_length))
