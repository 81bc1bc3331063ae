"""`certwiz server sign` / `client sign` as a user runs them: the name, DER input, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import crl_check, load_cert, snapshot
from tests.test_library import make_csr


@pytest.fixture
def made(cli) -> None:
    assert cli("ca", "init", "-p", "p").returncode == 0


def write(tmp_path: Path, data: bytes, name: str = "req.csr") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_name_defaults_to_the_csr_cn_and_behaves_like_any_name(
    cli, made, home: Path, tmp_path: Path
) -> None:
    csr = write(tmp_path, make_csr("bot-07", der=True))
    done = cli("client", "sign", "-p", "p", "--csr", csr, "-d", "12h", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    cert = load_cert(home / "p" / "issued" / "bot-07.crt")
    assert info["name"] == "bot-07" and int(info["serial"], 16) == cert.serial_number
    assert cert.subject.rfc4514_string() == "CN=bot-07"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() == 12 * 3600
    rows = {r["name"]: r for r in json.loads(cli("list", "-p", "p", "--json").stdout)}
    assert rows["bot-07"]["kind"] == "client" and rows["bot-07"]["status"] == "valid"
    # a second signing for the name is refused like a second issue
    again = cli("client", "sign", "-p", "p", "--csr", csr)
    assert again.returncode == 2 and "already has a valid certificate" in again.stderr
    assert cli("revoke", "-p", "p", "-n", "bot-07").returncode == 0
    crl = home / "p" / "crl.pem"
    assert crl_check(home / "p" / "ca.crt", crl, home / "p" / "issued" / "bot-07.crt").returncode


def test_server_sign_with_sans_and_a_matching_name(cli, made, home: Path, tmp_path: Path) -> None:
    csr = write(tmp_path, make_csr("API.example.com"))
    done = cli("server", "sign", "-p", "p", "--csr", csr, "-n", "api.example.com",
               "--san", "10.0.0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    cert = load_cert(home / "p" / "issued" / "api.example.com.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com"]  # not bank.example
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False  # the CSR asked for CA:TRUE
    chain = (home / "p" / "issued" / "api.example.com.fullchain.pem").read_bytes()
    assert chain.startswith(cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["client", "sign", "--csr", "{csr}", "-n", "someone-else"], "name"),
        (["client", "sign", "--csr", "{junk}"], "csr"),
        (["client", "sign", "--csr", "{missing}"], "csr"),
        (["server", "sign", "--csr", "{csr}", "--san", "not a name"], "san"),
        (["client", "sign", "--csr", "{csr}", "-d", "0"], "days"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(
    cli, made, home: Path, tmp_path: Path, args: list[str], field: str
) -> None:
    paths = {
        "csr": write(tmp_path, make_csr("device.example")),
        "junk": write(tmp_path, b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n", "junk.csr"),
        "missing": str(tmp_path / "nothing.csr"),
    }
    before = snapshot(home)
    argv = [a.format(**paths) for a in args]
    result = cli(*argv[:2], "-p", "p", *argv[2:])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}:"), lines
    assert snapshot(home) == before


def test_a_csr_with_two_cns_is_refused(cli, made, home: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x"),
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, "admin")])  # fmt: skip
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    csr = write(tmp_path, request.public_bytes(serialization.Encoding.PEM))
    before = snapshot(home)
    for extra in ([], ["-n", "admin"], ["-n", "x"]):
        result = cli("client", "sign", "-p", "p", "--csr", csr, *extra)
        assert result.returncode == 2 and "2 CNs" in result.stderr
    assert snapshot(home) == before
