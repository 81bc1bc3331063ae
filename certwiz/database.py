"""Reading the `openssl ca` database (index.txt); only openssl writes it."""

from __future__ import annotations

import gc
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from .errors import CertwizError


class DatabaseError(CertwizError):
    """index.txt does not parse; the message names the line."""


class Entry(NamedTuple):
    """One line of index.txt, its fields as openssl wrote them, and three made from them.

    The times stay text until asked for: a 100,000-line database is read by every
    command, and turning each time into a datetime took most of that read. Their
    shape is checked when the line is read; status compares the text directly.
    The serial as a number, the CN and the sortable expiry are made once per line when
    it is read (checks, recovery and `list` ask for them for every line, several times).
    """

    flag: str  # V, R or E as openssl wrote it
    expiry: str  # YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ
    revocation: str  # "" or TIME[,reason]
    serial: str  # upper-case hex, as openssl writes it
    subject: str  # X509_NAME_oneline form: /CN=...
    serial_int: int  # int(serial, 16)
    common_name: str | None  # common_name(subject)
    until: str  # _sortable(expiry): YYYYMMDDHHMMSS, compares as the time does

    @classmethod
    def of(cls, flag: str, expiry: str, revocation: str, serial: str, subject: str) -> Entry:
        """An entry from the five fields (the derived ones computed)."""
        return cls(
            flag, expiry, revocation, serial, subject,
            int(serial, 16), common_name(subject), _sortable(expiry),
        )  # fmt: skip

    @property
    def not_after(self) -> datetime:
        return self._datetime(self.expiry)

    @property
    def revoked_at(self) -> datetime | None:
        return self._datetime(self.revocation.partition(",")[0]) if self.flag == "R" else None

    @property
    def reason(self) -> str | None:
        return (self.revocation.partition(",")[2] or None) if self.flag == "R" else None

    def expires_by(self, when: datetime) -> bool:
        """Is the not-after at or before WHEN (an aware datetime)?"""
        return self.until <= _sortable_now(when)

    def status(self, now: datetime | None = None) -> str:
        """valid, revoked or expired (a V line past its not-after is expired)."""
        if self.flag == "R":
            return "revoked"
        if self.flag == "E":
            return "expired"
        until = _sortable_now(now) if now is not None else _sortable_clock()
        return "expired" if self.until <= until else "valid"

    def _datetime(self, text: str) -> datetime:
        try:
            return _time(text)
        except ValueError as exc:
            raise DatabaseError(f"index.txt: serial {self.serial}: cannot parse: {exc}") from None


def _sortable(text: str) -> str:
    """YYYYMMDDHHMMSS of an index.txt time: such strings sort as the times do."""
    if len(text) == 13:
        return ("20" if text < "50" else "19") + text[:12]  # RFC 5280's UTCTime window
    return text[:14]


_sortable_seen: dict[datetime, str] = {}


def sortable(when: datetime) -> str:
    """WHEN (an aware datetime) as YYYYMMDDHHMMSS: compares with Entry.until as the times do."""
    return _sortable_now(when)


def _sortable_now(when: datetime) -> str:
    """_sortable for a datetime, remembered: every entry is compared with the same few."""
    text = _sortable_seen.get(when)
    if text is None:
        if len(_sortable_seen) > 64:
            _sortable_seen.clear()
        text = _sortable_seen[when] = when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return text


_clock: list[tuple[int, str]] = [(-1, "")]


def _sortable_clock() -> str:
    """_sortable of the current time, made once per second (not once per entry: status()
    without `now` is asked for every line of a 100,000-line database)."""
    second = int(time.time())
    if _clock[0][0] != second:
        _clock[0] = (second, time.strftime("%Y%m%d%H%M%S", time.gmtime(second)))
    return _clock[0][1]


def _time(text: str) -> datetime:
    """index.txt times: YYMMDDHHMMSSZ (UTCTime) or YYYYMMDDHHMMSSZ (GeneralizedTime)."""
    _check_time(text)
    digits = _sortable(text)
    return datetime(
        int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
        int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC,
    )  # fmt: skip


