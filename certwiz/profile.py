"""Where a profile's files live, how to find profiles, and the profile lock."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import names
from .errors import InputError, LockTimeout, ProfileCorrupt, StateError
from .fsutil import flock_by, read_small_text, unsafe_directory

HOME_ENV = "CERTWIZ_HOME"
LOCK_TIMEOUT_ENV = "CERTWIZ_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0
ROOT_DIR = "root"  # a two-level profile's offline root: its own openssl ca directory


CONFIG_ENV = "CERTWIZ_CONFIG"
DEFAULT_CONFIG = Path("/etc/certwiz.conf")
DEFAULT_HOME = "certs"
CONFIG_MAX_BYTES = 65536


@dataclass(frozen=True)
class Home:
    """The directory that holds the profiles, and where that choice came from.

    The source goes into every "not found": an operator who ran certwiz from the wrong
    directory must learn where it looked, not be told to create a second CA there.
    """

    path: Path
    source: str  # "--home", "CERTWIZ_HOME", a config file's path, or "" for ./certs

    @property
    def configured(self) -> bool:
        """Chosen on purpose (--home, CERTWIZ_HOME or a config file), not the ./certs default."""
        return self.source != ""

    def describe(self) -> str:
        if self.configured:
            return f"home {self.path} (from {self.source})"
        return (
            f"home {self.path} (the default ./{DEFAULT_HOME} of the current directory: "
            f"no --home, {HOME_ENV} or {DEFAULT_CONFIG})"
        )

    def elsewhere(self) -> str:
        return f"another home: --home DIR, {HOME_ENV}=DIR, or 'home = DIR' in {DEFAULT_CONFIG}"


def config_path() -> Path | None:
    """The config file certwiz reads: $CERTWIZ_CONFIG (must exist), else /etc/certwiz.conf."""
    chosen = os.environ.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise InputError(CONFIG_ENV, f"{chosen} is not a file")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _check_config_owner(path: Path, field: str) -> None:
    """The config decides where root's certwiz writes keys: only its owner may change it."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(field, f"cannot read it: {exc.strerror}") from None
    if info.st_uid not in (0, os.getuid()):
        raise InputError(field, f"owned by uid {info.st_uid}: it must be yours or root's")
    if info.st_mode & 0o022:
        raise InputError(field, f"writable by others (mode {info.st_mode & 0o777:o}): chmod 644")
    # Whoever can change a directory on the way can swap the file (as sshd's StrictModes)
    problem = unsafe_directory(path.parent)
    if problem:
        raise InputError(field, f"{problem}: they can replace the config")


def read_config(path: Path) -> dict[str, str]:
    """`key = value` lines, `#` comments; the one key so far is `home` (an absolute path)."""
    field = str(path)
    _check_config_owner(path, field)
    text = read_small_text(path, field, CONFIG_MAX_BYTES)
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or key != "home":
            raise InputError(field, f"line {number}: expected 'home = /absolute/dir', got {raw!r}")
        if not value.startswith("/"):
            raise InputError(field, f"line {number}: home must be an absolute path, got {value!r}")
        settings[key] = value
    return settings


def resolve_home(home: Path | str | None = None) -> Home:
    """--home, else $CERTWIZ_HOME, else `home` in the config file, else ./certs.

    The path must be UTF-8 (it goes into openssl.cnf): InputError("home") otherwise.
    """
    if home:
        found = Home(Path(home).expanduser().absolute(), "--home")
    elif os.environ.get(HOME_ENV):
        found = Home(Path(os.environ[HOME_ENV]).expanduser().absolute(), HOME_ENV)
    else:
        config = config_path()
        value = read_config(config).get("home") if config is not None else None
        if config is not None and value:
            found = Home(Path(value), str(config))
        else:
            found = Home(Path(DEFAULT_HOME).absolute(), "")
    names.utf8_path(found.path, "home")
    return found


