"""One change to a profile: lock -> recover -> consistency check -> body -> ONE audit record.

Every writer (CLI command, batch run, service request) goes through `transaction`.
A transaction may cover several operations (a batch of 500 issuances takes the
lock, recovers and checks once, and writes one record that lists every
operation with its names, serials and result):

    with transaction(profile, "batch issue", timeout=10) as tx:
        for name in names:
            with tx.operation("client issue", [name]):
                issue.issue_in(tx, name, "client", ...)   # calls tx.note_serial(...)

Code that does one thing records straight onto the transaction (`tx.note_serial`,
`tx.note`); the record then looks exactly as it always did: command, names,
serials, result. With operations, the record also has `operations`: one entry
per operation (command, names, serials, result, error, details), and the
top-level names and serials are their union.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import audit, check, journal, recover
from .profile import Profile


@dataclass
class Operation:
    """One step inside a transaction, with what it did and how it ended."""

    command: str
    names: list[str]
    serials: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    result: str = "ok"
    error: str | None = None

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "command": self.command,
            "names": list(self.names),
            "serials": list(self.serials),
            "result": self.result,
        }
        if self.error is not None:
            record["error"] = self.error
        record.update(self.details)
        return record


@dataclass
class Transaction:
    """A locked, recovered, consistent profile, and the record being built for it.

    `crl_missing` lists revoked serials the CRL lacks (a revoke killed before it
    published): an operation that signs publishes them first, then clears the list.
    `owed`: revocations a killed run's journal left (see journal); upkeep settles them.
    """

    profile: Profile
    own: Operation
    recovered: list[str] = field(default_factory=list)
    crl_missing: list[str] = field(default_factory=list)
    owed: list[journal.Owed] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    _open: list[Operation] = field(default_factory=list)

    @property
    def current(self) -> Operation:
        """The innermost open operation, else the transaction's own entry."""
        return self._open[-1] if self._open else self.own

    def note_serial(self, serial: str) -> None:
        """A serial the current operation signed (or revoked)."""
        self.current.serials.append(serial)

    def note(self, key: str, value: object) -> None:
        """A detail of the current operation for the audit record (never a secret)."""
        self.current.details[key] = value

    @property
    def serials(self) -> list[str]:
        """The current operation's serials (append to it, or call note_serial)."""
        return self.current.serials

    @property
    def details(self) -> dict[str, object]:
        """The current operation's details (set them, or call note)."""
        return self.current.details

    @property
    def all_serials(self) -> list[str]:
        """Every serial noted so far, the transaction's own first."""
        return _union([self.own.serials, *(op.serials for op in self.operations)])

    @contextlib.contextmanager
    def operation(self, command: str, names: Iterable[str] = ()) -> Iterator[Operation]:
        """Record one operation; its failure is noted, then re-raised.

        A caller that wants to go on with the next operation (a batch) catches
        the exception outside this block; the transaction itself then ends "ok"
        and its record shows which operations failed.
        """
        op = Operation(command, list(names))
        self.operations.append(op)
        self._open.append(op)
        try:
            yield op
        except BaseException as exc:
            op.result, op.error = "error", audit.describe(exc)
            raise
        finally:
            self._open.pop()

    def to_record(self, base: dict[str, object]) -> dict[str, object]:
        record = dict(base)
        record["names"] = _union([self.own.names, *(op.names for op in self.operations)])
        record["serials"] = self.all_serials
        if self.recovered:
            record["recovered"] = self.recovered
        record.update(self.own.details)
        if self.operations:
            record["operations"] = [op.as_record() for op in self.operations]
            failed = sum(op.result != "ok" for op in self.operations)
            if failed:
                record["failed_operations"] = failed
        return record


def _union(lists: Iterable[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        seen.update(dict.fromkeys(items))
    return list(seen)


@contextlib.contextmanager
def transaction(
    profile: Profile,
    command: str,
    names: Iterable[str] = (),
    *,
    timeout: float | None = None,
    check_crl: bool = True,
    root_crl_follows: bool = False,
) -> Iterator[Transaction]:
    """Lock PROFILE (waiting up to `timeout` s), recover, verify, run the body, log it.

    The body runs only on a consistent profile. Its result, or its failure, is
    appended to audit.log as one record before the lock is released.
    `check_crl=False` is for `crl gen`, which repairs a missing or damaged CRL;
    `root_crl_follows` for a change that publishes the root's (check.require_consistent).
    """
    with profile.lock(timeout):
        audit.require_room(audit.path_of(profile))  # no change that cannot be recorded
        base = audit.new_record(profile.name, command, list(names))
        tx = Transaction(profile, Operation(command, list(names)))
        started = time.monotonic()
        failure: BaseException | None = None
        try:
            tx.recovered = recover.recover(profile)
            report = check.require_consistent(
                profile, check_crl=check_crl, root_crl_follows=root_crl_follows
            )
            tx.owed = journal.pending(profile)
            if report.missing_from_crl:
                tx.crl_missing = list(report.missing_from_crl)
                tx.own.details["crl_missing"] = list(report.missing_from_crl)
            yield tx
        except BaseException as exc:
            base["result"] = "error"
            base["error"] = audit.describe(exc)
            failure = exc
            raise
        finally:
            record = tx.to_record(base)
            record["seconds"] = round(time.monotonic() - started, 3)
            audit.record(audit.path_of(profile), record, failure)


@contextlib.contextmanager
def joined(
    profile: Profile,
    tx: Transaction | None,
    command: str,
    names: Iterable[str] = (),
    *,
    timeout: float | None = None,
    check_crl: bool = True,
    root_crl_follows: bool = False,
) -> Iterator[Transaction]:
    """A transaction of its own for one operation, or an operation inside TX (a batch).

    What every operation that takes `tx=` does, so a caller can put any of them,
    mixed, under one lock and one audit record.
    """
    if tx is None:
        with transaction(
            profile,
            command,
            names,
            timeout=timeout,
            check_crl=check_crl,
            root_crl_follows=root_crl_follows,
        ) as fresh:
            yield fresh
        return
    if tx.profile.dir != profile.dir:
        raise ValueError(f"{command}: the transaction holds {tx.profile.name}, not {profile.name}")
    with tx.operation(command, names):
        yield tx
