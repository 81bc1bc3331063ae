"""Revocation and the CRL, checked with cryptography and `openssl verify -crl_check`."""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from certwiz import database, issue, revoke
from tests.conftest import crl_check, load_cert, load_crl, openssl, snapshot
from tests.nginx_support import render_argv, require_nginx
from tests.test_nginx_render import nginx_test


def crl_number(path: Path) -> int:
    return load_crl(path).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def revoked_reasons(profile) -> dict[int, x509.ReasonFlags | None]:
    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    out: dict[int, x509.ReasonFlags | None] = {}
    for entry in crl:
        try:
            out[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            out[entry.serial_number] = None
    return out


def verify(profile, name: str) -> subprocess.CompletedProcess[str]:
    return crl_check(profile.ca_cert, profile.crl, profile.cert_path(name))


def test_revoke_lists_exactly_the_revoked_serials(cli, profile) -> None:
    a = issue.issue_client(profile, "bot-a")
    b = issue.issue_client(profile, "bot-b")
    c = issue.issue_client(profile, "bot-c")
    first = crl_number(profile.crl)
    assert verify(profile, "bot-a").returncode == 0
    result = cli("revoke", "-p", "my-app", "-n", "bot-a", "--reason", "keyCompromise", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["serials"] == [a.serial]
    second = crl_number(profile.crl)
    assert second > first
    assert revoked_reasons(profile) == {int(a.serial, 16): x509.ReasonFlags.key_compromise}
    result = cli(
        "revoke", "-p", "my-app", "--serial", c.serial.lower(), "--reason", "cessationOfOperation"
    )
    assert result.returncode == 0, result.stderr
    assert crl_number(profile.crl) > second
    assert revoked_reasons(profile) == {
        int(a.serial, 16): x509.ReasonFlags.key_compromise,
        int(c.serial, 16): x509.ReasonFlags.cessation_of_operation,
    }
    rejected = verify(profile, "bot-a")
    assert rejected.returncode != 0 and "certificate revoked" in rejected.stdout + rejected.stderr
    assert verify(profile, "bot-b").returncode == 0
    assert int(b.serial, 16) not in revoked_reasons(profile)
    assert stat.S_IMODE(profile.crl.stat().st_mode) == 0o644


def test_revoke_then_reissue_same_name(cli, profile) -> None:
    old = issue.issue_client(profile, "bot-01")
    revoke.revoke(profile, name="bot-01", reason="superseded")
    new = issue.issue_client(profile, "bot-01")
    assert new.serial != old.serial
    listing = json.loads(cli("list", "-p", "my-app", "--json").stdout)
    assert [(c["serial"], c["status"], c["kind"]) for c in listing] == [
        (old.serial, "revoked", "client"),
        (new.serial, "valid", "client"),
    ]
    assert listing[0]["reason"] == "superseded"
    assert verify(profile, "bot-01").returncode == 0  # issued/ holds the new one
    shown = json.loads(cli("show", "-p", "my-app", "-n", "bot-01", "--json").stdout)
    assert shown["serial"] == new.serial
    assert [h["serial"] for h in shown["history"]] == [old.serial]


def test_revoking_a_name_without_valid_certificate_changes_nothing(cli, profile) -> None:
    issue.issue_client(profile, "bot-01")
    revoke.revoke(profile, name="bot-01")
    before = snapshot(profile.dir)
    for args in (["-n", "never-issued"], ["--serial", "ABCDEF"]):
        result = cli("revoke", "-p", "my-app", *args)
        assert result.returncode == 2, args
        assert "has no valid certificate" in result.stderr
    assert snapshot(profile.dir) == before


def test_revoking_again_what_the_crl_lists_publishes_nothing(cli, profile) -> None:
    """A rerun of a revoke killed before NGINX reloaded (D5; the NGINX side is in
    test_nginx_e2e.py): exit 0, "already revoked", no new CRL, and how to reload."""
    issue.issue_client(profile, "bot-01")
    serial = revoke.revoke(profile, name="bot-01").serials[0]
    crl = profile.crl.read_bytes()
    for args in (["-n", "bot-01"], ["--serial", serial]):
        result = cli("revoke", "-p", "my-app", *args)
        assert result.returncode == 0, (args, result.stderr)
        assert f"was already revoked ({serial})" in result.stdout
        assert "the CRL is current" in result.stdout
        assert "nginx enforces it only after a reload; run: nginx -t && nginx -s reload" in (
            result.stdout
        )
    assert profile.crl.read_bytes() == crl
    records = [json.loads(x) for x in (profile.dir / "audit.log").read_text().splitlines()]
    assert records[-1]["already_revoked"] == [serial]


def test_crl_gen_renews_with_new_number_and_lifetime(cli, profile) -> None:
    before = crl_number(profile.crl)
    result = cli("crl", "gen", "-p", "my-app", "--days", "3")
    assert result.returncode == 0, result.stderr
    crl = load_crl(profile.crl)
    assert crl_number(profile.crl) == before + 1
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=3)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())


