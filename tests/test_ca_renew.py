"""`certwiz ca renew`: same key and subject, so every leaf issued before keeps verifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certwiz import ca, intermediate, issue
from certwiz.profile import Profile
from tests.conftest import crl_check, load_cert, openssl, snapshot


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_single_level_renew_keeps_old_leaves_valid(cli, profile: Profile, tmp_path: Path) -> None:
    leaf = issue.issue_server(profile, "api.example.com")
    old_bytes = profile.ca_cert.read_bytes()
    old = load_cert(profile.ca_cert)
    result = cli("ca", "renew", "-p", "my-app", "--days", "4000", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    new = load_cert(profile.ca_cert)
    assert new.subject == old.subject == new.issuer
    assert spki(new) == spki(old) and ski(new) == ski(old)
    assert new.serial_number != old.serial_number
    assert (new.not_valid_after_utc - new.not_valid_before_utc).days == 4000
    assert new.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    archived = Path(done["archived"])
    assert archived.parent == profile.dir / "archive"
    assert archived.read_bytes() == old_bytes
    # The old leaf against the NEW CA alone, with the CRL: openssl and cryptography agree.
    alone = tmp_path / "new-ca.pem"
    alone.write_bytes(profile.ca_cert.read_bytes())
    verdict = crl_check(alone, profile.crl, profile.cert_path("api.example.com"))
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    load_cert(profile.cert_path("api.example.com")).verify_directly_issued_by(new)
    chain = profile.fullchain_path("api.example.com").read_bytes()
    assert chain == profile.cert_path("api.example.com").read_bytes() + profile.ca_cert.read_bytes()
    assert load_cert(profile.cert_path("api.example.com")).serial_number == int(leaf.serial, 16)
    assert cli("check", "-p", "my-app").returncode == 0
    assert cli("client", "issue", "-p", "my-app", "-n", "bot-new", "-u").returncode == 0
    assert crl_check(alone, profile.crl, profile.cert_path("bot-new")).returncode == 0


def test_two_level_renew_of_the_intermediate_with_an_offline_root(cli, home: Path) -> None:
    fleet = intermediate.init("fleet", home)
    issue.issue_client(fleet, "bot-old")
    key = home.parent / "root.key"
    assert cli("ca", "root-key", "export", "-p", "fleet", "--out", str(key)).returncode == 0
    old = load_cert(fleet.intermediate_cert)
    root_before = fleet.ca_cert.read_bytes()
    result = cli("ca", "renew", "-p", "fleet", "--root-key", str(key), "--json")
    assert result.returncode == 0, result.stderr
    assert fleet.ca_cert.read_bytes() == root_before
    trust = json.loads(result.stdout)["trust"]
    assert trust.startswith(f"{fleet.ca_cert} did not change: what trusts it needs nothing new")
    assert "need the new one" not in result.stdout  # it was said though ca.crt stayed
    new = load_cert(fleet.intermediate_cert)
    assert new.serial_number != old.serial_number
    assert spki(new) == spki(old) and new.subject == old.subject
    assert new.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    new.verify_directly_issued_by(load_cert(fleet.ca_cert))
    assert fleet.chain.read_bytes().startswith(fleet.intermediate_cert.read_bytes())
    lines = fleet.root.index.read_text().splitlines()
    assert [line[0] for line in lines] == ["V", "V"]  # the old intermediate is not revoked
    archived = [int(p.stem.split("-", 1)[1], 16) for p in (fleet.dir / "archive").glob("*.crt")]
    assert old.serial_number in archived
    # The leaf issued before verifies through the new intermediate, with both CRLs.
    done = openssl("verify", "-crl_check_all", "-CAfile", str(fleet.ca_cert), "-untrusted",
                   str(fleet.intermediate_cert), "-CRLfile", str(fleet.nginx_crl),
                   str(fleet.cert_path("bot-old")), check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("check", "-p", "fleet").returncode == 0


def test_two_level_renew_of_the_root(cli, home: Path) -> None:
    fleet = intermediate.init("fleet", home)
    issue.issue_client(fleet, "bot-old")
    old = load_cert(fleet.ca_cert)
    result = cli("ca", "renew", "-p", "fleet", "--root")
    assert result.returncode == 0, result.stderr
    new = load_cert(fleet.ca_cert)
    assert fleet.root.ca_cert.read_bytes() == fleet.ca_cert.read_bytes()
    assert spki(new) == spki(old) and new.serial_number != old.serial_number
    # without --days the root keeps its own length (it was re-signed for 3650 silently)
    length = (old.not_valid_after_utc - old.not_valid_before_utc).days
    assert length == intermediate.DEFAULT_ROOT_DAYS != 3650
    assert (new.not_valid_after_utc - new.not_valid_before_utc).days == length
    assert f"valid for {length} days: the old certificate's own length" in result.stdout
    assert f"Clients and servers that trust {fleet.ca_cert} need the new one" in result.stdout
    assert new.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    load_cert(fleet.intermediate_cert).verify_directly_issued_by(new)
    assert fleet.chain.read_bytes().endswith(fleet.ca_cert.read_bytes())
    assert cli("check", "-p", "fleet").returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["ca", "renew", "-p", "my-app", "--days", "0"],
        ["ca", "renew", "-p", "my-app", "--days", "12h"],
        ["ca", "renew", "-p", "my-app", "--root"],
        ["ca", "renew", "-p", "my-app", "--root-key", "/nonexistent/key"],
        ["ca", "renew", "-p", "../my-app"],
    ],
)
def test_hostile_ca_renew(cli, profile: Profile, args: list[str]) -> None:
    before = snapshot(profile.dir)
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("certwiz: error: ")
    assert snapshot(profile.dir) == before


def test_a_renewed_intermediate_cannot_outlive_its_root(cli, home: Path) -> None:
    """Attack r1 item 10b: `ca init` refuses an intermediate longer than the root, but
    `ca renew --days` gave one past the root's end (it fails verification from then on)."""
    options = ca.CAOptions(days=1000)
    fleet = intermediate.init("f3", home, options, root_days=2000)
    before = snapshot(fleet.dir)
    result = cli("ca", "renew", "-p", "f3", "--days", "3000")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot outlive the root" in result.stderr and len(result.stderr.splitlines()) == 1
    assert snapshot(fleet.dir) == before
    assert cli("ca", "renew", "-p", "f3", "--days", "1500").returncode == 0
    new = load_cert(fleet.intermediate_cert)
    assert new.not_valid_after_utc <= load_cert(fleet.ca_cert).not_valid_after_utc


def test_a_ca_renewal_shorter_than_its_valid_leaves_is_refused(cli, home: Path) -> None:
    """Attack r1 item 10c: `ca renew --days 1` silently made a 10-year CA a 1-day one,
    and its leaves (listed valid for a year) stopped verifying the next day."""
    profile = ca.init("sh", home)
    issue.issue_client(profile, "bot", days=365)
    before = snapshot(profile.dir)
    result = cli("ca", "renew", "-p", "sh", "--days", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "bot" in result.stderr and "--days 365" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and snapshot(profile.dir) == before
    assert cli("ca", "renew", "-p", "sh", "--days", "365").returncode == 0
    leaf = load_cert(profile.cert_path("bot"))
    assert load_cert(profile.ca_cert).not_valid_after_utc >= leaf.not_valid_after_utc
    # The root of a two-level profile: the intermediate it signed is its leaf.
    fleet = intermediate.init("sh2", home)
    before = snapshot(fleet.dir)
    result = cli("ca", "renew", "-p", "sh2", "--root", "--days", "30")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Intermediate" in result.stderr and snapshot(fleet.dir) == before
