"""The per-profile audit log (audit.log): one JSON object per line, append-only.

Every change to a profile (init, issue, revoke, crl gen), and every change
that failed once the profile was locked, leaves a line saying when, who,
what, for which names and serials, and how it ended. It never holds a
secret: records are built from names, serials and error messages only.
Lines are written with O_APPEND under the profile lock and fsync'ed, so a
crash leaves at most one torn last line, which `read` shows as unreadable.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import check
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


@dataclass
class Change:
    """What a change did, filled in by the caller inside `changing`."""

    record: dict[str, object]
    serials: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CertwizError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror}: {exc.filename}"
    return type(exc).__name__  # unknown exceptions may carry anything: name only


@contextlib.contextmanager
def changing(
    profile: Profile,
    command: str,
    names: list[str] | None = None,
    timeout: float | None = None,
    *,
    check_crl: bool = True,
) -> Iterator[Change]:
    """Lock the profile, recover from a killed run, verify it, then log the outcome.

    The body runs only on a consistent profile; its result or its failure is
    appended to audit.log before the lock is released.
    """
    with profile.lock(timeout):
        change = Change(new_record(profile.name, command, names or []))
        started = time.monotonic()
        try:
            repaired = check.recover(profile)
            if repaired:
                change.details["recovered"] = repaired
            report = check.require_consistent(profile, check_crl=check_crl)
            if report.missing_from_crl:
                change.details["crl_missing"] = report.missing_from_crl
            yield change
        except BaseException as exc:
            change.record["result"] = "error"
            change.record["error"] = _describe(exc)
            raise
        finally:
            change.record["serials"] = change.serials
            change.record["seconds"] = round(time.monotonic() - started, 3)
            change.record.update(change.details)
            with contextlib.suppress(OSError):  # a full disk must not hide the real error
                append(path_of(profile), change.record)
