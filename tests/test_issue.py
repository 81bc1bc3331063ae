"""Server and client issuance, checked with cryptography (never our own output)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from certwiz import database, issue
from certwiz.errors import InputError
from certwiz.openssl import Secret
from tests.conftest import load_cert, load_crl, snapshot

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension:
    return cert.extensions.get_extension_for_oid(oid)


def only_cn(cert: x509.Certificate) -> str:
    assert len(cert.subject) == 1
    (attr,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attr.value)


def test_server_certificate(cli, profile) -> None:
    result = cli(
        "server",
        "issue",
        "-p",
        "my-app",
        "-n",
        "myserver.local",
        "-d",
        "30",
        "--san",
        "api.myserver.local",
        "--san",
        "10.0.0.7",
        "--san",
        "::1",
        "--san",
        "email:ops@example.com",
        "--san",
        "uri:spiffe://example.org/web",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    cert = load_cert(profile.cert_path("myserver.local"))
    assert only_cn(cert) == "myserver.local"
    assert cert.issuer == load_cert(profile.ca_cert).subject
    assert format(cert.serial_number, "X") == out["serial"].lstrip("0")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)
    bc = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.value.ca is False
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.digital_signature
    assert not ku.value.key_encipherment  # EC key: no key encipherment
    assert not ku.value.key_cert_sign
    assert list(ext(cert, ExtensionOID.EXTENDED_KEY_USAGE).value) == [SERVER_AUTH]
    ski = ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    aki = ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ca_ski = ext(load_cert(profile.ca_cert), ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert aki.key_identifier == ca_ski.digest
    assert ski.digest != ca_ski.digest
    san = ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["myserver.local", "api.myserver.local"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org/web"]
    # the full chain is leaf then CA, for web servers
    chain = x509.load_pem_x509_certificates(profile.fullchain_path("myserver.local").read_bytes())
    assert chain == [cert, load_cert(profile.ca_cert)]
    key = serialization.load_pem_private_key(
        profile.key_path("myserver.local").read_bytes(), password=None
    )
    assert key.public_key() == cert.public_key()
    assert stat.S_IMODE(profile.key_path("myserver.local").stat().st_mode) == 0o600
    assert not list(profile.dir.glob(".certwiz-*")), "scratch directory left behind"


def test_server_named_by_ip_gets_an_ip_san(profile) -> None:
    issue.issue_server(profile, "127.0.0.1")
    san = ext(load_cert(profile.cert_path("127.0.0.1")), ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.value.get_values_for_type(x509.DNSName) == []


def test_rsa_server_key_gets_key_encipherment(profile) -> None:
    issue.issue_server(profile, "rsa.local", key_type="rsa:2048")
    cert = load_cert(profile.cert_path("rsa.local"))
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    ku = ext(cert, ExtensionOID.KEY_USAGE).value
    assert ku.digital_signature and ku.key_encipherment


def test_san_values_with_config_syntax_arrive_literally(profile) -> None:
    """`$`, `#`, quotes and `,` in a URI reach the certificate as typed, nothing more."""
    tricky = "uri:https://example.org/a,DNS:evil.com?x=$HOME#frag'\"q"
    issue.issue_server(profile, "web.local", sans=[tricky])
    san = ext(load_cert(profile.cert_path("web.local")), ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [tricky[4:]]
    assert san.value.get_values_for_type(x509.DNSName) == ["web.local"]


def test_client_certificate_and_unencrypted_bundle(cli, profile) -> None:
    result = cli("client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert result.returncode == 0, result.stderr
    cert = load_cert(profile.cert_path("bot-01"))
    assert only_cn(cert) == "bot-01"
    assert list(ext(cert, ExtensionOID.EXTENDED_KEY_USAGE).value) == [CLIENT_AUTH]
    assert ext(cert, ExtensionOID.BASIC_CONSTRAINTS).value.ca is False
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365)
    p12 = profile.p12_path("bot-01")
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    bundle = pkcs12.load_pkcs12(p12.read_bytes(), None)
    assert bundle.cert is not None and bundle.cert.certificate == cert
    assert bundle.cert.friendly_name == b"bot-01"
    assert bundle.key is not None and bundle.key.public_key() == cert.public_key()
    assert [c.certificate for c in bundle.additional_certs] == [load_cert(profile.ca_cert)]
    key = serialization.load_pem_private_key(profile.key_path("bot-01").read_bytes(), None)
    assert key.public_key() == cert.public_key()


def _p12_info(path: Path, password: str) -> str:
    proc = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-in", str(path), "-passin", "stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("fmt", "expect"), [("compat", "pbeWithSHA1And3-KeyTripleDES-CBC"), ("modern", "AES-256-CBC")]
)
def test_password_bundle_formats(cli, profile, tmp_path: Path, fmt: str, expect: str) -> None:
    password_file = tmp_path / "p12.pass"
    password_file.write_text("bundle-secret\n")
    password_file.chmod(0o600)  # a secret file: only ours
    result = cli(
        "client",
        "issue",
        "-p",
        "my-app",
        "-n",
        "alice",
        "-d",
        "1",
        "--p12-passphrase-file",
        str(password_file),
        "--p12-format",
        fmt,
    )
    assert result.returncode == 0, result.stderr
    p12 = profile.p12_path("alice").read_bytes()
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(p12, b"wrong-password")
    bundle = pkcs12.load_pkcs12(p12, b"bundle-secret")
    cert = load_cert(profile.cert_path("alice"))
    assert bundle.cert.certificate == cert
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=1)
    info = _p12_info(profile.p12_path("alice"), "bundle-secret")
    assert expect in info
    assert ("sha1" in info.lower()) == (fmt == "compat")  # the MAC algorithm
    # without -u the key file is encrypted with the same password
    pem = profile.key_path("alice").read_bytes()
    assert b"ENCRYPTED" in pem
    serialization.load_pem_private_key(pem, b"bundle-secret")


def test_client_without_password_source_names_u(cli, profile) -> None:
    before = snapshot(profile.dir)
    result = cli("client", "issue", "-p", "my-app", "-n", "bot-02")
    assert result.returncode == 2
    assert "-u" in result.stderr and "p12-passphrase-file" in result.stderr
    assert snapshot(profile.dir) == before


def test_second_valid_certificate_is_refused_with_serial_and_expiry(cli, profile) -> None:
    first = issue.issue_client(profile, "bot-01")
    before = snapshot(profile.dir)
    result = cli("client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert result.returncode == 2
    assert first.serial in result.stderr
    assert first.not_after[:10] in result.stderr
    assert snapshot(profile.dir) == before


def test_leaf_without_ca_says_where_it_looked_and_what_to_run(cli, home: Path) -> None:
    home.mkdir()
    result = cli("server", "issue", "-p", "nothing-here", "-n", "a.local")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"certwiz: error: profile nothing-here not found in home {home} (from CERTWIZ_HOME); "
        "another home: --home DIR, CERTWIZ_HOME=DIR, or 'home = DIR' in /etc/certwiz.conf; "
        "to create it there: certwiz ca init -p nothing-here"
    )
    assert not (home / "nothing-here").exists()


def test_index_lines_match_issued_files(profile) -> None:
    done = [
        issue.issue_server(profile, "s1.local"),
        issue.issue_client(profile, "c1"),
        issue.issue_client(profile, "c2", passphrase=Secret("pw-c2-pw")),
    ]
    entries = database.read(profile.index)
    assert len(entries) == 3
    for made, entry in zip(done, entries, strict=True):
        cert = load_cert(profile.cert_path(made.name))
        assert entry.serial_int == cert.serial_number
        assert entry.not_after == cert.not_valid_after_utc
        assert entry.flag == "V"
        assert entry.common_name == made.name
        assert load_cert(profile.newcert_path(entry.serial)) == cert
    serials = {e.serial_int for e in entries}
    assert int(profile.serial.read_text(), 16) > max(serials)


def test_non_ascii_and_rdn_lookalike_client_name(profile) -> None:
    name = "Zoë a+b=c,d"
    issue.issue_client(profile, name)
    cert = load_cert(profile.cert_path(name))
    assert only_cn(cert) == name
    (entry,) = database.read(profile.index)
    assert entry.subject == database.oneline(name)
    assert entry.common_name == name


def test_encrypted_ca_signs_only_with_its_passphrase(cli, home: Path, tmp_path: Path) -> None:
    (tmp_path / "right").write_text("the-ca-passphrase\n")
    (tmp_path / "right").chmod(0o600)  # a secret file: only ours
    (tmp_path / "wrong").write_text("not-the-passphrase\n")
    (tmp_path / "wrong").chmod(0o600)  # a secret file: only ours
    assert (
        cli(
            "ca", "init", "-p", "locked", "--ca-passphrase-file", str(tmp_path / "right")
        ).returncode
        == 0
    )
    before = snapshot(home / "locked")
    missing = cli("client", "issue", "-p", "locked", "-n", "bot", "-u")
    assert missing.returncode == 2 and "CERTWIZ_CA_PASSPHRASE" in missing.stderr
    wrong = cli(
        "client",
        "issue",
        "-p",
        "locked",
        "-n",
        "bot",
        "-u",
        "--ca-passphrase-file",
        str(tmp_path / "wrong"),
    )
    assert wrong.returncode == 1
    assert "openssl" in wrong.stderr and "Traceback" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    # Only the audit log moved: the failed change is recorded (one line, appended).
    after = snapshot(home / "locked")
    assert after.pop("audit.log") != before.pop("audit.log")
    assert after == before
    assert '"result": "error"' in (home / "locked" / "audit.log").read_text().splitlines()[-1]
    ok = cli(
        "client",
        "issue",
        "-p",
        "locked",
        "-n",
        "bot",
        "-u",
        env={"CERTWIZ_CA_PASSPHRASE": "the-ca-passphrase"},
    )
    assert ok.returncode == 0, ok.stderr
    assert (
        load_cert(home / "locked" / "issued" / "bot.crt").issuer
        == load_cert(home / "locked" / "ca.crt").subject
    )


def test_certificate_signed_but_not_delivered_is_revoked(cli, profile, tmp_path: Path) -> None:
    """pkcs12 failing after `openssl ca` signed: no orphan valid entry blocks the name."""
    real = shutil.which("openssl")
    wrapper = tmp_path / "openssl"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = pkcs12 ]; then echo "pkcs12: simulated failure" >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    failed = cli("client", "issue", "-p", "my-app", "-n", "bot-x", "-u",
                 env={"CERTWIZ_OPENSSL": str(wrapper)})  # fmt: skip
    assert failed.returncode == 1
    assert "simulated failure" in failed.stderr and "revoked it" in failed.stderr
    (entry,) = database.read(profile.index)
    assert (entry.common_name, entry.flag, entry.reason) == ("bot-x", "R", "cessationOfOperation")
    assert [e.serial_number for e in load_crl(profile.crl)] == [entry.serial_int]
    assert not profile.p12_path("bot-x").exists() and not profile.key_path("bot-x").exists()
    again = cli("client", "issue", "-p", "my-app", "-n", "bot-x", "-u")
    assert again.returncode == 0, again.stderr
    assert load_cert(profile.cert_path("bot-x")).serial_number != entry.serial_int


def test_key_path_never_names_the_ca_key(profile) -> None:
    with pytest.raises(InputError):
        profile.key_path("ca")


def test_a_leaf_never_outlives_its_ca(cli, home: Path) -> None:
    """Issue 13 item 13: `ca init --days 30`, then 365-day leaves were listed valid until
    next year. Now a leaf's notAfter is capped at the CA's, and the output says so."""
    assert cli("ca", "init", "-p", "short", "--days", "30").returncode == 0
    ca_end = load_cert(home / "short" / "ca.crt").not_valid_after_utc
    done = cli("client", "issue", "-p", "short", "-n", "bot", "-u", "-d", "365", "--json")
    assert done.returncode == 0, done.stderr
    cert = load_cert(home / "short" / "issued" / "bot.crt")
    assert cert.not_valid_after_utc == ca_end
    out = json.loads(done.stdout)
    assert out["not_after"] == f"{ca_end:%Y-%m-%dT%H:%M:%SZ}"
    assert any("CA" in note and "capped" in note for note in out["notes"])
    text = cli("server", "issue", "-p", "short", "-n", "a.example", "-d", "29")
    assert text.returncode == 0 and "capped" not in text.stdout  # within the CA: as asked
    text = cli("server", "issue", "-p", "short", "-n", "b.example", "-d", "31")
    assert text.returncode == 0 and "capped" in text.stdout
    assert load_cert(home / "short" / "issued" / "b.example.crt").not_valid_after_utc == ca_end


def test_client_signed_with_the_cnf_section_is_checked(profile) -> None:
    """A client of a profile without URLs is signed with openssl.cnf's [client_ext] (no
    template rendered); an edited section never yields a delivered certificate."""
    done = issue.issue_client(profile, "plain", unencrypted=True)
    cert = load_cert(Path(done.files["certificate"]))
    assert {type(e.value) for e in cert.extensions} == {
        x509.BasicConstraints, x509.KeyUsage, x509.ExtendedKeyUsage,
        x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier,
    }  # fmt: skip
    text = profile.cnf.read_text()
    section = text[text.index("[ client_ext ]") :]
    edited = section.replace("CA:FALSE", "CA:TRUE", 1)
    assert edited != section
    profile.cnf.write_text(text.replace(section, edited))
    with pytest.raises(issue.check.ProfileCorrupt, match=r"\[client_ext\].*revoked it"):
        issue.issue_client(profile, "escalated", unencrypted=True)
    assert not profile.cert_path("escalated").exists()
    assert not profile.p12_path("escalated").exists()
    entries = [e for e in database.read(profile.index) if e.common_name == "escalated"]
    assert [e.flag for e in entries] == ["R"]
