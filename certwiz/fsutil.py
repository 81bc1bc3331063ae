"""Writing files so that a reader never sees half of one; reading small ones safely."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import CertwizError, InputError, ProfileCorrupt

T = TypeVar("T")


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    The file is created with `mode` (no window with wider permissions) and a
    symlink at `path` is replaced, never written through.
    """
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_records(path: Path, what: str, record: Callable[[str, Any], T]) -> dict[str, T]:
    """A profile's JSON list of records (KEY -> object), each made by RECORD(KEY, object);
    {} when there is none. ProfileCorrupt naming the file ("not a certwiz WHAT") when it is
    not JSON, not an object, or RECORD finds a field missing or of the wrong kind."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {key: record(key, item) for key, item in raw.items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProfileCorrupt(f"{path}: not a certwiz {what} ({exc})") from None


def write_records(path: Path, records: Mapping[str, object], mode: int) -> None:
    """Replace PATH with RECORDS (under the profile lock) as `read_records` reads them,
    sorted for a stable diff; no records removes the file."""
    if not records:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, json.dumps(dict(records), indent=1, sort_keys=True) + "\n", mode)


def not_plain_dir(path: Path) -> str | None:
    """Why certwiz must not write into PATH, or None: a symlink would send writes elsewhere."""
    if path.is_symlink() or not path.is_dir():
        return (
            f"{path}: not a plain directory (a symlink is refused: "
            "certwiz never writes through one)"
        )
    return None


def require_outside(field: str, path: Path, home: Path, what: str = "the certwiz home") -> None:
    """InputError if PATH (links resolved) is inside the certwiz HOME, or any profile.

    A path certwiz or nginx writes to on the operator's word (export --out, a pid
    file, an error log) must never land on a profile's own files: the CA key, the
    database or the CRL would be overwritten, deleted or appended to.
    """
    try:
        target = path.expanduser().absolute().resolve(strict=False)
        inside = target == home.resolve() or home.resolve() in target.parents
        # the same directories under another name (a bind mount): compare inodes
        inside = inside or bool(_inodes(target.parents) & _home_dirs(home))
    except (OSError, RuntimeError):
        inside = False
    if inside:
        raise InputError(field, f"{path} is inside {what} {home}; give a path outside it")
    require_no_profile(field, path)


def require_no_profile(field: str, path: Path) -> None:
    """InputError if PATH is inside a certwiz profile of any home (`profile_around`): for a
    write target that has no home of its own to stay out of (the agent's bundle)."""
    profile = profile_around(path)
    if profile is not None:
        raise InputError(
            field, f"{path} is inside the certwiz profile {profile}; give a path outside it"
        )


def profile_around(path: Path) -> Path | None:
    """The certwiz profile (a directory holding openssl.cnf and index.txt) that PATH, as
    given or with links resolved, is in or below, or None: whatever the home. Another
    home's profile (a copy, a second instance, a CERTWIZ_HOME of its own) has a CA key
    and a database too (attack round 12, F8: export --out replaced one's ca.key)."""
    given = path.expanduser().absolute()
    with contextlib.suppress(OSError, RuntimeError):
        for chain in (given, given.resolve(strict=False)):
            for directory in (chain, *chain.parents):
                if (directory / "openssl.cnf").is_file() and (directory / "index.txt").is_file():
                    return directory
    return None


def require_safe_target(field: str, path: Path, *, in_place: bool = False) -> None:
    """InputError unless PATH's directory is one only root or this user can change (see
    unsafe_directory). A path is checked once but written later by name (and nginx opens
    its error log, as root, at every start): whoever can write its directory could point
    it at a profile's file meanwhile. IN_PLACE (appended to, never renamed over): PATH,
    if it exists, must also be a plain file with one name (a second hard link would make
    a profile's file take the writes)."""
    problem = unsafe_directory(path.parent)
    if problem:
        raise InputError(field, f"{problem}: another user could point {path.name} elsewhere")
    if in_place and path.parent.is_dir() and os.stat(path.parent).st_mode & 0o022:
        raise InputError(  # sticky or not (/tmp): they could plant the name as a link
            field, f"{path.parent} is writable by others: one of them could plant {path.name}"
        )
    if in_place:
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise InputError(field, f"{path} is not a plain file with one name (a link?)")


def _inodes(paths: Iterable[Path]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            found.add((info.st_dev, info.st_ino))
    return found


def _home_dirs(home: Path) -> set[tuple[int, int]]:
    """The home, its profiles and their subdirectories (root/'s too): the directories a
    path must not reach by any name. Directories only: issued/ is never listed."""
    dirs, level = [home], [home]
    for _ in range(3):  # HOME/P, HOME/P/private, HOME/P/root/private
        below = []
        for directory in level:
            with contextlib.suppress(OSError), os.scandir(directory) as listing:
                below += [Path(e.path) for e in listing if e.is_dir(follow_symlinks=False)]
        dirs += below
        level = [d for d in below if d.parent == home or d.name == "root"]
    return _inodes(dirs)


@dataclass(frozen=True)
class Unsafe:
    """A directory on the way that another user could change: owned by `uid` (the
    directory or the link to it), else writable by group or others (`mode`)."""

    directory: Path
    uid: int | None
    mode: int


def unsafe_ancestor(
    path: Path, *, owners: Collection[int] = (), sticky_deepest: bool = True
) -> Unsafe | None:
    """The first directory from / down to PATH that another user could change, or None.

    Every existing directory on the way (the path as given, and with its links resolved)
    must be owned by root, this user or one of OWNERS, and writable by nobody else unless
    it is sticky (like /tmp: others may add entries there, but not rename or remove
    ours); a link on the way must have such an owner too. What does not exist yet is
    made later, by its owner. Without STICKY_DEEPEST the deepest existing directory must
    not be writable by others even if sticky: where something is about to be created by
    name (a socket), another user could create that name first.
    """
    allowed = {0, os.geteuid(), *owners}
    given = path.expanduser().absolute()
    for chain in (given, given.resolve()):
        deepest: Unsafe | None = None  # sticky but open to others: unsafe if nothing is below
        for directory in (*reversed(chain.parents), chain):
            try:
                link = os.lstat(directory)
                info = os.stat(directory)
            except (FileNotFoundError, NotADirectoryError):
                break  # what does not exist yet is made by certwiz, at most 0755
            mode = stat.S_IMODE(info.st_mode)
            strangers = {link.st_uid, info.st_uid} - allowed
            if strangers:
                return Unsafe(directory, strangers.pop(), mode)
            open_to_others = info.st_mode & 0o022
            if open_to_others and not info.st_mode & stat.S_ISVTX:
                return Unsafe(directory, None, mode)
            deepest = Unsafe(directory, None, mode) if open_to_others else None
        if deepest is not None and not sticky_deepest:
            return deepest
    return None


def unsafe_directory(path: Path, *, sticky_deepest: bool = True) -> str | None:
    """What lets another user change what PATH leads to, or None (`unsafe_ancestor`
    with root and this user as the only owners).

    Whoever can rename a directory above a profile can swap the whole profile between
    certwiz's check and openssl's next open.
    """
    found = unsafe_ancestor(path, sticky_deepest=sticky_deepest)
    if found is None:
        return None
    if found.uid is not None:
        return f"{found.directory} is owned by uid {found.uid}, not by this user or root"
    return f"{found.directory} is writable by group or others (mode {found.mode:o})"


_OWN_DESCRIPTOR = re.compile(r"/dev/stdin|/dev/fd/[0-9]+|/proc/self/fd/[0-9]+")


def own_descriptor(path: Path) -> bool:
    """Is PATH exactly one of this process's own descriptors: /dev/stdin, /dev/fd/N or
    /proc/self/fd/N (a pipe, `<(...)` or a redirection from the caller's shell)?

    Only these spellings: /dev/fd/../../../tmp/x is a file like any other by another
    name (attack round 11, F5: a prefix test let it skip every check).
    """
    return _OWN_DESCRIPTOR.fullmatch(str(path.expanduser().absolute())) is not None


def unsafe_file(path: Path, *, secret: bool = False) -> str | None:
    """What lets another user choose what file PATH says (or, SECRET, read it), or None.

    The file, and a link to it, are owned by root or this user and writable by nobody
    else (SECRET: not readable by others either; a group may read it, on purpose), and
    every directory on the way to it, as given and with links resolved, is one only root
    or this user can change (`unsafe_directory`; sticky ones like /tmp are fine: nobody
    else can replace a file of ours there). This process's own descriptors
    (`own_descriptor`) are what its caller gave it. A file that cannot be read is left
    to the reader, which says why.
    """
    given = path.expanduser().absolute()
    if own_descriptor(given):
        return None
    try:
        link, info = os.lstat(given), os.stat(given)
    except OSError:
        return None
    for directory in (given.parent, given.resolve().parent):
        problem = unsafe_directory(directory)
        if problem:
            return problem
    strangers = {link.st_uid, info.st_uid} - {0, os.geteuid()}
    if strangers:
        return f"{given} is owned by uid {strangers.pop()}, not by this user or root"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        return f"{given} is writable by group or others (mode {mode:o})"
    if secret and mode & 0o004:
        return f"{given} is readable by others (mode {mode:o})"
    return acl_grant(given, info, secret=secret)


_ACL_USER, _ACL_GROUP, _ACL_MASK = 0x02, 0x08, 0x10
_ACL_READ, _ACL_WRITE = 0x4, 0x2


def acl_grant(path: Path, info: os.stat_result, *, secret: bool) -> str | None:
    """What PATH's POSIX ACL (system.posix_acl_access) lets another user do, or None.

    The mode's group bits are the ACL's mask, but a named user or group entry
    (user:nobody:r) reaches someone the owner and group bits do not name: one that may
    write (or, SECRET, read) under the mask is treated as "others" (attack round 12, F9).
    The owner and the file's own group named again change nothing. The xattr is version
    2: a u32 version, then entries of u16 tag, u16 perm, u32 id (little-endian).
    """
    try:
        raw = os.getxattr(path, "system.posix_acl_access")
    except OSError:  # no ACL, or a filesystem without them
        return None
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != 2 or (len(raw) - 4) % 8:
        return f"{path} has a POSIX ACL certwiz cannot read: remove it (setfacl -b)"
    entries = list(struct.iter_unpack("<HHI", raw[4:]))
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 0o7)
    wanted = _ACL_WRITE | (_ACL_READ if secret else 0)
    for tag, perm, who in entries:
        named = (tag == _ACL_USER and who != info.st_uid) or (
            tag == _ACL_GROUP and who != info.st_gid
        )
        granted = perm & mask & wanted
        if named and granted:
            kind = "uid" if tag == _ACL_USER else "gid"
            may = "write" if granted & _ACL_WRITE else "read"
            return f"{path} has an ACL entry letting {kind} {who} {may} it (setfacl -b removes it)"
    return None


def require_safe_source(
    field: str, path: Path, *, secret: bool = False, reread: bool = False
) -> None:
    """InputError when another user could choose what PATH says, or (SECRET) read it
    (`unsafe_file`): a passphrase or token file another user wrote is a passphrase they
    chose; a file root's nginx re-reads at every reload (--upstream-ca) must stay what
    the operator checked. REREAD (another process opens PATH by name later): one of this
    process's descriptors is refused, since there it names whatever that process has
    open under that number."""
    if reread and own_descriptor(path):
        raise InputError(
            field,
            f"{path} is a descriptor of certwiz itself, not a file nginx can open: give its path",
        )
    problem = unsafe_file(path, secret=secret)
    if problem:
        who = "could choose or read it" if secret else "could change what it says"
        raise InputError(field, f"{problem}: another user {who}; use a file only you can write")


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """mkdir -p giving every directory it creates at most MODE (less if the umask says so).

    Path.mkdir(parents=True) gives the parents the umask's mode: under umask 000 a
    new certwiz home would be world-writable, and anyone could swap a profile in it.
    Existing directories are left as they are.
    """
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=mode)


