"""The per-profile audit log (audit.log): one JSON object per line, append-only.

Every change to a profile (init, issue, revoke, crl gen), and every change
that failed once the profile was locked, leaves a line (written by
`transaction.transaction`, one per transaction) saying when, who,
what, for which names and serials, and how it ended. It never holds a
secret: records are built from names, serials and error messages only.
Lines are written with O_APPEND under the profile lock and fsync'ed, so a
crash leaves at most one torn last line, which `read` shows as unreadable.
"""

from __future__ import annotations

import getpass
import json
import os
import resource
from datetime import UTC, datetime
from pathlib import Path

from .errors import CertwizError
from .profile import Profile

AUDIT_FILE = "audit.log"


def path_of(profile: Profile) -> Path:
    return profile.dir / AUDIT_FILE


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def append(path: Path, record: dict[str, object]) -> None:
    """Append one record; O_NOFOLLOW so a planted symlink cannot redirect the log."""
    line = json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # a crash tore the last line: do not glue onto it
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class NotRecorded(CertwizError):
    """audit.log cannot take the record of a change (file size limit, quota, full disk)."""

    exit_code = 1


RECORD_ROOM = 64 * 1024  # what a record may need; a batch's record can be long


def require_room(path: Path) -> None:
    """Refuse to start a change whose record audit.log could not take (NotRecorded).

    Checked under the lock, before recovery and the change, so a refusal changes
    nothing: the file size limit (RLIMIT_FSIZE) and the space left for this user.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and size + RECORD_ROOM > soft:
        raise NotRecorded(
            f"{path} cannot grow: it is {size} bytes and the file size limit is {soft} "
            "(ulimit -f); the change could not be recorded, so nothing was changed"
        )
    space = os.statvfs(path.parent)
    if space.f_bavail * space.f_frsize < RECORD_ROOM:
        raise NotRecorded(
            f"{path} cannot grow: no space left on its file system; the change could "
            "not be recorded, so nothing was changed"
        )


def record(path: Path, entry: dict[str, object], failure: BaseException | None) -> None:
    """Append the record of a change that ended (`failure` None: it succeeded).

    A change that was made but could not be recorded fails loudly (NotRecorded, exit 1),
    naming what was done; a failed change keeps its own error (it changed nothing).
    """
    try:
        append(path, entry)
    except OSError as exc:
        if failure is not None:
            return

        def words(key: str) -> list[str]:
            value = entry.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        what = " ".join([str(entry.get("command")), *words("names")])
        done = ", ".join(words("serials")) or "no serial"
        raise NotRecorded(
            f"the change was made ({what}: {done}) but {path} could not record it: "
            f"{exc.strerror}; "
            "add the record by hand once it can grow"
        ) from exc


def new_record(profile: str, command: str, names: list[str]) -> dict[str, object]:
    return {
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "user": _user(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "profile": profile,
        "command": command,
        "names": list(names),
        "serials": [],
        "result": "ok",
    }


def read(profile: Profile) -> list[dict[str, object]]:
    """Every record, oldest first.

    A line that is not a JSON object (a write torn by a crash, or tampering)
    is kept as {"line": N, "unreadable": text}: the log is evidence, so it is
    shown, never skipped silently or rewritten.
    """
    path = path_of(profile)
    if not path.exists():
        return []
    records: list[dict[str, object]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                record = {"line": number, "unreadable": line.rstrip("\n")}
            records.append(record)
    return records


def one_line(record: dict[str, object]) -> str:
    """A record as text: time user command names serials result[: error]."""
    if "unreadable" in record:
        return f"line {record['line']}: unreadable record (a torn write?): {record['unreadable']}"

    def joined(key: str) -> str:
        value = record.get(key)
        return ",".join(map(str, value)) if isinstance(value, list) and value else "-"

    text = (
        f"{record.get('time', '?')} {record.get('user', '?')} {record.get('command', '?')} "
        f"{joined('names')} {joined('serials')} {record.get('result', '?')}"
    )
    return text + (f": {record['error']}" if "error" in record else "")


def describe(exc: BaseException) -> str:
    """An exception as text safe for the log: messages of our own errors, else a name."""
    if isinstance(exc, CertwizError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror}: {exc.filename}"
    return type(exc).__name__  # unknown exceptions may carry anything: name only
