"""`certwiz status`: Nagios exit codes 0/1/2, the worst item first, and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from certwiz import ca, issue, status
from certwiz.profile import Profile
from tests.conftest import REPO, load_cert, snapshot
from tests.test_crl_renewal import hand_crl


def test_all_fine_is_exit_0_with_every_item_in_json(cli, profile: Profile) -> None:
    done = issue.issue_client(profile, "bot-01")
    result = cli("status", "-p", "my-app", "--json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert {(i["kind"], i["state"]) for i in items} == {("ca", "ok"), ("crl", "ok")}
    for item in items:
        assert set(item) >= {"kind", "name", "serial", "not_after", "days_left", "state"}
    (ca_item,) = [i for i in items if i["kind"] == "ca"]
    cert = load_cert(profile.ca_cert)
    assert int(ca_item["serial"], 16) == cert.serial_number
    assert ca_item["name"] == "my-app Root CA"
    assert ca_item["not_after"] == f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert 3649 < ca_item["days_left"] <= 3650
    assert done.serial not in result.stdout  # a leaf far from expiry is not an item


def test_leaf_in_warning_window_is_exit_1(cli, profile: Profile) -> None:
    soon = issue.issue_client(profile, "bot-soon", days="10d")
    issue.issue_client(profile, "bot-later")
    result = cli("status", "-p", "my-app", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1
    first = data["items"][0]
    assert (first["kind"], first["name"], first["serial"], first["state"]) == (
        "client", "bot-soon", soon.serial, "warning",
    )  # fmt: skip
    assert 9.9 < first["days_left"] <= 10
    assert "certwiz client renew -p my-app -n bot-soon" in first["message"]
    assert cli("status", "-p", "my-app", "--warn", "9d").returncode == 0
    text = cli("status", "-p", "my-app")
    assert text.returncode == 1
    assert text.stdout.splitlines()[1].startswith("WARNING")  # worst first, under the header


def test_expired_crl_is_exit_2_and_first(cli, profile: Profile) -> None:
    issue.issue_client(profile, "bot-soon", days="10d")
    hand_crl(profile.cnf, profile.crl, -timedelta(days=3), -timedelta(hours=1))
    result = cli("status", "-p", "my-app")
    assert result.returncode == 2, result.stderr
    first = result.stdout.splitlines()[1]
    assert first.startswith("CRITICAL") and " crl " in first
    assert "run: certwiz crl gen -p my-app" in first
    data = json.loads(cli("status", "-p", "my-app", "--json").stdout)
    assert [i["state"] for i in data["items"]][:2] == ["critical", "warning"]
    assert data["items"][0]["days_left"] < 0


def test_crl_past_its_third_warns(cli, profile: Profile) -> None:
    hand_crl(profile.cnf, profile.crl, -timedelta(days=70), timedelta(days=20))
    assert cli("status", "-p", "my-app", "--warn", "1d").returncode == 1


def test_unusable_crl_is_exit_2(cli, profile: Profile) -> None:
    profile.crl.write_text("garbage\n")
    result = cli("status", "-p", "my-app", "--json")
    assert result.returncode == 2
    (crl,) = [i for i in json.loads(result.stdout)["items"] if i["kind"] == "crl"]
    assert crl["state"] == "critical" and "unusable" in crl["message"]


def test_expired_ca_is_critical(profile: Profile) -> None:
    later = load_cert(profile.ca_cert).not_valid_after_utc + timedelta(days=1)
    code, items = status.report([profile], "30d", now=later)
    assert code == 2
    assert (items[0].kind, items[0].state) in {("ca", "critical"), ("crl", "critical")}
    assert any(i.kind == "ca" and i.state == "critical" for i in items)
    code, items = status.report([profile], "30d", now=later - timedelta(days=10))
    assert code == 2  # the CRL (90 days) lapsed long before; the CA only warns
    assert [i.state for i in items if i.kind == "ca"] == ["warning"]


def test_every_profile_under_the_home(cli, home, profile: Profile) -> None:
    other = ca.init("other", home)
    issue.issue_server(other, "soon.example.com", days="2d")
    result = cli("status", "--json")
    assert result.returncode == 1
    items = json.loads(result.stdout)["items"]
    assert {i["profile"] for i in items} == {"my-app", "other"}
    assert items[0]["name"] == "soon.example.com"


def test_status_writes_nothing(cli, profile: Profile) -> None:
    hand_crl(profile.cnf, profile.crl, -timedelta(days=80), timedelta(days=5))
    before = snapshot(profile.dir)
    assert cli("status", "-p", "my-app").returncode == 1
    assert snapshot(profile.dir) == before


def test_hostile_warn_exit_2(cli, profile: Profile) -> None:
    before = snapshot(profile.dir)
    for value in ("0", "30x", "-1d", "1e9", "30d\n", "", "36501d"):
        result = cli("status", "-p", "my-app", "--warn", value)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith("certwiz: error: warn: ")
    assert cli("status", "-p", "../x").returncode == 2
    assert snapshot(profile.dir) == before


def test_cron_recipe_is_silent_when_fine_and_prints_when_not(home, profile: Profile) -> None:
    """examples/cron/certwiz-status as cron runs it: sh, `\\%` unescaped, certwiz on PATH."""
    line = (REPO / "examples/cron/certwiz-status").read_text().splitlines()[-1]
    command = line.split(" root ", 1)[1].replace("\\%", "%")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "CERTWIZ_HOME": str(home)}
    fine = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "", "")
    issue.issue_client(profile, "bot-soon", days="20d")
    warned = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
    assert warned.returncode == 0  # printf succeeded; cron mails what was printed
    assert warned.stdout.splitlines()[1].startswith("WARNING") and "bot-soon" in warned.stdout


def test_a_revocation_missing_from_the_crl_is_critical(cli, profile: Profile) -> None:
    """An outside verifier: after `openssl ca -revoke` without -gencrl (or a revoke killed
    before its CRL) status said all fine while NGINX still admitted the revoked client."""
    from tests.conftest import openssl

    issue.issue_client(profile, "eve")
    openssl("ca", "-config", str(profile.cnf), "-revoke", str(profile.cert_path("eve")))
    serial = f"{load_cert(profile.cert_path('eve')).serial_number:X}"
    result = cli("status", "-p", "my-app", "--json")
    assert result.returncode == 2, result.stdout
    first = json.loads(result.stdout)["items"][0]
    assert first["kind"] == "crl" and first["state"] == "critical"
    assert serial.lstrip("0") in first["message"] and "crl gen" in first["message"]
    assert cli("crl", "gen", "-p", "my-app").returncode == 0
    assert cli("status", "-p", "my-app").returncode == 0


def test_the_ocsp_responder_certificate_names_the_command_that_renews_it(
    cli, profile: Profile
) -> None:
    """Attack r1 item 10e: status said `certwiz client renew -n certwiz-ocsp-responder`
    (a reserved name, refused) for the responder's 30-day certificate, and warned from
    its first day. `ocsp serve` re-issues it at start once less than a week is left."""
    from datetime import UTC, datetime

    from certwiz import ocsp
    from certwiz.ocsp import responder

    serial = responder.ensure_responder(profile, None)
    assert serial is not None
    result = cli("status", "-p", "my-app", "--json")
    assert result.returncode == 0, result.stdout  # a fresh responder is not an alarm
    later = datetime.now(UTC) + timedelta(days=ocsp.RESPONDER_DAYS - ocsp.RENEW_BEFORE_DAYS + 1)
    code, items = status.report([profile], now=later)
    (item,) = [i for i in items if i.name == ocsp.RESPONDER_NAME]
    assert code == 1 and item.state == "warning" and item.serial == serial
    assert "client renew" not in item.message
    assert f"certwiz ocsp serve -p {profile.name}" in item.message
    shown = cli("client", "renew", "-p", "my-app", "-n", ocsp.RESPONDER_NAME)
    assert shown.returncode == 2  # which is why status must not suggest it
