"""Reading the `openssl ca` database (index.txt); only openssl writes it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import CertwizError


class DatabaseError(CertwizError):
    """index.txt does not parse; the message names the line."""


@dataclass(frozen=True)
class Entry:
    """One line of index.txt."""

    flag: str  # V, R or E as openssl wrote it
    not_after: datetime
    revoked_at: datetime | None
    reason: str | None
    serial: str  # upper-case hex, as openssl writes it
    subject: str  # X509_NAME_oneline form: /CN=...

    @property
    def serial_int(self) -> int:
        return int(self.serial, 16)

    @property
    def common_name(self) -> str | None:
        return common_name(self.subject)

    def status(self, now: datetime | None = None) -> str:
        """valid, revoked or expired (a V line past its not-after is expired)."""
        if self.flag == "R":
            return "revoked"
        if self.flag == "E" or self.not_after <= (now or datetime.now(UTC)):
            return "expired"
        return "valid"


def _time(text: str) -> datetime:
    """index.txt times: YYMMDDHHMMSSZ (UTCTime) or YYYYMMDDHHMMSSZ (GeneralizedTime)."""
    fmt = "%y%m%d%H%M%SZ" if len(text) == 13 else "%Y%m%d%H%M%SZ"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def parse_line(line: str, where: str = "index.txt") -> Entry:
    fields = line.split("\t")
    try:
        if len(fields) != 6 or fields[0] not in ("V", "R", "E"):
            raise ValueError("expected 6 tab-separated fields starting with V, R or E")
        flag, expiry, revocation, serial, _filename, subject = fields
        if not re.fullmatch(r"[0-9A-F]+", serial):
            raise ValueError(f"serial {serial!r} is not upper-case hex")
        revoked_at = reason = None
        if flag == "R":
            when, _, reason_text = revocation.partition(",")
            revoked_at = _time(when)
            reason = reason_text or None
        return Entry(flag, _time(expiry), revoked_at, reason, serial, subject)
    except ValueError as exc:
        raise DatabaseError(f"{where}: cannot parse: {exc}") from None


def read(path: Path) -> list[Entry]:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    return [
        parse_line(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), 1)
        if line
    ]


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
    parts = re.split(r"(?<!\\)/(?=[A-Za-z][A-Za-z0-9.]*=)", subject)
    values = [p[3:] for p in parts if p.startswith("CN=")]
    return _unescape(values[-1]) if values else None
