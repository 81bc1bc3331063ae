"""Passphrases: the rules for when one is needed, and what one may be.

The library takes a `Source`: a `Secret`, a provider (a callable returning a
Secret or None, e.g. one that prompts), or None. A provider is called only
when the passphrase is needed, after validation and before the lock, so a
service passes a Secret and the CLI passes prompts (`cli/prompts.py`: files,
environment variables, the terminal; none of that is the library's business).
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import InputError
from .openssl import Secret
from .profile import Profile

Provider = Callable[[], Secret | None]
Source = Secret | Provider | None

CA_ENV = "CERTWIZ_CA_PASSPHRASE"
P12_ENV = "CERTWIZ_P12_PASSPHRASE"
MIN_LENGTH = 4  # openssl refuses shorter passphrases when it encrypts


def check_text(text: str, field: str, min_length: int = MIN_LENGTH) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise InputError(field, "a passphrase cannot hold a newline or NUL")
    if len(text) < min_length:
        raise InputError(field, f"a passphrase needs at least {min_length} characters")
    return text


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
