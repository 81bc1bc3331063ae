"""One-time enrollment tokens (`client invite`): stored only as hashes, single use, expiring."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certwiz import audit, ca, issue
from certwiz.errors import StateError
from certwiz.est import tokens
from certwiz.profile import Profile
from certwiz.transaction import transaction
from tests.conftest import invoke, snapshot


@pytest.fixture(scope="module")
def prof(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return ca.init("inv", tmp_path_factory.mktemp("tokens") / "certs")


def test_invite_cli_prints_the_token_once_and_stores_its_hash(prof: Profile) -> None:
    done = invoke(prof.dir.parent, "client", "invite", "-p", "inv", "-n", "dev-1",
                       "--ttl", "2h", "-d", "5d", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    token = out["token"]
    assert len(token) >= 43 and out["days"] == "5d" and out["name"] == "dev-1"
    path = tokens.path_of(prof)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    log = audit.path_of(prof).read_text()
    assert token not in log
    last = audit.read(prof)[-1]
    assert last["command"] == "client invite" and last["names"] == ["dev-1"]
    assert last["result"] == "ok"
    expires = datetime.strptime(out["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=119) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert tokens.find(prof, "dev-1", token).days == "5d"


def test_token_spent_once(prof: Profile) -> None:
    token = tokens.invite(prof, "dev-2").token
    with transaction(prof, "test spend", ["dev-2"]) as tx:
        tokens.spend(tx, tokens.find(prof, "dev-2", token))
    with pytest.raises(StateError, match="already used"):
        tokens.find(prof, "dev-2", token)


def test_token_for_another_name_or_unknown_refused(prof: Profile) -> None:
    token = tokens.invite(prof, "dev-3").token
    with pytest.raises(StateError, match="not an invite for 'dev-4'"):
        tokens.find(prof, "dev-4", token)
    for wrong in ("", token + "x", "A" * 10_000):
        with pytest.raises(StateError, match="unknown"):
            tokens.find(prof, "dev-3", wrong)


def test_token_expires(prof: Profile) -> None:
    token = tokens.invite(prof, "dev-5", ttl="1m").token
    later = datetime.now(UTC) + timedelta(minutes=2)
    with pytest.raises(StateError, match="expired"):
        tokens.find(prof, "dev-5", token, now=later)


def test_new_invite_replaces_the_unused_one(prof: Profile) -> None:
    first = tokens.invite(prof, "dev-6").token
    second = tokens.invite(prof, "dev-6")
    assert second.replaced == 1
    with pytest.raises(StateError, match="unknown"):
        tokens.find(prof, "dev-6", first)
    assert tokens.find(prof, "dev-6", second.token).name == "dev-6"


def test_name_with_a_valid_certificate_refused_without_a_trace(prof: Profile) -> None:
    issue.issue_client(prof, "has-cert", unencrypted=True)
    before = snapshot(prof.dir)
    with pytest.raises(StateError, match="already has a valid certificate"):
        tokens.invite(prof, "has-cert")
    assert snapshot(prof.dir) == before


def test_damaged_token_list_is_profile_corrupt(tmp_path: Path) -> None:
    other = ca.init("dmg", tmp_path / "certs")
    tokens.path_of(other).write_text("{not json")
    with pytest.raises(Exception, match="not a certwiz token list"):
        tokens.read(other)
