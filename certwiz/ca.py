"""Creating a profile: the CA key, the self-signed root and an empty database."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import audit, leaf_urls, names, ocsp, openssl
from . import openssl_args as args
from .errors import InputError, StateError
from .fsutil import building, make_dirs, unsafe_directory, write_atomic
from .openssl import Secret
from .passphrase import Source, resolve
from .profile import Profile, home_dir
from .render import cnf_escape, render_openssl

DEFAULT_CA_DAYS = 3650
DEFAULT_CRL_DAYS = 90
UNENCRYPTED_CA_KEY = (
    "no CA passphrase given (no terminal, no --ca-passphrase-file, "
    "no CERTWIZ_CA_PASSPHRASE): the CA key is stored unencrypted"
)


@dataclass(frozen=True)
class CAOptions:
    common_name: str | None = None
    key_type: str = "ec:P-256"
    days: int = DEFAULT_CA_DAYS
    crl_days: int = DEFAULT_CRL_DAYS
    ocsp_url: str | None = None  # the AIA OCSP URL written into leaves
    crl_url: str | None = None  # the CRL distribution point written into leaves


def render_cnf(
    profile: Profile, directory: Path, key_type: str, crl_days: int, level: str | None = None
) -> str:
    """openssl.cnf for PROFILE; `level` (single, root, intermediate) defaults to what is on disk."""
    return render_openssl(
        "openssl.cnf.j2",
        profile=profile.name,
        dir=directory,
        cnf_path=profile.cnf,
        crl_days=crl_days,
        rsa=key_type.startswith("rsa"),
        level=level or profile.level,
    )


def check_home(profile: Profile) -> None:
    """The profile's path must be a directory name openssl.cnf can hold (no newline...)."""
    try:
        cnf_escape(profile.cnf)
    except ValueError as exc:
        raise InputError("home", f"{str(profile.home)!r} cannot be used: {exc}") from None
    if profile.home.exists() and not profile.home.is_dir():
        raise InputError("home", f"{str(profile.home)!r} is not a directory")
    problem = unsafe_directory(profile.home)  # before anything is written there
    if problem:
        raise InputError(
            "home",
            f"{problem}: another user could swap what certwiz builds; use a home "
            "only root or this user may change",
        )


def ensure_absent(profile: Profile) -> None:
    if profile.dir.exists() or profile.dir.is_symlink():
        raise StateError(f"profile {profile.name} already exists at {profile.dir}; nothing changed")


def check_options(name: str, options: CAOptions) -> str:
    """The checks of what a new CA is made of (both `init`s); returns the root's CN."""
    cn = names.display_name(options.common_name or f"{name} Root CA", "cn")
    names.key_type(options.key_type)
    names.days(options.days)
    names.days(options.crl_days, "crl-days")
    if options.ocsp_url is not None:
        ocsp.check_url(options.ocsp_url)
    if options.crl_url is not None:
        leaf_urls.check_url(options.crl_url, "crl-url")
    return cn


def new_profile(name: str, home: Path | str | None) -> Profile:
    """The profile `init` would create: a valid name, a usable home, no profile there yet."""
    profile = Profile(names.profile_name(name), home_dir(home))
    check_home(profile)
    ensure_absent(profile)
    return profile


@contextlib.contextmanager
def built(profile: Profile) -> Iterator[Path]:
    """A held scratch directory in the home; renamed to the profile's once the body is done.

    So a profile exists whole or not at all, a second `init` changes nothing, and a
    concurrent `init` never takes this build for a killed run's leftover (`building`).
    """
    make_dirs(profile.home)
    with building(profile.home, profile.name) as work:
        os.chmod(work, 0o755)
        yield work
        try:
            os.rename(work, profile.dir)
        except OSError as exc:
            raise StateError(
                f"profile {profile.name} already exists at {profile.dir}; nothing changed"
            ) from exc


def init(
    name: str,
    home: Path | str | None = None,
    options: CAOptions | None = None,
    passphrase: Source = None,
) -> Profile:
    """Create profile NAME, built in a scratch directory, then renamed (`built`).

    A passphrase provider is called after every check passed; with no passphrase the
    CA key is unencrypted (see `UNENCRYPTED_CA_KEY`, which `api.CA.create` returns as
    a warning).
    """
    options = options or CAOptions()
    name = names.profile_name(name)
    cn = check_options(name, options)
    profile = new_profile(name, home)
    secret = resolve(passphrase)
    with built(profile) as work:
        _populate(work, profile, cn, options, secret)
        # The config names the final directory, for users running openssl by hand.
        write_atomic(
            work / "openssl.cnf",
            render_cnf(profile, profile.dir, options.key_type, options.crl_days, "single"),
        )
    return profile


def skeleton(work: Path) -> None:
    """An empty `openssl ca` directory: subdirectories, database, serial, CRL number."""
    for sub in ("newcerts", "issued", "reqs"):
        (work / sub).mkdir(mode=0o755)
    (work / "private").mkdir(mode=0o700)
    write_atomic(work / "index.txt", "")
    write_atomic(work / "index.txt.attr", render_openssl("index.txt.attr.j2"))
    # A random 128-bit start (top bit clear, so it stays a positive 16-byte integer).
    write_atomic(work / "serial", f"{secrets.randbits(127) | 1 << 120:032X}\n")
    write_atomic(work / "crlnumber", "01\n")
    write_atomic(work / ".lock", "", mode=0o600)


def _populate(
    work: Path, profile: Profile, cn: str, options: CAOptions, passphrase: Secret | None
) -> None:
    skeleton(work)
    ocsp.write_url(work, options.ocsp_url)
    leaf_urls.write(work, "crl", options.crl_url)
    write_atomic(
        work / "openssl.cnf",
        render_cnf(profile, work, options.key_type, options.crl_days, "single"),
    )
    self_signed_ca(work, cn, options.key_type, options.days, passphrase)
    record = audit.new_record(profile.name, "ca init", [cn])
    record["key_encrypted"] = passphrase is not None
    audit.append(work / audit.AUDIT_FILE, record)


def self_signed_ca(
    work: Path, cn: str, key_type: str, days: int, passphrase: Secret | None
) -> None:
    """In WORK (with its openssl.cnf): the CA key, the self-signed root (v3_ca), a first CRL."""
    cnf, key = work / "openssl.cnf", work / "private" / "ca.key"
    openssl.run(args.keygen(key_type, key, passphrase))
    openssl.run(args.self_signed(cnf, key, cn, days, work / "ca.crt", passphrase))
    os.chmod(work / "ca.crt", 0o644)
    openssl.run(args.gencrl(cnf, work / "crl.pem", passphrase))
    os.chmod(work / "crl.pem", 0o644)
