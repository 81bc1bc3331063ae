"""What a signing change writes down in its scratch directory, so that the next change
finishes or undoes a run killed after `openssl ca`, never leaves it half-done.

A certificate is signed, then several files are installed (key, request, bundle or
fullchain, certificate) by separate renames: no order makes them change together. So
the scratch directory (PROFILE/.certwiz-*, under the lock) is the journal:

1. `signed`: the serial `openssl ca` is about to assign, written before it runs.
2. `delivery.json`: the installs (file in the scratch directory -> place in the
   profile), written once every file is staged whole. This is the commit point.
3. `supersedes.json` (a renewal): the certificate the new one replaces, and its grace.

Recovery (`recover.recover`) rolls a committed delivery forward (the files still in the
scratch directory are installed: an install is a rename, so what moved is done); a
delivery not committed installed nothing, and its signed certificate, whose key lived
only in the scratch directory, is owed a withdrawal. Revocations need the CA key, so
they are left in a stripped journal (`pending`) that the command's upkeep settles
(`upkeep.settle_journals`), and the next command if this one cannot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import database
from .fsutil import install, write_atomic
from .profile import Profile

SCRATCH_PREFIX = ".certwiz-"
SIGNED = "signed"
DELIVERY = "delivery.json"
SUPERSEDES = "supersedes.json"
FILES = (SIGNED, DELIVERY, SUPERSEDES)
_SERIAL = re.compile(r"[0-9A-F]{2,64}")


@dataclass(frozen=True)
class Owed:
    """What a killed run's journal still needs: revocations, under the CA key."""

    work: Path
    serial: str  # the certificate the run signed
    delivered: bool  # its delivery committed (then rolled forward), else withdraw it
    name: str | None = None  # a renewal: NAME's certificate OLD is superseded
    old: str | None = None
    grace_seconds: float | None = None


@contextlib.contextmanager
def workspace(profile: Profile) -> Iterator[Path]:
    """The scratch directory of a signing run (0700, in the profile), removed when the
    run ends, except when it fails once `signing` was written (Ctrl-C among the renames,
    a failing revocation): then it stays, and the next change finishes it like a killed
    run's (`recover`), instead of leaving half a delivery with nothing to say so."""
    path = Path(tempfile.mkdtemp(dir=profile.dir, prefix=SCRATCH_PREFIX))
    try:
        yield path
    except BaseException:
        if _owed(profile, path) is None:
            discard(path, ignore_errors=True)
        raise
    discard(path)


def discard(work: Path, *, ignore_errors: bool = False) -> None:
    """Remove a journal's directory, `signed` first.

    rmtree deletes in listing order: killed half-way it could leave `signed` without the
    `delivery.json` that said the delivery committed, and the next change would withdraw
    a certificate whose files were all in place. Without `signed` there is no journal.
    """
    with contextlib.suppress(FileNotFoundError):
        (work / SIGNED).unlink()
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)  # the journal is void before any other file goes
        finally:
            os.close(fd)
    shutil.rmtree(work, ignore_errors=ignore_errors)


def committed(work: Path) -> bool:
    """Has WORK's delivery committed (from then on it is finished, never withdrawn)?"""
    return (work / DELIVERY).is_file()


def signing(work: Path, serial: str) -> None:
    write_atomic(work / SIGNED, serial + "\n", 0o600)


def delivering(
    profile: Profile,
    work: Path,
    installs: list[tuple[Path, Path, int]],
    remove: Sequence[Path] = (),
) -> None:
    """Commit: every staged file (in WORK) and where it goes, then what goes away (files
    of the certificate replaced, e.g. a key the device now holds), relative to the profile."""
    rows = [[src.name, str(dst.relative_to(profile.dir)), mode] for src, dst, mode in installs]
    gone = [str(path.relative_to(profile.dir)) for path in remove]
    write_atomic(work / DELIVERY, json.dumps({"install": rows, "remove": gone}), 0o600)


def deliver(
    profile: Profile,
    work: Path,
    installs: list[tuple[Path, Path, int]],
    remove: Sequence[Path] = (),
) -> list[str]:
    """Commit the delivery of the files staged whole in WORK, then move each into place
    and remove REMOVE; the files removed."""
    delivering(profile, work, installs, remove)
    for src, dst, mode in installs:
        install(src, dst, mode)
    return _remove(profile, [str(path.relative_to(profile.dir)) for path in remove])


