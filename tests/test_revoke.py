"""Revocation and the CRL, checked with cryptography and `openssl verify -crl_check`."""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from certwiz import issue, revoke
from tests.conftest import crl_check, load_cert, load_crl, snapshot


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
    for args in (["-n", "bot-01"], ["-n", "never-issued"], ["--serial", "ABCDEF"]):
        result = cli("revoke", "-p", "my-app", *args)
        assert result.returncode == 2, args
        assert "has no valid certificate" in result.stderr
    assert snapshot(profile.dir) == before


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