def install(src: Path, dst: Path, mode: int) -> None:
    """Move a finished file into place with its final mode (rename: atomic)."""
    os.chmod(src, mode)
    with open(src, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(src, dst)


def install_many(moves: Sequence[tuple[Path, Path, int]], workers: int = 16) -> None:
    """`install` for many (src, dst, mode): the same end state, with the fsyncs run
    concurrently (a journaling file system commits them together) before the renames."""

    from concurrent.futures import ThreadPoolExecutor  # here: only batch runs need threads

    def flush(src: Path) -> None:
        with open(src, "rb") as handle:
            os.fsync(handle.fileno())

    for src, _, mode in moves:
        os.chmod(src, mode)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(flush, [src for src, _, _ in moves]))
    for src, dst, _ in moves:
        os.replace(src, dst)


@contextlib.contextmanager
def scratch_dir(parent: Path, prefix: str = ".certwiz-") -> Iterator[Path]:
    """A private (0700) temporary directory on the same file system as `parent`."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield path
    finally:
        remove_tree(path)


_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> None:
    """Remove PATH: a directory with everything in it, or a link or file in its place
    (the name itself, never what a link points to); gone already is fine.

    Every removal is relative to an open directory (unlinkat, rmdir with dir_fd): a
    directory is opened O_NOFOLLOW and emptied through that descriptor, so one swapped
    for a link meanwhile (an attack on the agent's scratch directories, which root
    removed by path: the link's target lost its files) only loses what it held itself.
    A directory another user owns is not ours to empty and is refused.
    """
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_at(parent, path.name, path)
    finally:
        os.close(parent)


def _remove_at(dir_fd: int, name: str, shown: Path, tries: int = 3) -> None:
    try:
        fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)  # a link or a file: its own name only
        return
    try:
        owner = os.fstat(fd).st_uid
        if owner not in (0, os.geteuid()):
            raise CertwizError(f"{shown} is owned by uid {owner}, not by this user: not removed")
        for entry in os.listdir(fd):
            _remove_at(fd, entry, shown / entry)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except NotADirectoryError:  # renamed away and a link put in its place: that goes too
        if not tries:
            raise
        _remove_at(dir_fd, name, shown, tries - 1)


def read_file(path: str | Path) -> bytes:
    """The whole file, with plain os.open/os.read: for the thousands of small certificate
    files `list` reads, open()'s buffered file object costs about as much as the read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_head(path: Path, field: str, limit: int) -> bytes:
    """PATH's first LIMIT + 1 bytes at most: one more than allowed tells the caller the
    file is too large, and a path such as /dev/zero cannot fill the memory. A file that
    cannot be read is an InputError on FIELD ("cannot read PATH: why")."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror}") from None


def read_bounded(path: Path, field: str, limit: int, hint: str = "") -> bytes:
    """PATH's bytes, at most LIMIT of them (`read_head`); a larger file is an InputError on
    FIELD: "PATH is larger than LIMIT bytes", then HINT (e.g. ": not a client bundle")."""
    data = read_head(path, field, limit)
    if len(data) > limit:
        raise InputError(field, f"{path} is larger than {limit} bytes{hint}")
    return data


def read_small_text(path: Path, field: str, limit: int) -> str:
    """A small UTF-8 file given by the user, read at most `limit` bytes deep.

    Bounded: a path such as /dev/zero must not fill the memory. Every failure is an
    InputError on `field`.
    """
    data = read_bounded(path, field, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(field, f"{path} is not UTF-8 text") from None


def flock_by(fd: int, deadline: float) -> bool:
    """Take FD's exclusive flock, waiting until DEADLINE (a `time.monotonic()`); False if
    another holder kept it that long. It polls (5 ms, doubling to 100 ms): a blocking
    flock cannot give up at a deadline. The lock lasts until FD is closed."""
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _unheld(path: Path) -> bool:
    """Is no process holding the flock of directory PATH (so it is a dead run's)?"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def building(home: Path, name: str) -> Iterator[Path]:
    """HOME/.NAME.init-XXXX, where a new profile is built before the caller renames it
    into place; removed if the body fails.

    It is flocked while it is built. A run killed by SIGKILL cannot clean up, and its
    directory may hold a CA key: every such leftover in HOME (one no live run holds)
    is removed first.
    """
    for stale in home.glob(".*.init-*"):
        if not stale.is_symlink() and stale.is_dir() and _unheld(stale):
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=home, prefix=f".{name}.init-"))
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        os.close(fd)