def _check_time(text: str) -> None:
    """The shape of a time, cheaply: digits, Z, plausible month, day, hour, minute, second."""
    size = len(text)
    if (size != 13 and size != 15) or text[-1] != "Z" or not text[:-1].isdigit():
        raise ValueError(f"time {text!r} is neither YYMMDDHHMMSSZ nor YYYYMMDDHHMMSSZ")
    at = size - 11  # where the month starts
    if not (
        text.isascii()
        and "01" <= text[at : at + 2] <= "12"
        and "01" <= text[at + 2 : at + 4] <= "31"
        and text[at + 4 : at + 6] <= "23"
        and text[at + 6 : at + 8] <= "59"
        and text[at + 8 : at + 10] <= "60"
    ):
        raise ValueError(f"time {text!r} is out of range")


_SERIAL = re.compile(r"[0-9A-F]+")
_TIME = (
    r"(?:\d\d|\d{4})(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d|60)Z"
)
# Every well-formed line of a whole index.txt in one C-level pass (findall): flag (an R
# also in group 2, which makes the revocation time required; V and E have none), expiry,
# revocation, serial, subject. One trailing \r of a line is not part of its subject (a
# subject ending in \r goes the slow way, like a line that does not match, which gets
# its message there).
_ROWS = re.compile(
    rf"^((R)|[VE])\t({_TIME})\t((?(2){_TIME}(?:,[^\t\n]*)?|))\t([0-9A-F]+)\t[^\t\n]*\t"
    r"([^\t\n\r]*(?:\r+[^\t\n\r]+)*)\r?$",
    re.ASCII | re.MULTILINE,
)


def parse_line(line: str, where: str = "index.txt") -> Entry:
    """One line (without its newline); DatabaseError names WHERE if it does not parse."""
    rows = _ROWS.findall(line)
    if len(rows) == 1 and "\n" not in line:
        return _entries(rows)[0]
    fields = line.split("\t")
    try:
        if len(fields) != 6 or fields[0] not in ("V", "R", "E"):
            raise ValueError("expected 6 tab-separated fields starting with V, R or E")
        flag, expiry, revocation, serial, _filename, subject = fields
        if not _SERIAL.fullmatch(serial):
            raise ValueError(f"serial {serial!r} is not upper-case hex")
        _check_time(expiry)
        if flag == "R":
            _check_time(revocation.partition(",")[0])
        return Entry.of(flag, expiry, revocation, serial, subject)
    except ValueError as exc:
        raise DatabaseError(f"{where}: cannot parse: {exc}") from None


def _entries(rows: list[tuple[str, str, str, str, str, str]]) -> list[Entry]:
    """Entries from _ROWS matches, the derived fields made inline (100,000 a read)."""
    new, make, cn, dot = tuple.__new__, Entry, common_name, "\\"
    return [
        new(make, (
            flag, expiry, revocation, serial, subject, int(serial, 16),
            subject[4:]
            if subject.startswith("/CN=") and subject.find("/", 4) < 0 and dot not in subject
            else cn(subject),
            expiry[:14] if len(expiry) == 15 else ("20" if expiry < "50" else "19") + expiry[:12],
        ))
        for flag, _r, expiry, revocation, serial, subject in rows
    ]  # fmt: skip


# Lines already parsed in this process, by their text: a command reads index.txt several
# times (before the lock, under it, around each `openssl ca` run), and openssl rewrites
# it whole for one changed line; only new lines are parsed again. Entries are immutable.
# The memo is filled from the last read only when a changed file is read again: a command
# that reads once (list, check) does not pay for 100,000 dictionary entries.
_BLANK = ("", "\r")
_parsed: dict[str, Entry] = {}
_last_read: dict[Path, tuple[bytes, list[str], list[Entry]]] = {}  # its non-blank lines too
_memo_holds: list[object] = [None]  # the _last_read value whose lines _parsed holds
_MEMO_LIMIT = 1_000_000  # lines; a long-lived process (a service) starts over beyond it
lines_parsed = [0]  # how many lines this process has parsed (tests/test_large_profile.py)


def forget() -> None:
    """Start over as a fresh process would: no last read, an empty memo (tests)."""
    _parsed.clear()
    _last_read.clear()
    _memo_holds[0] = None