def home_dir(home: Path | str | None = None) -> Path:
    """The directory that holds the profiles (see resolve_home)."""
    return resolve_home(home).path


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

    def ca_files(self) -> tuple[Path, Path, Path]:
        return (self.ca_cert, self.ca_key, self.cnf)

    @property
    def root(self) -> Profile:
        """The root of a two-level profile: PROFILE/root/, laid out like a profile itself."""
        return Profile(ROOT_DIR, self.dir)

    @property
    def two_level(self) -> bool:
        """An offline root in root/ and an intermediate that signs the leaves."""
        return (self.dir / ROOT_DIR / "openssl.cnf").is_file()

    @property
    def level(self) -> str:
        """single (one CA), intermediate (signs leaves; root/ above it) or root (that root/)."""
        if self.two_level:
            return "intermediate"
        # root/ inside a two-level profile (not a profile that a user named "root"):
        # its parent holds the intermediate and names root/ in its layout.
        if self.name == ROOT_DIR and (self.home / "intermediate.crt").is_file():
            return "root"
        return "single"

    @property
    def cli_name(self) -> str:
        """The -p that reaches this CA: root/ of a two-level profile is reached by its parent's."""
        return self.home.name if self.level == "root" else self.name

    @property
    def intermediate_cert(self) -> Path:
        return self.dir / "intermediate.crt"

    @property
    def signing_cert(self) -> Path:
        """The CA certificate that signs leaves and crl.pem (openssl.cnf's `certificate`)."""
        return self.intermediate_cert if self.two_level else self.ca_cert

    @property
    def chain(self) -> Path:
        """The CA certificates above a leaf, signing CA first: what bundles carry."""
        return self.dir / "chain.pem" if self.two_level else self.ca_cert

    @property
    def nginx_crl(self) -> Path:
        """The CRL file for NGINX: one CRL per CA of the chain (NGINX needs them all)."""
        return self.dir / "crl-chain.pem" if self.two_level else self.crl

    def has_ca(self) -> bool:
        return all(path.is_file() for path in self.ca_files())

    def ca_key_encrypted(self) -> bool:
        with open(self.ca_key, "rb") as handle:
            return b"ENCRYPTED" in handle.readline()

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the profile's exclusive lock: `openssl ca` itself does no locking.

        Waits (it does not fail fast) up to `timeout` seconds, default 60. The
        library never reads $CERTWIZ_LOCK_TIMEOUT: the CLI turns it into `timeout`.
        Two flocks, always in this order: `.lock` (what certwiz always locked, and what
        a user sees), then the profile directory itself, which an operator "clearing a
        stale lock" with `rm .lock` cannot take away from a running holder.
        """
        if timeout is None:
            timeout = DEFAULT_LOCK_TIMEOUT
        fds = [os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)]
        try:
            fds.append(os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY))
            deadline = time.monotonic() + timeout
            for fd in fds:
                if not flock_by(fd, deadline):
                    raise LockTimeout(
                        f"profile {self.name} is busy: another certwiz holds {self.lock_file} "
                        f"(waited {timeout:g}s; to wait longer give --lock-timeout or "
                        f"set {LOCK_TIMEOUT_ENV})"
                    )
            yield
        finally:
            for fd in fds:
                os.close(fd)  # closing a descriptor releases its lock


def refuse_foreign(profile: Profile) -> None:
    """ProfileCorrupt if someone other than this user (or root) could have changed what
    certwiz signs with: the home holding the profile, the profile directory, or any entry
    in it (openssl.cnf, the CA certificate, the database, the CRL, `private/` and the
    other subdirectories) and the CA key, owned by another user or writable by group or
    others (the home may be sticky, like /tmp). openssl.cnf alone can load a module into
    a root openssl; whoever can change these owns the CA. One listing of the profile
    directory; the other files in the subdirectories are guarded by their directory.
    """
    me = os.geteuid()
    problem = unsafe_directory(profile.home)  # the home and every directory above it
    if problem:
        raise ProfileCorrupt(
            f"{problem}; whoever can change it can swap the profile and make certwiz sign "
            "with their CA; fix: chown root, chmod go-w (or keep the home elsewhere)"
        )
    try:
        with os.scandir(profile.dir) as listing:
            entries = [Path(e.path) for e in listing if not e.is_symlink()]
    except FileNotFoundError:
        entries = []
    for path in (profile.dir, *entries, profile.ca_key):
        try:  # the home (and so the profile) may be reached through a link: its target
            st = os.stat(path) if path == profile.dir else os.lstat(path)
        except FileNotFoundError:
            continue
        writable = st.st_mode & 0o022
        if st.st_uid not in (me, 0):
            problem = f"is owned by uid {st.st_uid}, not by this user ({me}) or root"
        elif writable:
            problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
        else:
            continue
        raise ProfileCorrupt(
            f"{path}: {problem}; anyone who can change it can make certwiz sign with "
            f"their CA; fix: chown and chmod go-w {path}"
        )


def open_profile(name: str, home: Path | str | None = None) -> Profile:
    """A profile that exists and has its CA; otherwise a StateError saying where it looked.

    "run: certwiz ca init" is advised only in a home chosen on purpose that exists:
    elsewhere it would create a second CA in the wrong place.
    """
    where = resolve_home(home)
    profile = Profile(names.profile_name(name), where.path)
    if profile.has_ca():
        refuse_foreign(profile)  # reading too: a swapped profile hands out another's root
        return profile
    if not where.path.is_dir():
        raise StateError(
            f"profile {name} not found: {where.describe()} does not exist; {where.elsewhere()}"
        )
    if profile.dir.exists() or profile.dir.is_symlink():
        missing = [str(p.relative_to(profile.dir)) for p in profile.ca_files() if not p.is_file()]
        raise StateError(f"profile {name} at {profile.dir} is incomplete: no {', '.join(missing)}")
    advice = f"; to create it there: certwiz ca init -p {name}" if where.configured else ""
    raise StateError(f"profile {name} not found in {where.describe()}; {where.elsewhere()}{advice}")


def list_profiles(home: Path | str | None = None) -> list[Profile]:
    root = home_dir(home)
    if not root.is_dir():
        return []
    problem = unsafe_directory(root)
    if problem:
        raise ProfileCorrupt(f"{problem}; another user could swap the profiles listed here")
    found = []
    for entry in sorted(root.iterdir()):
        if names.PROFILE_RE.fullmatch(entry.name) and entry.is_dir():
            profile = Profile(entry.name, root)
            if profile.has_ca():
                found.append(profile)
    return found
