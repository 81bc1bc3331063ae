"""Every writing command renews a CRL that is past its one-third mark, and says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from certwiz import audit, intermediate, issue, upkeep
from certwiz.profile import Profile
from tests.conftest import crl_check, load_cert, load_crl, openssl


def stamp(when: datetime) -> str:
    return f"{when:%Y%m%d%H%M%SZ}"


def hand_crl(cnf: Path, out: Path, last: timedelta, following: timedelta, *extra: str) -> None:
    """A CRL made by hand with `openssl ca -gencrl`, its window relative to now."""
    now = datetime.now(UTC)
    window = ["-crl_lastupdate", stamp(now + last), "-crl_nextupdate", stamp(now + following)]
    openssl("ca", "-gencrl", "-batch", "-config", str(cnf), "-out", str(out), *window, *extra)


def crl_number(path: Path) -> int:
    return load_crl(path).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_issue_renews_a_crl_past_its_one_third_mark(cli, profile: Profile) -> None:
    hand_crl(profile.cnf, profile.crl, -timedelta(days=80), timedelta(days=10))
    number = crl_number(profile.crl)
    assert upkeep.crl_due(profile.crl)
    result = cli("client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert result.returncode == 0, result.stderr
    assert "less than a third of its validity" in result.stdout
    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    assert crl_number(profile.crl) == number + 1
    now = datetime.now(UTC)
    assert abs(crl.last_update_utc - now) < timedelta(minutes=2)
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=90)
    record = audit.read(profile)[-1]
    assert record["command"] == "client issue" and record["crl_renewed"]


def test_issue_leaves_a_fresh_enough_crl_alone(profile: Profile) -> None:
    hand_crl(profile.cnf, profile.crl, -timedelta(days=50), timedelta(days=40))
    before = profile.crl.read_bytes()
    done = issue.issue_client(profile, "bot-02")
    assert done.notes == []
    assert profile.crl.read_bytes() == before
    assert "crl_renewed" not in audit.read(profile)[-1]


def test_a_lapsed_crl_is_renewed_by_the_next_change(cli, profile: Profile) -> None:
    hand_crl(profile.cnf, profile.crl, -timedelta(days=2), -timedelta(days=1))
    result = cli("server", "issue", "-p", "my-app", "-n", "api.example.com", "--json")
    assert result.returncode == 0, result.stderr
    (note,) = json.loads(result.stdout)["notes"]
    assert "had lapsed" in note
    assert load_crl(profile.crl).next_update_utc > datetime.now(UTC) + timedelta(days=89)
    check = crl_check(profile.ca_cert, profile.crl, profile.cert_path("api.example.com"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_due_at_exactly_the_third() -> None:
    this = datetime(2030, 1, 1, tzinfo=UTC)
    following = this + timedelta(days=90)
    assert not upkeep.crl_due_between(this, following, following - timedelta(days=31))
    assert upkeep.crl_due_between(this, following, following - timedelta(days=29))


def test_root_crl_renewed_at_its_third_or_named_when_the_key_is_offline(cli, home: Path) -> None:
    fleet = intermediate.init("fleet", home)
    hand_crl(fleet.root.cnf, fleet.root.crl, -timedelta(days=300), timedelta(days=60))
    result = cli("client", "issue", "-p", "fleet", "-n", "bot-1", "-u", "--json")
    assert result.returncode == 0, result.stderr
    (note,) = json.loads(result.stdout)["notes"]
    assert str(fleet.root.crl) in note
    root_crl = load_crl(fleet.root.crl)
    assert root_crl.next_update_utc - root_crl.last_update_utc == timedelta(days=365)
    assert fleet.nginx_crl.read_bytes().endswith(fleet.root.crl.read_bytes())
    # Offline root key: the change goes on, says what to run, and status warns.
    key = home.parent / "root.key"
    assert cli("ca", "root-key", "export", "-p", "fleet", "--out", str(key)).returncode == 0
    hand_crl(
        fleet.root.cnf,
        fleet.root.crl,
        -timedelta(days=300),
        timedelta(days=60),
        "-keyfile",
        str(key),
    )
    before = fleet.root.crl.read_bytes()
    result = cli("client", "issue", "-p", "fleet", "-n", "bot-2", "-u")
    assert result.returncode == 0, result.stderr
    assert "certwiz crl gen -p fleet --root-key FILE" in result.stdout
    assert fleet.root.crl.read_bytes() == before
    # the hand-made root CRL reaches crl-chain.pem: recovery rebuilds it and records that
    record = audit.read(fleet)[-1]
    assert "bot-2" in record["names"]  # type: ignore[operator]
    assert any(f"rebuilt {fleet.nginx_crl}" in line for line in record["recovered"])  # type: ignore[union-attr]
    assert fleet.nginx_crl.read_bytes().endswith(before)
    status = cli("status", "-p", "fleet", "--json")
    assert status.returncode == 1
    (item,) = [i for i in json.loads(status.stdout)["items"] if i["kind"] == "root-crl"]
    assert item["state"] == "warning" and "--root-key FILE" in item["message"]
