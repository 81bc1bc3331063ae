"""grace.json and est-tokens.json: one way to read and write a profile's JSON list.

Both go through fsutil.read_records / write_records, so a damaged file is the same
ProfileCorrupt (exit 4) naming the file, and a write is the same sorted, atomic JSON.
No CA needed: the lists live in PROFILE/ and nothing else of the profile is read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from certwiz import grace
from certwiz.errors import ProfileCorrupt
from certwiz.est import tokens
from certwiz.profile import Profile

LATER = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
WHEN = "2099-01-02T03:04:05Z"
LISTS = [
    (grace, "grace list", {"AB": {"name": "app", "until": WHEN, "successor": "CD"}}),
    (tokens, "token list", {"ff": {"name": "d", "days": "5d", "expires": WHEN, "used": None}}),
]
DAMAGE = {
    "not json": "{not json",
    "not an object": "[1, 2]",
    "a record not an object": '{"AB": 3}',
    "a field missing": '{"AB": {}}',
    "a bad date": None,  # the good record with its date spelled otherwise
    "not utf-8": b"\xff\xfe{}",
}


@pytest.fixture
def prof(tmp_path: Path) -> Profile:
    profile = Profile("p", tmp_path)
    profile.dir.mkdir()
    return profile


@pytest.mark.parametrize(("module", "what", "good"), LISTS, ids=["grace", "tokens"])
def test_a_good_list_reads_and_an_absent_one_is_empty(
    prof: Profile, module: ModuleType, what: str, good: dict[str, object]
) -> None:
    assert module.read(prof) == {}
    module.path_of(prof).write_text(json.dumps(good))
    (key,) = module.read(prof)
    assert key == next(iter(good))


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize(("module", "what", "good"), LISTS, ids=["grace", "tokens"])
def test_a_damaged_list_is_profile_corrupt_naming_the_file(
    prof: Profile, module: ModuleType, what: str, good: dict[str, object], damage: str
) -> None:
    path = module.path_of(prof)
    text = DAMAGE[damage]
    if text is None:
        text = json.dumps(good).replace(WHEN, "2099-01-02 03:04:05")
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ProfileCorrupt) as caught:
        module.read(prof)
    assert str(caught.value).startswith(f"{path}: not a certwiz {what} (")
    assert caught.value.exit_code == 4


def test_writes_are_sorted_json_with_their_mode_and_an_empty_list_removes_the_file(
    prof: Profile,
) -> None:
    pending = {s: grace.Pending(s, "app", LATER, "EE") for s in ("0B", "0A")}
    grace.write(prof, pending)
    path = grace.path_of(prof)
    assert path.read_text().index('"0A"') < path.read_text().index('"0B"')
    assert path.stat().st_mode & 0o777 == 0o644 and grace.read(prof) == pending
    invite = tokens.Invite("ab", "d", "5d", LATER)
    tokens.write(prof, {"ab": invite}, LATER - timedelta(hours=1))
    assert tokens.path_of(prof).stat().st_mode & 0o777 == 0o600
    assert tokens.read(prof) == {"ab": invite}
    tokens.write(prof, {"ab": invite}, LATER)  # expired by then: nothing left
    grace.write(prof, {})
    assert not tokens.path_of(prof).exists() and not path.exists()
