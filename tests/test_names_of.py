"""One definition of "the certificates of NAME", and of the hosts a certificate covers.

Issue 13 items 5 and 12 (and the BMPString suspicion of item 14): a hand-signed certificate
whose subject holds more than the CN, or whose CN is a BMPString, is NAME's certificate
for list, show, issue and revoke alike; DNS names are one name whatever their letter case,
and a host gets at most one valid certificate unless --allow-shared-san says otherwise.
Checked against the certificates (cryptography) and `openssl verify -crl_check`.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from certwiz import audit, database
from tests.conftest import crl_check, hand_sign, load_cert, load_crl


def _rows(cli) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    done = cli("list", "-p", "my-app", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _bmp_request_config(tmp_path: Path) -> Path:
    cnf = tmp_path / "bmp.cnf"
    cnf.write_text("[req]\ndistinguished_name = dn\nstring_mask = MASK:0x800\n[dn]\n")
    return cnf


def test_a_fuller_subject_is_the_certificate_of_its_cn(cli, profile, tmp_path: Path) -> None:
    hand = hand_sign(profile.cnf, tmp_path, "bot-01", "-extensions", "client_ext",
                     subj="/O=Acme/OU=Bots/CN=bot-01")  # fmt: skip
    assert [(r["name"], r["status"]) for r in _rows(cli)] == [("bot-01", "valid")]
    done = cli("client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert done.returncode == 2 and "bot-01 already has a valid certificate" in done.stderr
    shown = json.loads(cli("show", "-p", "my-app", "-n", "bot-01", "--json").stdout)
    assert int(shown["serial"], 16) == load_cert(hand).serial_number
    done = cli("revoke", "-p", "my-app", "-n", "bot-01")
    assert done.returncode == 0, done.stderr
    assert crl_check(profile.ca_cert, profile.crl, hand).returncode != 0
    assert [r["status"] for r in _rows(cli)] == ["revoked"]
    again = cli("revoke", "-p", "my-app", "-n", "bot-01")  # both done: it says so
    assert again.returncode == 0 and "bot-01 was already revoked" in again.stdout


def test_every_certificate_of_a_name_is_revoked_together(cli, profile, tmp_path: Path) -> None:
    """Two valid bot-01 (made by hand, the second with a fuller subject): revoke takes both."""
    plain = hand_sign(profile.cnf, tmp_path / "a", "bot-01", "-extensions", "client_ext")
    fuller = hand_sign(profile.cnf, tmp_path / "b", "bot-01", "-extensions", "client_ext",
                       subj="/CN=bot-01/O=Acme")  # fmt: skip
    done = cli("revoke", "-p", "my-app", "-n", "bot-01", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["serials"]) == 2
    for cert in (plain, fuller):
        assert crl_check(profile.ca_cert, profile.crl, cert).returncode != 0
    listed = {e.serial_number for e in load_crl(profile.crl)}
    assert listed == {load_cert(plain).serial_number, load_cert(fuller).serial_number}


def test_a_bmpstring_cn_is_read_as_text(cli, profile, tmp_path: Path) -> None:
    req = ("-config", str(_bmp_request_config(tmp_path)), "-utf8")
    hand = hand_sign(profile.cnf, tmp_path, "Zoë-02", "-extensions", "client_ext", req_args=req)
    cn = load_cert(hand).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
    assert cn._type.name == "BMPString" and cn.value == "Zoë-02"  # the case being tested
    assert [r["name"] for r in _rows(cli)] == ["Zoë-02"]
    assert cli("show", "-p", "my-app", "-n", "Zoë-02").returncode == 0
    assert cli("client", "issue", "-p", "my-app", "-n", "Zoë-02", "-u").returncode == 2
    done = cli("revoke", "-p", "my-app", "-n", "Zoë-02")
    assert done.returncode == 0, done.stderr
    assert crl_check(profile.ca_cert, profile.crl, hand).returncode != 0


def test_index_subjects_decode_as_openssl_wrote_them() -> None:
    assert database.common_name("/CN=bot-01/O=Acme") == "bot-01"
    assert database.common_name("/O=Acme/CN=a\\/b\\+c") == "a/b+c"
    assert database.common_name("/CN=\\x00Z\\x00o\\x00\\xEB") == "Zoë"  # BMPString
    assert database.common_name("/CN=\\xC3\\xAB") == "ë"  # UTF8String
    assert database.common_name("/O=no cn") is None


def test_server_names_are_one_name_whatever_their_case(cli, profile) -> None:
    done = cli("server", "issue", "-p", "my-app", "-n", "API.Example.COM", "--san", "WWW.x.org")
    assert done.returncode == 0, done.stderr
    cert = load_cert(profile.cert_path("api.example.com"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "api.example.com"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com", "www.x.org"]
    for spelling in ("api.example.com", "Api.Example.Com"):
        again = cli("server", "issue", "-p", "my-app", "-n", spelling)
        assert again.returncode == 2 and "already has a valid certificate" in again.stderr
    done = cli("revoke", "-p", "my-app", "-n", "API.EXAMPLE.com")
    assert done.returncode == 0, done.stderr
    assert crl_check(profile.ca_cert, profile.crl, profile.cert_path("api.example.com")).returncode
    # client names stay case-sensitive: they are not DNS names
    assert cli("client", "issue", "-p", "my-app", "-n", "Bob", "-u").returncode == 0
    assert cli("client", "issue", "-p", "my-app", "-n", "bob", "-u").returncode == 0


def test_a_host_gets_one_valid_certificate_unless_shared_on_purpose(cli, profile) -> None:
    def server(*args: str):  # type: ignore[no-untyped-def]
        return cli("server", "issue", "-p", "my-app", *args)

    assert (
        server("-n", "a.example.com", "--san", "API.example.com", "--san", "10.0.0.1").returncode
        == 0
    )
    for args in (
        ["-n", "api.example.com"],  # the -n of one is a --san of the other
        ["-n", "b.example.com", "--san", "api.EXAMPLE.com"],
        ["-n", "10.0.0.1"],
        ["-n", "::ffff:10.0.0.1"],  # IPv4-mapped: the same host (attack round 11)
        ["-n", "e.example.com", "--san", "::FFFF:a00:1"],
        ["-n", "c.example.com", "--san", "A.example.com"],
        ["-n", "d.example.com", "--san", "*.example.com"],  # a wildcard over a.example.com
    ):
        done = server(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "already covered by a.example.com" in done.stderr, done.stderr
        assert "--allow-shared-san" in done.stderr
    done = server("-n", "api.example.com", "--allow-shared-san")
    assert done.returncode == 0, done.stderr
    # a wildcard already issued covers each name under it, and no deeper
    assert server("-n", "w.example.org", "--san", "*.example.org").returncode == 0
    assert server("-n", "x.example.org").returncode == 2
    assert server("-n", "y.x.example.org").returncode == 0
    # a revoked certificate covers nothing any more
    assert cli("revoke", "-p", "my-app", "-n", "w.example.org").returncode == 0
    assert server("-n", "x.example.org").returncode == 0


def test_an_ipv4_mapped_address_is_stored_and_compared_as_its_ipv4_address(
    cli, profile, tmp_path: Path
) -> None:
    """::ffff:10.0.0.9 is 10.0.0.9 (attack round 11: accepted beside a valid certificate
    for 10.0.0.9; Go's verifier takes them as one host): a new certificate holds the
    4-byte IPv4 address, as Go's x509 writes it, and a hand-signed one holding the
    16-byte mapped form covers the IPv4 host."""

    def ips(name: str) -> list[object]:
        san = load_cert(profile.cert_path(name)).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        return san.value.get_values_for_type(x509.IPAddress)

    done = cli("server", "issue", "-p", "my-app", "-n", "::ffff:10.0.0.8", "--san", "::ffff:a00:7")
    assert done.returncode == 0, done.stderr
    assert ips("10.0.0.8") == [ipaddress.IPv4Address("10.0.0.8"), ipaddress.IPv4Address("10.0.0.7")]
    ext = tmp_path / "ext.cnf"
    ext.write_text("[s]\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:::ffff:10.0.0.9\n")
    hand_sign(profile.cnf, tmp_path, "edge6", "-extfile", str(ext), "-extensions", "s")
    held = load_cert(tmp_path / "edge6.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert held.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("::ffff:10.0.0.9")
    ]
    for args in (["-n", "10.0.0.9"], ["-n", "g.example.com", "--san", "::ffff:10.0.0.9"]):
        done = cli("server", "issue", "-p", "my-app", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "10.0.0.9 is already covered by edge6" in done.stderr, done.stderr


def test_a_hand_signed_server_covers_its_hosts(cli, profile, tmp_path: Path) -> None:
    ext = tmp_path / "ext.cnf"
    ext.write_text("[s]\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:API.example.com\n")
    hand_sign(profile.cnf, tmp_path, "edge", "-extfile", str(ext), "-extensions", "s")
    done = cli("server", "issue", "-p", "my-app", "-n", "api.example.com")
    assert done.returncode == 2 and "already covered by edge" in done.stderr, done.stderr


def test_renewing_a_fuller_subject_says_the_subject_changes(cli, profile, tmp_path: Path) -> None:
    """certwiz issues CN=NAME only: a renewal of /O=Acme/CN=bot-03 says so, in the output
    and the audit record, as a backend reading the subject DN sees another one."""
    hand_sign(profile.cnf, tmp_path, "bot-03", "-extensions", "client_ext",
              subj="/O=Acme/CN=bot-03")  # fmt: skip
    (old,) = [e.subject for e in database.read(profile.index) if e.common_name == "bot-03"]
    assert "/O=Acme" in old  # openssl ca orders it by the policy: /CN=bot-03/O=Acme
    done = cli("client", "renew", "-p", "my-app", "-n", "bot-03")
    assert done.returncode == 0, done.stderr
    assert f"Also changed the subject from {old} to /CN=bot-03 " in done.stdout
    renewed = load_cert(profile.cert_path("bot-03"))
    assert renewed.subject.rfc4514_string() == "CN=bot-03"
    record = audit.read(profile)[-1]
    ops = [record, *record.get("operations", [])]  # type: ignore[misc]
    expected = {"old": old, "new": "/CN=bot-03"}
    assert expected in [op.get("subject") for op in ops]  # type: ignore[union-attr]
