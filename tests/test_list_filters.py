"""`certwiz list` filters against valid, revoked, expired and superseded entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certwiz import ca, inventory, issue, renew, revoke
from certwiz.errors import InputError
from certwiz.profile import Profile
from tests.conftest import hand_sign, invoke, load_cert, snapshot


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Profile, dict[str, str]]:
    """One profile with each kind of entry; the serial of each by label."""
    home = tmp_path_factory.mktemp("list") / "certs"
    profile = ca.init("inv", home)
    serials = {
        "bot-a": issue.issue_client(profile, "bot-a").serial,
        "api.example.com": issue.issue_server(profile, "api.example.com", days="10d").serial,
        "bot-r": issue.issue_client(profile, "bot-r").serial,
        "bot-p": issue.issue_client(profile, "bot-p", days="3d").serial,
    }
    revoke.revoke(profile, name="bot-r", reason="keyCompromise")
    # An expired one, signed by hand with dates in the past.
    old = hand_sign(profile.cnf, home.parent / "hand", "old-bot", "-extensions", "client_ext",
                    "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")  # fmt: skip
    serials["old-bot"] = f"{load_cert(old).serial_number:X}"
    # Renewed with a grace: the old one is superseded-pending, the new one valid.
    serials["bot-p new"] = renew.renew(profile, "bot-p", "client", grace_period="2d").serial
    return home, profile, serials


def listed(profile: Profile, **where: str) -> set[tuple[str, str]]:
    found = inventory.certificates(profile, where=inventory.make_filter(**where))
    return {(c.name, c.status) for c in found}


def test_status_column(stocked) -> None:
    _, profile, _ = stocked
    assert listed(profile) == {
        ("bot-a", "valid"),
        ("api.example.com", "valid"),
        ("bot-r", "revoked"),
        ("bot-p", "superseded-pending"),
        ("bot-p", "valid"),
        ("old-bot", "expired"),
    }


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ({"status": "valid"}, {"bot-a", "api.example.com", "bot-p"}),
        ({"status": "revoked"}, {"bot-r"}),
        ({"status": "expired"}, {"old-bot"}),
        ({"status": "superseded-pending"}, {"bot-p"}),
        ({"kind": "server"}, {"api.example.com"}),
        ({"kind": "client"}, {"bot-a", "bot-r", "bot-p", "old-bot"}),
        ({"expiring": "30d"}, {"api.example.com"}),
        ({"expiring": "366d"}, {"bot-a", "api.example.com", "bot-p"}),
        ({"expiring": "1h"}, set()),
        ({"name": "bot-*"}, {"bot-a", "bot-r", "bot-p"}),
        ({"name": "*.example.com"}, {"api.example.com"}),
        ({"name": "bot-[ar]"}, {"bot-a", "bot-r"}),
        ({"name": "bot-?", "status": "valid", "kind": "client"}, {"bot-a", "bot-p"}),
        ({"name": "bot-[ar]", "status": "valid"}, {"bot-a"}),
        ({"name": "BOT-*"}, set()),
        ({"status": "revoked", "kind": "server"}, set()),
    ],
)
def test_filters_combine(stocked, where: dict[str, str], names: set[str]) -> None:
    _, profile, _ = stocked
    assert {name for name, _ in listed(profile, **where)} == names


def test_json_and_text_through_the_cli(stocked) -> None:
    home, _, serials = stocked
    result = invoke(home, "list", "-p", "inv", "--status", "superseded-pending", "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["serial"] == serials["bot-p"] and entry["superseded_until"]
    text = invoke(home, "list", "-p", "inv", "--kind", "client", "--name", "bot-*")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 5 and "grace ends" in text.stdout  # header + a, r, p (old), p (new)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--status", "valid\n"),
        ("--status", "VALID"),
        ("--status", "superseded"),
        ("--kind", "both"),
        ("--kind", ""),
        ("--expiring", "0d"),
        ("--expiring", "-5d"),
        ("--expiring", "1y"),
        ("--expiring", "30d;ls"),
        ("--name", ""),
        ("--name", "bot\n*"),
        ("--name", "x" * 257),
        ("--name", "bot\u202e*"),
    ],
)
def test_hostile_filters_exit_2(stocked, option: str, value: str) -> None:
    home, profile, _ = stocked
    before = snapshot(profile.dir)
    result = invoke(home, "list", "-p", "inv", option, value)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {option[2:]}: ")
    assert snapshot(profile.dir) == before


def test_make_filter_names_the_field() -> None:
    with pytest.raises(InputError) as caught:
        inventory.make_filter(expiring="soon")
    assert caught.value.field == "expiring"