def read(path: Path) -> list[Entry]:
    """Every entry of index.txt, in file order; DatabaseError names a line that does not parse."""
    data = path.read_bytes()
    last = _last_read.get(path)
    if last is not None and last[0] == data:  # unchanged since the last read: no decoding
        return list(last[2])
    lines = data.decode("utf-8", errors="surrogateescape").split("\n")
    body = [line for line in lines if line not in _BLANK]
    collecting = gc.isenabled()
    gc.disable()  # 100,000 new tuples would run the cyclic GC over all of them ~3 times:
    try:  # a third of the parse's time, and they hold no cycles
        if last is None:
            entries = _parse(path, lines, body)
        else:
            entries = _parse_changed(path, lines, body, last)
    finally:
        if collecting:
            gc.enable()
    _last_read.clear()  # one database at a time is what a command reads
    _last_read[path] = (data, body, entries)
    if last is not None:
        _memo_holds[0] = _last_read[path]  # _parse_changed put its new lines in the memo
    return list(entries)


def _parse(path: Path, lines: list[str], wanted: list[str]) -> list[Entry]:
    """The entries of WANTED (non-blank lines of LINES), in one regex pass. If one does not
    match, they are parsed one at a time in file order: the first bad one raises, naming
    its line number."""
    rows = _ROWS.findall("\n".join(wanted))
    lines_parsed[0] += len(wanted)
    if len(rows) == len(wanted):  # each match is one whole line: every line matched
        return _entries(rows)
    todo, done = set(wanted), {}
    for number, line in enumerate(lines, 1):
        if line in todo and line not in done:
            done[line] = parse_line(line.removesuffix("\r"), f"{path}:{number}")
    return [done[line] for line in wanted]


def _parse_changed(
    path: Path, lines: list[str], body: list[str], last: tuple[bytes, list[str], list[Entry]]
) -> list[Entry]:
    """A changed file: the lines it shares with the last read from the memo, the rest parsed."""
    memo = _parsed
    if len(memo) + len(body) > _MEMO_LIMIT:
        memo.clear()
        _memo_holds[0] = None
    if _memo_holds[0] is not last:
        memo.update(zip(last[1], last[2], strict=True))
    new = list(dict.fromkeys(line for line in body if line not in memo))
    if new:
        memo.update(zip(new, _parse(path, lines, new), strict=True))
    return [memo[line] for line in body]


_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})|\\([/+])")


def _unescape(value: str) -> str:
    """Undo the escapes openssl writes into index.txt (\\xHH bytes, \\/ and \\+), then decode.

    openssl copies the string's bytes whatever its ASN.1 type: a BMPString CN shows up as
    UTF-16 (\\x00b\\x00o...), a UniversalString as UTF-32. Text never holds a NUL byte, so
    one marks those; everything else is UTF-8 (or Latin-1 bytes, shown replaced).
    """
    raw = value.encode("utf-8", "surrogateescape")
    raw = _ESCAPE.sub(lambda m: bytes([int(m[1], 16)]) if m[1] else m[2], raw)
    if b"\x00" in raw:
        wide = "utf-32-be" if raw.startswith(b"\x00\x00") and len(raw) % 4 == 0 else "utf-16-be"
        return raw.decode(wide, errors="replace")
    return raw.decode("utf-8", errors="replace")


def oneline(common_name: str) -> str:
    """The subject openssl writes in index.txt for a certificate whose only RDN is CN=name.

    openssl escapes '/' and '+' with a backslash and every byte outside printable
    ASCII as \\xHH. Names certwiz accepts hold no backslash, so this is one-to-one.
    """
    out = []
    for ch in common_name:
        if ch in "/+":
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) <= 0x7E:
            out.append(ch)
        else:
            out.append("".join(f"\\x{b:02X}" for b in ch.encode()))
    return "/CN=" + "".join(out)


def common_name(subject: str) -> str | None:
    """The last CN of a oneline subject, whatever other RDNs come before or after it."""
    if subject.startswith("/CN=") and "/" not in subject[4:] and "\\" not in subject:
        return subject[4:]  # what certwiz writes: one RDN, nothing escaped
    parts = re.split(r"(?<!\\)/(?=[A-Za-z][A-Za-z0-9.]*=)", subject)
    values = [p[3:] for p in parts if p.startswith("CN=")]
    return _unescape(values[-1]) if values else None
