"""`make bench` works end to end at tiny sizes (its timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, clean_env, missing

EASYRSA = Path("/usr/share/easy-rsa/easyrsa")


def test_bench_smoke_runs_every_case(tmp_path: Path) -> None:
    if not EASYRSA.is_file():
        missing("easy-rsa", "apt-get install easy-rsa; .ci/run installs it")
    out = tmp_path / "results.md"
    env = clean_env()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    for case in (
        "start-up",
        "CA init",
        "one EC P-256 client",
        "one RSA-2048 client",
        "revoke one client",
        "fleet: 3 EC clients",
        "50 entries: list --expiring 30d --json",
        "50 entries: issue one more",
        "50 entries: revoke one",
    ):
        assert f"## {case}" in text, case
    for contender in (
        "certwiz client issue -u",
        "certwiz client issue-batch -u",
        "raw openssl (req, ca, pkcs12)",
        "easy-rsa",
    ):
        assert contender in text
    assert "| openssl | OpenSSL 3" in text


def test_generated_profile_passes_certwiz_check(tmp_path: Path) -> None:
    """bench/gen_profile.py writes what `openssl ca` would have: certwiz check agrees."""
    from cryptography import x509

    sys.path.insert(0, str(REPO))
    from bench.gen_profile import generate

    profile = generate(tmp_path / "home", "big", 40, 7, jobs=2)
    env = clean_env()
    check = subprocess.run(
        [sys.executable, "-m", "certwiz", "check", "-p", "big", "--home", str(profile.home)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    lines = profile.index.read_text().splitlines()
    assert len(lines) == 40 and sum(line.startswith("R") for line in lines) == 7
    ca_cert = x509.load_pem_x509_certificate(profile.ca_cert.read_bytes())
    crl = x509.load_pem_x509_crl(profile.crl.read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    revoked = {int(line.split("\t")[3], 16) for line in lines if line.startswith("R")}
    assert {r.serial_number for r in crl} == revoked
    for line in lines[:5]:
        serial, subject = line.split("\t")[3], line.split("\t")[5]
        cert = x509.load_pem_x509_certificate(profile.newcert_path(serial).read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        assert cert.serial_number == int(serial, 16)
        assert cert.subject.rfc4514_string() == "CN=" + subject.removeprefix("/CN=")
        assert profile.cert_path(subject.removeprefix("/CN=")).read_bytes() == (
            profile.newcert_path(serial).read_bytes()
        )
