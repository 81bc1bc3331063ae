"""Large profiles: index.txt parsed once per command, one pass to check it, same answers.

Speed is measured by `make bench` (bench/README.md); these tests pin the mechanisms.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.gen_profile import generate
from certwiz import check, database, inventory, issue, revoke
from certwiz.cli.common import emit_json_list
from certwiz.profile import Profile


def reference_time(text: str) -> datetime:
    """strptime, with RFC 5280's UTCTime window (YY >= 50 is 19YY; strptime's %y says 20YY
    up to 68: the database read that way before, wrong for 1950-1968)."""
    if len(text) == 13:
        text = ("19" if text >= "50" else "20") + text
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def test_times_parse_as_strptime_did() -> None:
    rng = random.Random(5)
    start = datetime(1951, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        when = start + timedelta(seconds=rng.randrange(0, 150 * 365 * 86400))
        texts = [when.strftime("%Y%m%d%H%M%SZ")]
        if when.year < 2050:
            texts.append(when.strftime("%y%m%d%H%M%SZ"))
        for text in texts:
            line = f"R\t{text}\t{text},keyCompromise\tAB12\tunknown\t/CN=x"
            entry = database.parse_line(line)
            assert entry.not_after == entry.revoked_at == reference_time(text)
            assert entry.reason == "keyCompromise"
            # status compares text; it must agree with the datetimes either side of it
            valid = entry._replace(flag="V")
            assert valid.status(when - timedelta(seconds=1)) == "valid"
            assert valid.status(when) == "expired"


@pytest.mark.parametrize(
    "time",
    ["261323063709Z", "261232063709Z", "261201243709Z", "2612010637Z", "26120106370aZ", ""],
)
def test_bad_times_name_their_line(tmp_path: Path, time: str) -> None:
    index = tmp_path / "index.txt"
    good = "V\t261223063709Z\t\tAB\tunknown\t/CN=a"
    index.write_text(f"{good}\nV\t{time}\t\tAC\tunknown\t/CN=b\n")
    with pytest.raises(database.DatabaseError, match=rf"{index}:2: cannot parse"):
        database.read(index)


def test_an_edit_of_the_same_size_is_seen(tmp_path: Path) -> None:
    """The in-process cache goes by content, not by size or mtime (a same-size hand edit)."""
    index = tmp_path / "index.txt"
    index.write_text("V\t261223063709Z\t\tAB\tunknown\t/CN=a\n")
    assert database.read(index)[0].flag == "V"
    index.write_text("E\t261223063709Z\t\tAB\tunknown\t/CN=a\n")
    assert database.read(index)[0].flag == "E"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return generate(tmp_path_factory.mktemp("big"), "big", 300, 30, jobs=2)


def test_issue_and_revoke_parse_each_line_once(big: Profile) -> None:
    """Before: 7 full parses of index.txt per issue (strptime on every line each time)."""
    database.forget()
    before = database.lines_parsed[0]
    issue.issue_client(big, "one-more")
    assert database.lines_parsed[0] - before == 301  # every old line once, and the new one
    before = database.lines_parsed[0]
    revoke.revoke(big, name="one-more")
    assert database.lines_parsed[0] - before == 1  # only the line openssl changed


def test_check_lists_newcerts_once_instead_of_a_stat_per_entry(
    big: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    is_file_calls = 0
    real = Path.is_file

    def counting(self: Path) -> bool:
        nonlocal is_file_calls
        is_file_calls += 1
        return real(self)

    monkeypatch.setattr(Path, "is_file", counting)
    report = check.verify_profile(big)
    assert report.ok, report.messages(big)
    assert is_file_calls < 20  # fixed files only, none per certificate


def test_check_still_finds_a_missing_certificate_file(big: Profile) -> None:
    entry = next(e for e in database.read(big.index) if e.flag == "V")
    path = big.newcert_path(entry.serial)
    data = path.read_bytes()
    path.unlink()
    try:
        report = check.verify_profile(big)
        assert any(f"{path} is missing" in p for p in report.problems)
    finally:
        path.write_bytes(data)


def test_expiring_filter_matches_datetimes(big: Profile) -> None:
    now = datetime.now(UTC)
    where = inventory.make_filter(expiring="30d")
    found = {c.serial for c in inventory.certificates(big, now=now, where=where)}
    expected = {
        e.serial
        for e in database.read(big.index)
        if e.flag == "V" and now < e.not_after <= now + timedelta(days=30)
    }
    assert found == expected and found


def test_json_list_is_streamed_as_json_dumps_would_print(
    big: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [c.as_dict() for c in inventory.certificates(big)]
    for data in (items, []):
        out = io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        emit_json_list(iter(data))
        assert out.getvalue() == json.dumps(data, indent=2) + "\n"


def _fresh_read(path: Path) -> list[database.Entry]:
    database.forget()
    return database.read(path)


def _one_by_one(path: Path) -> list[database.Entry]:
    """The reference: each line alone through parse_line, as the reader did before."""
    lines = path.read_bytes().decode("utf-8", "surrogateescape").split("\n")
    return [
        database.parse_line(line.removesuffix("\r"), f"{path}:{number}")
        for number, line in enumerate(lines, 1)
        if line not in ("", "\r")
    ]


LINES = [
    "V\t271012080636Z\t\t0A\tunknown\t/CN=bot-1",
    "V\t20271012080636Z\t\t0B\tunknown\t/CN=bot-2\r",
    "R\t271012080636Z\t261012080636Z,keyCompromise\t0C\tunknown\t/CN=bot-3",
    "R\t271012080636Z\t261012080636Z\t0D\tunknown\t/O=x/CN=a\\/b/OU=y",
    "E\t491231235959Z\t\t0E\tunknown\t/CN=\\xC3\\xA9t\\xC3\\xA9",
    "V\t500101000000Z\t\t0F\tfile.pem\t/CN=old\r\r",  # a subject ending in \r: slow path
    "V\t271012080636Z\tsomething\t10\tunknown\t/CN=revoked-text-on-V",  # slow path accepts
    "",
    "\r",
]
BAD = [
    "V\t271012080636Z\t\t0a\tunknown\t/CN=lower-hex",
    "R\t271012080636Z\t\t11\tunknown\t/CN=R-without-time",
    "V\t271312080636Z\t\t12\tunknown\t/CN=month-13",
    "X\t271012080636Z\t\t13\tunknown\t/CN=flag",
    "V\t271012080636Z\t\t14\tunknown",
    " ",
]


def test_one_pass_reads_as_each_line_alone_did(tmp_path: Path) -> None:
    """The whole buffer in one regex pass gives the entries (and the first bad line's
    message, with its number) that parsing each line alone gives, on every shape."""
    rng = random.Random(11)
    index = tmp_path / "index.txt"
    for trial in range(300):
        lines = [rng.choice(LINES) for _ in range(rng.randrange(0, 12))]
        if trial % 3 == 0:
            lines.insert(rng.randrange(0, len(lines) + 1), rng.choice(BAD))
        index.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n" * (trial % 2))
        try:
            expected: list[database.Entry] | str = _one_by_one(index)
        except database.DatabaseError as exc:
            expected = str(exc)
        try:
            got: list[database.Entry] | str = _fresh_read(index)
        except database.DatabaseError as exc:
            got = str(exc)
        assert got == expected, lines
        if isinstance(got, list):
            for entry in got:  # the fields made once per line are those asked for before
                assert entry.serial_int == int(entry.serial, 16)
                assert entry.common_name == database.common_name(entry.subject)
                assert entry.until == database._sortable(entry.expiry)


def test_a_changed_database_reads_as_a_fresh_one(tmp_path: Path) -> None:
    """Lines kept from the last read plus the new ones parsed: always what a fresh
    process reads, whatever openssl or a hand edit changed (append, flip, delete, swap)."""
    rng = random.Random(12)
    index = tmp_path / "index.txt"
    lines = [f"V\t271012080636Z\t\t{n:04X}\tunknown\t/CN=n{n}" for n in range(50)]
    for _ in range(200):
        action = rng.randrange(4)
        at = rng.randrange(len(lines))
        if action == 0:
            lines.append(f"V\t281012080636Z\t\t{len(lines) + 4096:04X}\tunknown\t/CN=new")
        elif action == 1:
            lines[at] = lines[at].replace("V\t", "R\t", 1).replace("\t\t", "\t261012080636Z\t", 1)
        elif action == 2 and len(lines) > 5:
            del lines[at]
        else:
            lines[at], lines[-1] = lines[-1], lines[at]
        index.write_text("\n".join(lines) + "\n")
        incremental = database.read(index)
        assert incremental == _one_by_one(index)
    assert _fresh_read(index) == incremental
    database.read(index)
    for bad in BAD:  # a bad line in a changed file is named by its number, as on a first read
        at = rng.randrange(len(lines))
        index.write_text("\n".join([*lines[:at], bad, *lines[at:]]) + "\n")
        with pytest.raises(database.DatabaseError, match=rf"{index}:{at + 1}: cannot parse"):
            database.read(index)


def test_json_list_of_any_strings_prints_as_json_dumps_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path for flat string items (a `list` item) and the fallback for the rest."""
    texts = ["plain", 'quote " and \\ back', "tab\t nl\n cr\r", "é ✓ 😀", "\udcff", "\x00\x1f", ""]
    items: list[dict[str, object]] = [{"name": t, "reason": None, t or "k": "v"} for t in texts] + [
        {},
        {"n": 1, "f": 1.5, "b": True},
        {"nested": {"a": [1, None]}},
        {"x": None},
    ]
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    emit_json_list(iter(items))
    assert out.getvalue() == json.dumps(items, indent=2) + "\n"
