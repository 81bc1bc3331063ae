"""Invisible characters in names, checked against the Unicode Character Database itself.

Issue 13 item 11: U+034F, U+FE0F, U+3164, U+115F, U+FFA0, U+17B4, U+2800 were accepted, so
`list` showed several clients that all read `bot-01`. The oracle here is the UCD text files
of Debian's `unicode-data` package (DerivedCoreProperties.txt, PropList.txt), read
independently of certwiz: every code point of Default_Ignorable_Code_Point, of its
contributory properties, of category Cf and of White_Space (but the space itself) is
tried, and every one must be refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from certwiz import names
from certwiz.errors import InputError
from tests.conftest import Result, missing, snapshot

UCD = Path("/usr/share/unicode")


def _ucd_property(file: str, prop: str) -> set[int]:
    """The code points a UCD property file lists for `prop` (ranges expanded)."""
    path = UCD / file
    if not path.is_file():
        missing(str(path), "apt-get install unicode-data")
    points: set[int] = set()
    line_re = re.compile(r"([0-9A-F]{4,6})(?:\.\.([0-9A-F]{4,6}))?\s*;\s*(\w+)")
    for line in path.read_text().splitlines():
        match = line_re.match(line)
        if match and match.group(3) == prop:
            first = int(match.group(1), 16)
            points.update(range(first, int(match.group(2) or match.group(1), 16) + 1))
    assert points, f"{prop} not found in {path}"
    return points


def _refused(ch: str) -> bool:
    try:
        names.display_name(f"bot{ch}01", "name")
    except InputError as exc:
        assert exc.field == "name" and f"U+{ord(ch):04X}" in exc.rule
        return True
    return False


REPORTED = ["\u034f", "\ufe0f", "\u3164", "\u115f", "\uffa0", "\u17b4", "\u2800"]


def test_the_reported_characters_are_refused() -> None:
    assert [f"U+{ord(c):04X}" for c in REPORTED if not _refused(c)] == []


@pytest.mark.parametrize(
    ("file", "prop"),
    [
        ("DerivedCoreProperties.txt", "Default_Ignorable_Code_Point"),
        ("PropList.txt", "Other_Default_Ignorable_Code_Point"),
        ("PropList.txt", "Variation_Selector"),
        ("PropList.txt", "Prepended_Concatenation_Mark"),  # format characters too
        ("PropList.txt", "White_Space"),
    ],
)
def test_every_code_point_of_the_property_is_refused(file: str, prop: str) -> None:
    points = _ucd_property(file, prop) - {0x20}
    accepted = [f"U+{cp:04X}" for cp in sorted(points) if not _refused(chr(cp))]
    assert accepted == []


def test_every_format_character_and_filler_is_refused() -> None:
    every = [chr(cp) for cp in range(0x110000)]
    format_chars = [c for c in every if unicodedata.category(c) == "Cf"]
    assert len(format_chars) > 150
    fillers = [c for c in every if unicodedata.name(c, "").endswith(" FILLER")]
    fillers = [c for c in fillers if unicodedata.category(c)[0] in "LM"]  # not "gap filler" Po
    assert {"\u115f", "\u1160", "\u3164", "\uffa0"} <= set(fillers)
    accepted = [f"U+{ord(c):04X}" for c in format_chars + fillers if not _refused(c)]
    assert accepted == []


def test_the_set_is_no_wider_than_it_must_be() -> None:
    """Visible letters, marks and symbols of many scripts stay accepted."""
    # (the decomposed "e\u0301" is refused: names are NFC, test_final_attack.py)
    for name in ["Zoë Müller", "\u0430lice", "שלום", "가나다", "ក្រុម", "ᠮᠣᠩᠭᠣᠯ", "⠁⠃", "\u00e9"]:
        assert names.client_name(name) == name


def test_printable_ascii_holds_no_invisible_character() -> None:
    """display_name skips the per-character lookups for printable ASCII: this is why."""
    assert not [ch for ch in map(chr, range(0x20, 0x7F)) if names.invisible(ch)]


def test_the_cli_refuses_them_with_one_line_and_writes_nothing(
    cli: Callable[..., Result], home: Path
) -> None:
    assert cli("ca", "init", "-p", "my-app").returncode == 0
    before = snapshot(home)
    for ch in REPORTED:
        done = cli("client", "issue", "-p", "my-app", "-n", f"bot{ch}-01", "-u")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("certwiz: error: name: ")
        assert f"U+{ord(ch):04X}" in done.stderr and done.stderr.count("\n") == 1
    assert snapshot(home) == before
