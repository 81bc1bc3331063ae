"""Where a profile's files live, how to find profiles, and the profile lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import names
from .errors import InputError, LockTimeout, StateError

HOME_ENV = "CERTWIZ_HOME"
LOCK_TIMEOUT_ENV = "CERTWIZ_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0


def home_dir(home: Path | str | None = None) -> Path:
    """The directory that holds the profiles: --home, else $CERTWIZ_HOME, else ./certs."""
    chosen = home or os.environ.get(HOME_ENV) or "certs"
    return Path(chosen).expanduser().absolute()


def lock_timeout(value: str | float | None, field: str = "lock-timeout") -> float:
    """Seconds to wait for the lock: 0 (try once) to one day; None means the default."""
    if value is None or value == "":
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:  # also rejects nan
        raise InputError(field, f"{value!r} must be a number of seconds from 0 to 86400")
    return seconds


@dataclass(frozen=True)
class Profile:
    """An isolated CA: a classic `openssl ca` directory under HOME/NAME."""

    name: str
    home: Path

    @property
    def dir(self) -> Path:
        return self.home / self.name

    @property
    def cnf(self) -> Path:
        return self.dir / "openssl.cnf"

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def private(self) -> Path:
        return self.dir / "private"

    @property
    def ca_key(self) -> Path:
        return self.private / "ca.key"

    @property
    def index(self) -> Path:
        return self.dir / "index.txt"

    @property
    def serial(self) -> Path:
        return self.dir / "serial"

    @property
    def crlnumber(self) -> Path:
        return self.dir / "crlnumber"

    @property
    def crl(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def newcerts(self) -> Path:
        return self.dir / "newcerts"

    @property
    def issued(self) -> Path:
        return self.dir / "issued"

    @property
    def reqs(self) -> Path:
        return self.dir / "reqs"

    @property
    def lock_file(self) -> Path:
        return self.dir / ".lock"

    def cert_path(self, name: str) -> Path:
        return self.issued / f"{name}.crt"

    def fullchain_path(self, name: str) -> Path:
        return self.issued / f"{name}.fullchain.pem"

    def key_path(self, name: str) -> Path:
        path = self.private / f"{name}.key"
        if path == self.ca_key:  # names.py reserves "ca"; this is the last line of defence
            raise InputError("name", f"{name!r} would name the CA's own key")
        return path

    def p12_path(self, name: str) -> Path:
        return self.private / f"{name}.p12"

    def csr_path(self, name: str) -> Path:
        return self.reqs / f"{name}.csr"

    def newcert_path(self, serial_hex: str) -> Path:
        return self.newcerts / f"{serial_hex}.pem"

    def has_ca(self) -> bool:
        return self.ca_cert.is_file() and self.ca_key.is_file() and self.cnf.is_file()

    def ca_key_encrypted(self) -> bool:
        with open(self.ca_key, "rb") as handle:
            return b"ENCRYPTED" in handle.readline()

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the profile's exclusive lock: `openssl ca` itself does no locking.

        Waits (it does not fail fast) up to `timeout` seconds, default
        $CERTWIZ_LOCK_TIMEOUT or 60.
        """
        if timeout is None:
            timeout = lock_timeout(os.environ.get(LOCK_TIMEOUT_ENV), LOCK_TIMEOUT_ENV)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            deadline = time.monotonic() + timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"profile {self.name} is busy: another certwiz holds {self.lock_file} "
                            f"(waited {timeout:g}s; set {LOCK_TIMEOUT_ENV} to wait longer)"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def open_profile(name: str, home: Path | str | None = None) -> Profile:
    """A profile that exists and has its CA; otherwise a StateError saying what to run."""
    profile = Profile(names.profile_name(name), home_dir(home))
    if not profile.has_ca():
        raise StateError(f"profile {name} has no CA; run: certwiz ca init -p {name}")
    return profile


def list_profiles(home: Path | str | None = None) -> list[Profile]:
    root = home_dir(home)
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if names.PROFILE_RE.fullmatch(entry.name) and entry.is_dir():
            profile = Profile(entry.name, root)
            if profile.has_ca():
                found.append(profile)
    return found