def test_revoked_server_certificate_is_listed_as_server(cli, profile) -> None:
    s = issue.issue_server(profile, "web.local")
    revoke.revoke(profile, name="web.local", reason="affiliationChanged")
    (row,) = json.loads(cli("list", "-p", "my-app", "--json").stdout)
    assert (row["name"], row["kind"], row["status"], row["serial"]) == (
        "web.local",
        "server",
        "revoked",
        s.serial,
    )
    assert row["revoked_at"] is not None


def test_purge_keeps_a_server_key_that_nginx_may_still_use(cli, profile, tmp_path: Path) -> None:
    """Issue 13 item 14, second suspicion (confirmed): `revoke --purge` of a server name
    deleted the key its rendered NGINX config names, so every later `nginx -t` (and so
    every --reload, and with it every new CRL) failed. A server's key and chain are kept."""
    binary = require_nginx()
    issue.issue_server(profile, "www.example.com")
    issue.issue_client(profile, "bot")
    out = tmp_path / "site"
    argv = render_argv("my-app", "www.example.com", "http://127.0.0.1:9", "127.0.0.1:8443", out)
    assert cli(*argv).returncode == 0
    done = cli("revoke", "-p", "my-app", "-n", "www.example.com", "--purge", "--json")
    assert done.returncode == 0, done.stderr
    key = profile.key_path("www.example.com")
    assert key.is_file() and json.loads(done.stdout)["kept"] == [str(key)]
    assert json.loads(done.stdout)["purged"] == []
    tested = nginx_test(binary, tmp_path, out / "mtls_proxy.conf")
    assert tested.returncode == 0, tested.stderr
    text = cli("revoke", "-p", "my-app", "-n", "bot", "--purge")  # a client's key does go
    assert text.returncode == 0 and not profile.key_path("bot").exists()


def _revoked_by_hand(profile, name: str) -> None:  # type: ignore[no-untyped-def]
    """The state a revoke SIGKILLed between `openssl ca -revoke` and its CRL leaves."""
    openssl("ca", "-config", str(profile.cnf), "-revoke", str(profile.cert_path(name)))


def test_a_revoke_killed_before_its_crl_is_finished_by_the_retry(cli, profile) -> None:
    """Issue 13 item 2 (the NGINX side is in test_nginx_e2e.py): the retry exited 2 with
    "no valid certificate" and published nothing. It finishes the job and says so."""
    issue.issue_client(profile, "bot")
    serial = database.read(profile.index)[0].serial  # as openssl writes it (even length)
    _revoked_by_hand(profile, "bot")
    assert crl_check(profile.ca_cert, profile.crl, profile.cert_path("bot")).returncode == 0
    done = cli("revoke", "-p", "my-app", "-n", "bot")
    assert done.returncode == 0, done.stderr
    assert f"Finished the interrupted revocation of {serial}" in done.stdout
    assert "nginx enforces it only after a reload" in done.stdout
    assert crl_check(profile.ca_cert, profile.crl, profile.cert_path("bot")).returncode != 0
    # done: it says so and publishes nothing
    by_serial = cli("revoke", "-p", "my-app", "--serial", serial)
    assert by_serial.returncode == 0 and "was already revoked" in by_serial.stdout


def test_every_change_that_publishes_a_crl_says_nginx_needs_a_reload(cli, profile) -> None:
    issue.issue_client(profile, "bot")
    _revoked_by_hand(profile, "bot")
    done = cli("client", "issue", "-p", "my-app", "-n", "other", "-u", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["crl"] == str(profile.crl) and data["reload_command"].endswith("-s reload")
    text = cli("server", "issue", "-p", "my-app", "-n", "a.example")
    assert text.returncode == 0 and "reload" not in text.stdout  # no CRL published this time