def _place(profile: Profile, rel: str) -> Path:
    """A path of the journal, checked to be where certwiz installs (never elsewhere)."""
    path = profile.dir / rel
    if ".." in Path(rel).parts or path.parent not in (
        profile.issued,
        profile.private,
        profile.reqs,
    ):
        raise ValueError(f"{rel!r} is not a place certwiz installs to")
    return path


def _remove(profile: Profile, rels: list[str]) -> list[str]:
    gone = []
    for rel in rels:
        path = _place(profile, rel)
        if path.is_file() and not path.is_symlink():
            path.unlink()
            gone.append(str(path))
    return gone


def superseding(work: Path, name: str, old: str, grace_seconds: float | None) -> None:
    data = {"name": name, "old": old, "grace_seconds": grace_seconds}
    write_atomic(work / SUPERSEDES, json.dumps(data), 0o600)


def install_all(profile: Profile, work: Path) -> list[str]:
    """The installs of WORK's committed delivery still to do, done; the targets."""
    data = json.loads((work / DELIVERY).read_text(encoding="utf-8"))
    done = []
    for name, rel, mode in data["install"]:
        src, dst = work / str(name), _place(profile, str(rel))
        if "/" in str(name):
            raise ValueError(f"{work / DELIVERY}: {name!r} is not a file of the journal")
        if src.is_file() and not src.is_symlink():
            install(src, dst, int(mode))
            done.append(str(dst))
    return done + [f"{path} (removed)" for path in _remove(profile, data["remove"])]


def _owed(profile: Profile, work: Path) -> Owed | None:
    """What WORK's journal still needs; None when nothing (no signature, or one that
    never reached index.txt, or was already revoked, and no delivery committed)."""
    try:
        serial = (work / SIGNED).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not _SERIAL.fullmatch(serial):
        return None
    delivered = committed(work)
    wanted = int(serial, 16)
    if not delivered and not any(
        e.serial_int == wanted and e.flag == "V" for e in database.read(profile.index)
    ):
        return None
    if not (work / SUPERSEDES).is_file():
        return Owed(work, serial, delivered)
    data = json.loads((work / SUPERSEDES).read_text(encoding="utf-8"))
    seconds = data["grace_seconds"]
    return Owed(
        work,
        serial,
        delivered,
        str(data["name"]),
        str(data["old"]),
        None if seconds is None else float(seconds),
    )


def recover(profile: Profile, work: Path, done: list[str]) -> bool:
    """Finish the journal of a killed run's scratch directory WORK (not a link, under the
    lock). True: it still owes revocations, and is kept with nothing but its journal."""
    if not (work / SIGNED).is_file():
        return False
    try:
        if committed(work):
            for target in install_all(profile, work):
                done.append(f"installed {target} (a delivery a killed run had committed)")
        owed = _owed(profile, work)
        if owed is not None and owed.delivered and owed.old is None:
            owed = None  # an issuance: once installed, nothing is owed
    except (OSError, ValueError, KeyError, TypeError, database.DatabaseError) as exc:
        done.append(f"could not finish the journal {work}: {exc}")
        return False
    if owed is None:
        return False
    for child in work.iterdir():
        if child.name not in FILES:
            child.unlink()  # the undelivered key among them: it never leaves here
    return True


def pending(profile: Profile) -> list[Owed]:
    """The journals recovery kept: the revocations they owe, oldest serial first."""
    found = []
    for work in profile.dir.glob(SCRATCH_PREFIX + "*"):
        if work.is_symlink() or not work.is_dir() or not (work / SIGNED).is_file():
            continue
        try:
            owed = _owed(profile, work)
        except (OSError, ValueError, KeyError, TypeError, database.DatabaseError):
            continue
        if owed is not None:
            found.append(owed)
    return sorted(found, key=lambda o: int(o.serial, 16))


def close(owed: Owed) -> None:
    """The revocations of OWED are done: its journal goes."""
    discard(owed.work, ignore_errors=True)
    if owed.work.exists():
        os.rmdir(owed.work)
