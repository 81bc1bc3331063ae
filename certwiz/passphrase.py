"""Passphrases: the rules for when one is needed, and where the CLI gets them.

The library takes a `Source`: a `Secret`, a provider (a callable returning a
Secret or None, e.g. one that prompts), or None. A provider is called only
when the passphrase is needed, after validation and before the lock, so a
service passes a Secret and the CLI passes `obtain`-based prompts.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import InputError
from .fsutil import read_small_text
from .openssl import Secret
from .profile import Profile

Provider = Callable[[], Secret | None]
Source = Secret | Provider | None

CA_ENV = "CERTWIZ_CA_PASSPHRASE"
P12_ENV = "CERTWIZ_P12_PASSPHRASE"
MAX_FILE_BYTES = 65536  # a passphrase file is one line; more is a mistake
MIN_LENGTH = 4  # openssl refuses shorter passphrases when it encrypts
PROMPT_TRIES = 3  # like ssh-keygen


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
            _check(first, label, min_length)
        except InputError as exc:
            problem = exc.rule
        else:
            if not confirm or getpass.getpass("Again, to confirm: ") == first:
                return Secret(first)
            problem = "the two passphrases differ"
        if attempt < PROMPT_TRIES:
            print(f"certwiz: {problem}; try again", file=sys.stderr, flush=True)
    raise InputError(label, f"{problem} ({PROMPT_TRIES} tries)")


def resolve(source: Source) -> Secret | None:
    """The Secret behind a Source (calls a provider)."""
    if source is None or isinstance(source, Secret):
        return source
    return source()


def signing_passphrase(profile: Profile, source: Source) -> Secret | None:
    """The CA passphrase; a provider is called only when the CA key is encrypted.

    A Secret given as such is passed on as it is (openssl ignores it for a plain key).
    """
    if isinstance(source, Secret):
        return source
    if not profile.ca_key_encrypted():
        return None
    secret = resolve(source)
    if secret is None:
        raise InputError(
            "ca-passphrase-file",
            f"the CA key of profile {profile.name} is "
            f"encrypted: give --ca-passphrase-file FILE or set {CA_ENV}",
        )
    return secret


def bundle_passphrase(source: Source, *, unencrypted: bool) -> Secret | None:
    """The PKCS#12 password: required unless the bundle is unencrypted on purpose (-u)."""
    if unencrypted:
        return None
    secret = resolve(source)
    if secret is None:
        raise InputError(
            "p12-passphrase-file",
            "no bundle password: give "
            f"--p12-passphrase-file FILE, set {P12_ENV}, or use -u for a "
            "bundle without a password",
        )
    return secret
