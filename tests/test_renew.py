"""`client renew` / `server renew`, with and without --grace: no zombie certificates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs12

from certwiz import grace, inventory, issue, renew, revoke
from certwiz.openssl import Secret
from certwiz.profile import Profile
from tests.conftest import crl_check, load_cert, load_crl, snapshot

PASSWORD = "renew me please"


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def reason_of(profile: Profile, serial: str) -> x509.ReasonFlags | None:
    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    if entry is None:
        return None
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def valid_serials(profile: Profile, name: str) -> list[str]:
    return [e.serial for e in inventory.valid_named(profile, name)]


def end_grace(profile: Profile) -> None:
    """Move every pending grace into the past (what a week of waiting would do)."""
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    pending = grace.read(profile)
    assert pending
    grace.write(profile, {s: grace.Pending(p.serial, p.name, past, p.successor)
                          for s, p in pending.items()})  # fmt: skip


def test_client_renew_supersedes_at_once_and_keeps_format(cli, profile: Profile, tmp_path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)  # a secret file: only ours
    old = issue.issue_client(profile, "bot-01", key_type="ec:P-384", p12_format="modern",
                             passphrase=Secret(PASSWORD))  # fmt: skip
    old_cert = load_cert(profile.cert_path("bot-01"))
    result = cli("client", "renew", "-p", "my-app", "-n", "bot-01", "-d", "30d",
                 "--p12-passphrase-file", str(pw), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["superseded"] == old.serial and done["superseded_until"] is None
    assert reason_of(profile, old.serial) == x509.ReasonFlags.superseded
    assert valid_serials(profile, "bot-01") == [done["serial"]]
    new_cert = load_cert(profile.cert_path("bot-01"))
    assert new_cert.serial_number == int(done["serial"], 16)
    assert new_cert.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert spki(new_cert) != spki(old_cert)  # a new key by default
    assert (new_cert.not_valid_after_utc - new_cert.not_valid_before_utc) == timedelta(days=30)
    eku = new_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    bundle = profile.p12_path("bot-01").read_bytes()
    assert renew.p12_format_of(profile.p12_path("bot-01")) == "modern"
    key, cert, _ = pkcs12.load_key_and_certificates(bundle, PASSWORD.encode())
    assert cert is not None and cert.serial_number == new_cert.serial_number
    assert key is not None and spki(cert) == spki(new_cert)
    assert crl_check(profile.ca_cert, profile.crl, profile.cert_path("bot-01")).returncode == 0
    record = [r for r in json.loads(cli("audit", "-p", "my-app", "--json").stdout)
              if r.get("command") == "client renew"][-1]  # fmt: skip
    assert set(record["serials"]) == {old.serial, done["serial"]}


def test_server_renew_keeps_sans_and_reuse_key_keeps_the_key(cli, profile: Profile) -> None:
    issue.issue_server(profile, "api.example.com", sans=["127.0.0.1", "email:ops@example.com",
                                                         "*.api.example.com"])  # fmt: skip
    before = load_cert(profile.cert_path("api.example.com"))
    result = cli("server", "renew", "-p", "my-app", "-n", "api.example.com", "--reuse-key")
    assert result.returncode == 0, result.stderr
    after = load_cert(profile.cert_path("api.example.com"))
    assert after.serial_number != before.serial_number
    assert spki(after) == spki(before)
    san = x509.SubjectAlternativeName
    assert after.extensions.get_extension_for_class(san).value == (
        before.extensions.get_extension_for_class(san).value
    )
    chain = profile.fullchain_path("api.example.com").read_bytes()
    assert chain.startswith(profile.cert_path("api.example.com").read_bytes())
    assert reason_of(profile, f"{before.serial_number:X}") == x509.ReasonFlags.superseded


def test_grace_keeps_the_old_one_valid_until_it_ends(cli, profile: Profile) -> None:
    old = issue.issue_client(profile, "bot-01")
    result = cli("client", "renew", "-p", "my-app", "-n", "bot-01", "--grace", "7d",
                 "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    until = datetime.strptime(done["superseded_until"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(until - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=2)
    # During the grace: both verify, list says superseded-pending with the date.
    assert reason_of(profile, old.serial) is None
    old_pem = profile.newcert_path(old.serial)
    assert crl_check(profile.ca_cert, profile.crl, old_pem).returncode == 0
    listing = {c["serial"]: c for c in json.loads(cli("list", "-p", "my-app", "--json").stdout)}
    assert listing[old.serial]["status"] == "superseded-pending"
    assert listing[old.serial]["superseded_until"] == done["superseded_until"]
    assert listing[done["serial"]]["status"] == "valid"
    # The landed rule still holds for issue: bot-01 has a valid certificate.
    assert cli("client", "issue", "-p", "my-app", "-n", "bot-01", "-u").returncode == 2
    # A writing command before the grace ends leaves it alone...
    assert cli("crl", "gen", "-p", "my-app").returncode == 0
    assert reason_of(profile, old.serial) is None
    # ...the first one after it revokes it (superseded), whatever command it is.
    end_grace(profile)
    other = cli("client", "issue", "-p", "my-app", "-n", "bot-02", "-u")
    assert other.returncode == 0, other.stderr
    assert f"revoked {old.serial}" in other.stdout
    assert reason_of(profile, old.serial) == x509.ReasonFlags.superseded
    assert crl_check(profile.ca_cert, profile.crl, old_pem).returncode != 0
    assert valid_serials(profile, "bot-01") == [done["serial"]]
    assert grace.read(profile) == {}


def test_crl_gen_ends_a_grace_and_renewing_again_ends_the_earlier_one(profile: Profile) -> None:
    first = issue.issue_client(profile, "bot-01")
    second = renew.renew(profile, "bot-01", "client", grace_period="1d")
    assert second.superseded == first.serial
    assert grace.read(profile)[first.serial].successor == second.serial
    end_grace(profile)
    assert grace.due(profile)
    crl = revoke.generate_crl(profile)
    assert any(first.serial in note for note in crl.notes)
    assert reason_of(profile, first.serial) == x509.ReasonFlags.superseded
    third = renew.renew(profile, "bot-01", "client", grace_period="7d")
    assert third.superseded == second.serial
    fourth = renew.renew(profile, "bot-01", "client", grace_period="7d")
    # The second, still in its grace when the fourth came, is superseded at once:
    # a name keeps its current certificate and at most the one that one replaced.
    assert fourth.superseded == third.serial
    assert reason_of(profile, second.serial) == x509.ReasonFlags.superseded
    assert set(valid_serials(profile, "bot-01")) == {third.serial, fourth.serial}
    assert set(grace.read(profile)) == {third.serial}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["client", "renew", "-p", "my-app", "-n", "bot-01", "--grace", "0"], "grace"),
        (["client", "renew", "-p", "my-app", "-n", "bot-01", "--grace", "1y"], "grace"),
        (["client", "renew", "-p", "my-app", "-n", "bot-01", "--grace", "-7d"], "grace"),
        (["client", "renew", "-p", "my-app", "-n", "bot-01", "--grace", "7d\n"], "grace"),
        (["client", "renew", "-p", "my-app", "-n", "bot-01", "-d", "12x"], "days"),
        (["client", "renew", "-p", "my-app", "-n", "bot/../x"], "name"),
        (["server", "renew", "-p", "my-app", "-n", "bot-01"], None),  # a client certificate
        (["client", "renew", "-p", "my-app", "-n", "nobody"], None),  # nothing to renew
        (["client", "renew", "-p", "my-app", "-n", "bot-01"], "p12-passphrase-file"),
        (
            ["client", "renew", "-p", "my-app", "-n", "bot-01", "--reuse-key", "--grace", "x"],
            "grace",
        ),
    ],
)
def test_hostile_renew_exit_2_nothing_changed(
    cli, profile: Profile, args: list[str], field: str | None
) -> None:
    issue.issue_client(profile, "bot-01", passphrase=Secret(PASSWORD))
    before = snapshot(profile.dir)
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1
    prefix = "certwiz: error: " + (f"{field}: " if field else "")
    assert result.stderr.startswith(prefix), result.stderr
    assert snapshot(profile.dir) == before


def test_files_are_replaced_by_rename(profile: Profile, tmp_path: Path) -> None:
    """A reader holding the old files keeps whole old files (rename, never rewrite in place)."""
    issue.issue_client(profile, "bot-01")
    paths = (profile.cert_path("bot-01"), profile.p12_path("bot-01"), profile.key_path("bot-01"))
    handles = {p: open(p, "rb") for p in paths}  # noqa: SIM115 (held open across the renewal)
    inodes = {p: p.stat().st_ino for p in handles}
    old_bytes = {p: h.read() for p, h in handles.items()}
    renew.renew(profile, "bot-01", "client")
    for path, handle in handles.items():
        handle.seek(0)
        assert handle.read() == old_bytes[path]  # the old inode is untouched
        handle.close()
        assert path.stat().st_ino != inodes[path]


def test_every_new_writing_command_honours_the_lock_timeout(cli, home: Path) -> None:
    """--lock-timeout reaches renew, ca renew, root-key export and revoke-intermediate."""
    from certwiz import intermediate

    fleet = intermediate.init("fleet", home)
    issue.issue_client(fleet, "bot-01")
    issue.issue_server(fleet, "api.example.com")
    before = snapshot(fleet.dir)
    commands = [
        ["client", "renew", "-p", "fleet", "-n", "bot-01"],
        ["server", "renew", "-p", "fleet", "-n", "api.example.com"],
        ["ca", "renew", "-p", "fleet"],
        ["ca", "root-key", "export", "-p", "fleet", "--out", str(home.parent / "root.key")],
        ["ca", "revoke-intermediate", "-p", "fleet"],
    ]
    with fleet.lock(timeout=0):
        for args in commands:
            result = cli("--lock-timeout", "0.2", *args)
            assert result.returncode == 3, (args, result.stderr)
            assert str(fleet.lock_file) in result.stderr and "waited 0.2s" in result.stderr
    assert snapshot(fleet.dir) == before
