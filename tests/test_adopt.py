"""`certwiz ca adopt`: a CA made by plain openssl and a PKI made by Debian's easy-rsa.

Each source holds valid, revoked and expired entries. The source must stay byte for
byte as it was; the profile must carry the same key, certificate and database, and
then behave like any other (list, revoke, issue, hand-run openssl ca, check).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import (
    crl_check,
    hand_sign,
    invoke,
    load_cert,
    load_crl,
    missing,
    openssl,
    snapshot,
)

EASYRSA = Path("/usr/share/easy-rsa/easyrsa")

HAND_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/{newcerts}
certificate = $dir/{cert}
private_key = $dir/{key}
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ policy_any ]
commonName = supplied
organizationName = optional
[ leaf ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ req ]
distinguished_name = dn
[ dn ]
"""


def _past(cnf: Path, work: Path, cn: str) -> Path:
    return hand_sign(cnf, work, cn, "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")


def make_openssl_ca(base: Path, *, password: str | None = None) -> Path:
    """A CA.pl-style directory: cacert.pem, private/cakey.pem, newcerts/, crlnumber."""
    ca = base / "demoCA"
    (ca / "newcerts").mkdir(parents=True)
    (ca / "private").mkdir(mode=0o700)
    (ca / "index.txt").write_text("")
    (ca / "serial").write_text("1000\n")
    (ca / "crlnumber").write_text("2A\n")
    cnf = ca / "openssl.cnf"
    cnf.write_text(HAND_CNF.format(dir=ca, newcerts="newcerts", cert="cacert.pem",
                                   key="private/cakey.pem"))  # fmt: skip
    keyargs = ["-passout", f"pass:{password}"] if password else ["-nodes"]
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            *keyargs, "-keyout", str(ca / "private/cakey.pem"), "-out", str(ca / "cacert.pem"),
            "-subj", "/O=Hand/CN=Hand Made CA", "-days", "3650", "-config", str(cnf),
            "-extensions", "v3_ca")  # fmt: skip
    passin = ["-passin", f"pass:{password}"] if password else []
    work = base / "leaves"
    hand_sign(cnf, work, "alice", *passin)
    carol = hand_sign(cnf, work, "carol", *passin)
    hand_sign(cnf, work, "old-bot", *passin, "-startdate", "20200101000000Z", "-enddate",
          "20200201000000Z")  # fmt: skip
    openssl("ca", "-config", str(cnf), "-revoke", str(carol), "-crl_reason", "keyCompromise",
            *passin)  # fmt: skip
    openssl("ca", "-config", str(cnf), "-gencrl", "-out", str(ca / "crl.pem"), *passin)
    return ca


def make_easyrsa_pki(base: Path) -> Path:
    """A PKI made by Debian's easy-rsa 3.1: two clients, a server, one revoked, one expired."""
    if not EASYRSA.exists():
        missing("easy-rsa", "apt-get install easy-rsa")
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EASYRSA_BATCH": "1", "EASYRSA_PKI": str(base / "pki")}

    def easyrsa(*args: str) -> None:
        subprocess.run([str(EASYRSA), *args], cwd=base, env=env, check=True,
                       capture_output=True)  # fmt: skip

    easyrsa("init-pki")
    easyrsa("--req-cn=Acme VPN CA", "build-ca", "nopass")
    easyrsa("build-client-full", "alice", "nopass")
    easyrsa("build-client-full", "bob", "nopass")
    easyrsa("build-server-full", "vpn.example.com", "nopass")
    easyrsa("revoke", "bob", "superseded")
    easyrsa("gen-crl")
    pki = base / "pki"
    # an expired entry, signed by hand into the same database
    cnf = base / "hand.cnf"
    cnf.write_text(HAND_CNF.format(dir=pki, newcerts="certs_by_serial", cert="ca.crt",
                                   key="private/ca.key"))  # fmt: skip
    assert not (pki / "crlnumber").exists()  # easy-rsa 3.1 numbers no CRL
    _past(cnf, base / "leaves", "old-bot")
    return pki


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {
        "openssl": make_openssl_ca(base / "hand"),
        "easy-rsa": make_easyrsa_pki(base / "easy"),
    }


def _entries(index: Path) -> dict[str, tuple[str, str]]:
    """name -> (flag, serial) from an index.txt, read by the test itself."""
    rows = {}
    for line in index.read_text().splitlines():
        fields = line.split("\t")
        rows[fields[5].rsplit("CN=", 1)[1]] = (fields[0], fields[3])
    return rows


