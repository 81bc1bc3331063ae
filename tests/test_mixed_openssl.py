"""certwiz and hand-run `openssl ca` on one profile, in both orders."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from certwiz import issue, revoke
from tests.conftest import crl_check, hand_sign, load_cert, load_crl, openssl


def test_hand_revoke_and_gencrl_show_up_in_certwiz(cli, profile) -> None:
    bot = issue.issue_client(profile, "bot-01")
    issue.issue_client(profile, "bot-02")
    openssl(
        "ca",
        "-config",
        str(profile.cnf),
        "-revoke",
        str(profile.cert_path("bot-01")),
        "-crl_reason",
        "keyCompromise",
    )
    openssl("ca", "-config", str(profile.cnf), "-gencrl", "-out", str(profile.crl))
    rows = {r["name"]: r for r in json.loads(cli("list", "-p", "my-app", "--json").stdout)}
    assert rows["bot-01"]["status"] == "revoked"
    assert rows["bot-01"]["reason"] == "keyCompromise"
    assert rows["bot-02"]["status"] == "valid"
    assert [e.serial_number for e in load_crl(profile.crl)] == [int(bot.serial, 16)]
    # and certwiz keeps counting from where openssl left the CRL number
    number = load_crl(profile.crl).extensions.get_extension_for_class(x509.CRLNumber).value
    revoke.revoke(profile, name="bot-02")
    after = load_crl(profile.crl).extensions.get_extension_for_class(x509.CRLNumber).value
    assert after.crl_number == number.crl_number + 1


def test_hand_issued_certificate_is_listed_and_revocable(cli, profile, tmp_path: Path) -> None:
    crt = hand_sign(profile.cnf, tmp_path, "handmade", "-extensions", "client_ext")
    cert = load_cert(crt)
    rows = json.loads(cli("list", "-p", "my-app", "--json").stdout)
    assert [(r["name"], r["kind"], r["status"]) for r in rows] == [("handmade", "client", "valid")]
    assert int(rows[0]["serial"], 16) == cert.serial_number
    # certwiz refuses a second valid "handmade" and revokes the hand-issued one by name
    assert cli("client", "issue", "-p", "my-app", "-n", "handmade", "-u").returncode == 2
    assert cli("revoke", "-p", "my-app", "-n", "handmade").returncode == 0
    assert [e.serial_number for e in load_crl(profile.crl)] == [cert.serial_number]
    verify = crl_check(profile.ca_cert, profile.crl, crt)
    assert verify.returncode != 0


def test_certwiz_after_hand_issuance_keeps_serials_unique(profile, tmp_path: Path) -> None:
    first = issue.issue_client(profile, "a")
    hand = hand_sign(profile.cnf, tmp_path, "b")
    third = issue.issue_client(profile, "c")
    serials = [
        int(first.serial, 16),
        load_cert(hand).serial_number,
        int(third.serial, 16),
    ]
    assert serials == sorted(set(serials))


def test_expired_certificate_is_listed_expired_and_does_not_block(cli, profile, tmp_path) -> None:
    hand_sign(profile.cnf, tmp_path, "old-bot", "-extensions", "client_ext",
              "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")  # fmt: skip
    (row,) = json.loads(cli("list", "-p", "my-app", "--json").stdout)
    assert (row["name"], row["status"], row["not_after"]) == (
        "old-bot",
        "expired",
        "2020-02-01T00:00:00Z",
    )
    assert cli("revoke", "-p", "my-app", "-n", "old-bot").returncode == 2
    fresh = cli("client", "issue", "-p", "my-app", "-n", "old-bot", "-u", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert load_cert(profile.cert_path("old-bot")).serial_number == int(
        json.loads(fresh.stdout)["serial"], 16
    )
