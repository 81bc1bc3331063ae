"""`certwiz ca init`: a classic OpenSSL CA directory, checked with cryptography."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from certwiz import ca
from tests.conftest import load_cert, load_crl, snapshot


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout_and_modes(cli, home: Path) -> None:
    result = cli("ca", "init", "-p", "my-app")
    assert result.returncode == 0, result.stderr
    assert "stored unencrypted" in result.stderr  # no terminal, no passphrase: warned
    d = home / "my-app"
    for name in (
        "openssl.cnf",
        "ca.crt",
        "index.txt",
        "index.txt.attr",
        "serial",
        "crlnumber",
        "crl.pem",
        "private/ca.key",
    ):
        assert (d / name).is_file(), name
    for name in ("newcerts", "issued", "reqs"):
        assert (d / name).is_dir(), name
    assert mode(d / "private") == 0o700
    assert mode(d / "private" / "ca.key") == 0o600
    assert (d / "index.txt").read_text() == ""
    assert "unique_subject = no" in (d / "index.txt.attr").read_text()
    assert not list(home.glob(".my-app.init-*")), "scratch directory left behind"
    assert (
        result.stdout.splitlines()[-1] == "Next: certwiz server issue -p my-app -n myserver.local"
    )


def test_root_certificate_extensions(profile) -> None:
    cert = load_cert(profile.ca_cert)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "my-app Root CA"
    )
    bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is True
    ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=3650)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"


def test_serial_is_random_128_bit_and_crl_numbered(home: Path) -> None:
    first = ca.init("one", home)
    second = ca.init("two", home)
    s1, s2 = (int(p.serial.read_text(), 16) for p in (first, second))
    assert s1 != s2
    assert 2**100 < s1 < 2**128
    crl = load_crl(first.crl)
    assert crl.is_signature_valid(load_cert(first.ca_cert).public_key())
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == 1
    assert len(list(crl)) == 0
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=90)


def test_options_cn_key_type_days(cli, home: Path) -> None:
    result = cli(
        "ca",
        "init",
        "-p",
        "rsa-app",
        "--cn",
        "Example Ops CA",
        "--key-type",
        "rsa:3072",
        "--days",
        "100",
        "--crl-days",
        "7",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    cert = load_cert(home / "rsa-app" / "ca.crt")
    assert cert.subject.rfc4514_string() == "CN=Example Ops CA"
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 3072
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=100)
    crl = load_crl(home / "rsa-app" / "crl.pem")
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)


def test_second_init_refuses_and_changes_nothing(cli, profile) -> None:
    before = snapshot(profile.dir)
    result = cli("ca", "init", "-p", "my-app")
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(profile.dir) == before


def test_encrypted_ca_key_from_passphrase_file(cli, home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "ca.pass"
    secret.write_text("correct horse battery\n")
    secret.chmod(0o600)  # a secret file: only ours
    result = cli("ca", "init", "-p", "locked", "--ca-passphrase-file", str(secret))
    assert result.returncode == 0, result.stderr
    assert "unencrypted" not in result.stderr
    # The next command will ask for the passphrase: say so, and how to give it unattended.
    hint = " ".join(result.stdout.split("Next: ", 1)[1].split())
    assert "asks for its passphrase" in hint
    assert "--ca-passphrase-file FILE" in hint and "CERTWIZ_CA_PASSPHRASE" in hint
    pem = (home / "locked" / "private" / "ca.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises((TypeError, ValueError)):
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=b"correct horse battery")
    assert key.public_key() == load_cert(home / "locked" / "ca.crt").public_key()


def test_encrypted_ca_key_from_environment(cli, home: Path) -> None:
    result = cli("ca", "init", "-p", "envlocked", env={"CERTWIZ_CA_PASSPHRASE": "s3cret-env"})
    assert result.returncode == 0, result.stderr
    pem = (home / "envlocked" / "private" / "ca.key").read_bytes()
    serialization.load_pem_private_key(pem, password=b"s3cret-env")


def test_profiles_lists_only_profiles_with_a_ca(cli, home: Path) -> None:
    ca.init("alpha", home)
    ca.init("beta", home)
    (home / "not-a-profile").mkdir()
    result = cli("profiles", "--json")
    assert result.returncode == 0
    import json

    assert [p["profile"] for p in json.loads(result.stdout)] == ["alpha", "beta"]


def test_ca_validity_starts_now(profile) -> None:
    cert = load_cert(profile.ca_cert)
    assert abs(cert.not_valid_before_utc - datetime.now(UTC)) < timedelta(minutes=5)