@pytest.mark.parametrize("layout", ["openssl", "easy-rsa"])
def test_adopt_keeps_everything_and_works_after(
    layout: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    source = sources[layout]
    before = snapshot(source)
    home = tmp_path / "certs"
    done = invoke(home, "ca", "adopt", "-p", "old", "--from", str(source), "--json")
    assert done.returncode == 0, done.stderr
    assert snapshot(source) == before  # the source is only read
    info = json.loads(done.stdout)
    assert info["layout"] == layout
    prof = home / "old"
    # same CA, same database byte for byte
    ca_name = "cacert.pem" if layout == "openssl" else "ca.crt"
    assert load_cert(prof / "ca.crt") == load_cert(source / ca_name)
    assert (prof / "index.txt").read_bytes() == (source / "index.txt").read_bytes()
    assert (prof / "private").stat().st_mode & 0o777 == 0o700
    assert (prof / "private" / "ca.key").stat().st_mode & 0o777 == 0o600
    old = _entries(source / "index.txt")
    rows = {r["name"]: r for r in json.loads(invoke(home, "list", "-p", "old",
                                                          "--json").stdout)}  # fmt: skip
    revoked_name = "carol" if layout == "openssl" else "bob"
    assert rows["alice"]["status"] == "valid"
    assert rows[revoked_name]["status"] == "revoked"
    assert rows["old-bot"]["status"] == "expired"
    assert {n: int(r["serial"], 16) for n, r in rows.items()} == {
        n: int(s, 16) for n, (_, s) in old.items()
    }
    # a fresh CRL above any earlier number, listing the old revocation with its reason
    crl = load_crl(prof / "crl.pem")
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    old_crl = load_crl(source / "crl.pem")
    try:
        old_number = old_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        old_number = 0  # easy-rsa 3.1 writes v1 CRLs without a number
    assert number > old_number
    entry = crl.get_revoked_certificate_by_serial_number(int(old[revoked_name][1], 16))
    assert entry is not None
    # the current certificate of each name is found by name
    assert load_cert(prof / "issued" / "alice.crt").serial_number == int(old["alice"][1], 16)
    assert invoke(home, "check", "-p", "old").returncode == 0
    # revoke an old name; issue a new one whose serial is above every old serial
    assert invoke(home, "revoke", "-p", "old", "-n", "alice").returncode == 0
    alice = prof / "issued" / "alice.crt"
    assert crl_check(prof / "ca.crt", prof / "crl.pem", alice).returncode != 0
    new = invoke(home, "client", "issue", "-p", "old", "-n", "new-bot", "-u", "--json")
    assert new.returncode == 0, new.stderr
    assert int(json.loads(new.stdout)["serial"], 16) > max(int(s, 16) for _, s in old.values())
    new_cert = load_cert(prof / "issued" / "new-bot.crt")
    new_cert.verify_directly_issued_by(load_cert(prof / "ca.crt"))
    # hand-run openssl ca still works on the adopted profile
    hand = openssl("ca", "-config", str(prof / "openssl.cnf"), "-gencrl", "-out",
                   str(tmp_path / "hand.crl"), check=False)  # fmt: skip
    assert hand.returncode == 0, hand.stderr
    assert invoke(home, "check", "-p", "old").returncode == 0


def test_easyrsa_leaf_keys_come_along(sources: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "certs"
    assert invoke(home, "ca", "adopt", "-p", "vpn", "--from",
                       str(sources["easy-rsa"].parent)).returncode == 0  # fmt: skip
    key = home / "vpn" / "private" / "alice.key"
    assert key.read_bytes() == (sources["easy-rsa"] / "private" / "alice.key").read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    server = load_cert(home / "vpn" / "issued" / "vpn.example.com.crt")
    rows = {r["name"]: r for r in json.loads(invoke(home, "list", "-p", "vpn",
                                                          "--json").stdout)}  # fmt: skip
    assert rows["vpn.example.com"]["kind"] == "server"
    assert server.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "vpn.example.com"
    )


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    source = make_openssl_ca(tmp_path / "enc", password="s3cret-pass")
    home = tmp_path / "certs"
    before = snapshot(source)
    refused = invoke(home, "ca", "adopt", "-p", "enc", "--from", str(source))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("certwiz: error: ca-passphrase-file:")
    assert not (home / "enc").exists()
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-pass\n")
    wrong.chmod(0o600)  # a secret file: only ours
    bad = invoke(home, "ca", "adopt", "-p", "enc", "--from", str(source),
                      "--ca-passphrase-file", str(wrong))  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert not (home / "enc").exists()
    good = tmp_path / "good"
    good.write_text("s3cret-pass\n")
    good.chmod(0o600)  # a secret file: only ours
    done = invoke(home, "ca", "adopt", "-p", "enc", "--from", str(source),
                       "--ca-passphrase-file", str(good))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"ENCRYPTED" in (home / "enc" / "private" / "ca.key").read_bytes()
    assert snapshot(source) == before
    issued = invoke(home, "client", "issue", "-p", "enc", "-n", "x", "-u",
                         "--ca-passphrase-file", str(good))  # fmt: skip
    assert issued.returncode == 0, issued.stderr


def _broken(sources: dict[str, Path], tmp_path: Path, how: str) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(sources["openssl"], copy)
    if how == "no-index":
        (copy / "index.txt").unlink()
    elif how == "key-mismatch":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                str(copy / "private" / "cakey.pem"))  # fmt: skip
    elif how == "damaged-index":
        with open(copy / "index.txt", "a") as handle:
            handle.write("V\tgarbage\n")
    elif how == "missing-cert":
        for pem in (copy / "newcerts").iterdir():
            pem.unlink()
    elif how == "not-a-ca":
        leaf = next((copy / "newcerts").iterdir())
        shutil.copy(leaf, copy / "cacert.pem")
    return copy


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("no-index", "no index.txt"),
        ("key-mismatch", "does not match"),
        ("damaged-index", "index.txt:4"),
        ("missing-cert", "no certificate with serial"),
        ("not-a-ca", "not a CA certificate"),
    ],
)
def test_bad_sources_are_refused(
    how: str, says: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    source = _broken(sources, tmp_path, how)
    before = snapshot(source)
    home = tmp_path / "certs"
    result = invoke(home, "ca", "adopt", "-p", "x", "--from", str(source))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certwiz: error: from:"), lines
    assert says in lines[0]
    assert snapshot(source) == before
    assert not (home / "x").exists()
    assert not list(home.glob(".x.init-*"))  # no scratch directory left behind


def test_adopt_refuses_an_existing_profile(sources: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "certs"
    assert invoke(home, "ca", "init", "-p", "taken").returncode == 0
    before = snapshot(home)
    result = invoke(home, "ca", "adopt", "-p", "taken", "--from", str(sources["openssl"]))
    assert result.returncode == 2
    assert snapshot(home) == before
