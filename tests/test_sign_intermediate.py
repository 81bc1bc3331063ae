"""`ca sign-intermediate`: the certwiz root signs the intermediate of Vault, step-ca or
cert-manager. CSRs shaped like theirs (made with `openssl req`), results checked with
cryptography and with `openssl verify` on a leaf the new intermediate signs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from typer.testing import CliRunner

from certwiz import ca, database, intermediate, status, subordinate
from certwiz.api import CA
from certwiz.cli import app
from certwiz.errors import InputError, StateError
from certwiz.profile import Profile
from tests.conftest import Result, load_cert, load_crl, openssl, run_certwiz, snapshot

# Each target's request: key type and subject as that system makes it.
TARGETS = {
    # vault write pki_int/intermediate/generate/internal common_name=...: RSA 2048, CN only
    "vault": (["-newkey", "rsa:2048"], "/CN=example.com Intermediate Authority", ()),
    # step ca init: EC P-256, "<name> Intermediate CA" with the organisation
    "step-ca": (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/O=Smallstep/CN=Smallstep Intermediate CA",
        (),
    ),
    # a cert-manager CA Certificate (isCA: true): asks for CA:TRUE, a long path and a SAN
    "cert-manager": (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "/O=cert-manager/OU=platform/CN=cluster.local Intermediate CA",
        ("basicConstraints=critical,CA:TRUE,pathlen:3", "subjectAltName=DNS:evil.example"),
    ),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grow") / "certs"


@pytest.fixture(scope="module")
def one(home: Path) -> Profile:
    return ca.init("one", home)


@pytest.fixture(scope="module")
def two(home: Path) -> Profile:
    return intermediate.init("two", home)


@pytest.fixture(scope="module")
def work(home: Path) -> Path:
    path = home.parent / "work"
    path.mkdir()
    return path


def cli(home: Path, *args: str) -> Result:
    return run_certwiz(home, *args)


def make_csr(work: Path, target: str, name: str | None = None) -> tuple[Path, Path]:
    """KEY and CSR files as TARGET's own tooling would make them."""
    key_args, subject, extensions = TARGETS[target]
    stem = work / (name or target)
    extra = [arg for ext in extensions for arg in ("-addext", ext)]
    openssl("req", "-new", *key_args, "-nodes", "-keyout", f"{stem}.key", "-subj", subject,
            *extra, "-out", f"{stem}.csr")  # fmt: skip
    return Path(f"{stem}.key"), Path(f"{stem}.csr")


def leaf(work: Path, ca_cert: Path, ca_key: Path, dns: str) -> Path:
    """A server leaf the new intermediate signs with raw `openssl x509 -req` (its side)."""
    stem = work / f"leaf-{dns}"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{stem}.key", "-subj", f"/CN={dns}", "-out", f"{stem}.csr")  # fmt: skip
    ext = Path(f"{stem}.ext")
    ext.write_text(f"subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext),
            "-out", f"{stem}.pem")  # fmt: skip
    return Path(f"{stem}.pem")


def verify(root: Path, inter: Path, cert: Path, *crl_args: str) -> tuple[int, str]:
    done = openssl("verify", *crl_args, "-CAfile", str(root), "-untrusted", str(inter),
                   str(cert), check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def ext(cert: x509.Certificate, kind: type) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize(
    ("target", "level", "pathlen"),
    [("vault", "one", 0), ("step-ca", "two", 0), ("cert-manager", "one", 1)],
)
def test_each_targets_request_becomes_an_intermediate_that_verifies(
    request: pytest.FixtureRequest, work: Path, target: str, level: str, pathlen: int
) -> None:
    profile: Profile = request.getfixturevalue(level)
    key, csr = make_csr(work, target)
    out = work / f"{target}.crt"
    done = subordinate.sign_intermediate(profile, csr, out, pathlen=pathlen, days=400)
    cert, root = load_cert(out), load_cert(profile.ca_cert)
    wanted = x509.load_pem_x509_csr(csr.read_bytes())
    assert cert.subject == wanted.subject  # CN, and O/OU when they send them
    assert cert.issuer == root.subject and cert.public_key() == wanted.public_key()
    cert.verify_directly_issued_by(root)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(True, pathlen)  # not the CSR's 3
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext(root, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski
    kinds = {e.oid for e in cert.extensions}
    assert x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME not in kinds  # not copied
    assert x509.oid.ExtensionOID.NAME_CONSTRAINTS not in kinds
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=400)
    # recorded by the root, in its own openssl ca database, and in the audit log
    root_level = profile.root if profile.two_level else profile
    entries = {e.serial_int: e for e in database.read(root_level.index)}
    assert entries[cert.serial_number].flag == "V" and done.database == str(root_level.index)
    record = json.loads(profile.dir.joinpath("audit.log").read_text().splitlines()[-1])
    assert record["command"] == "ca sign-intermediate" and record["result"] == "ok"
    assert record["serials"] == [done.serial] and record["pathlen"] == pathlen
    # a leaf the new intermediate signs (on its side, raw openssl) verifies to the root
    good = leaf(work, out, key, f"{target}.example.com")
    assert verify(profile.ca_cert, out, good) == (0, f"{good}: OK\n")


def test_name_constraints_are_enforced_by_openssl_verify(one: Profile, work: Path) -> None:
    key, csr = make_csr(work, "vault", "constrained")
    out = work / "constrained.crt"
    subordinate.sign_intermediate(
        one, csr, out, permitted=["Example.COM", ".corp.test", "example.com"]
    )
    nc = ext(load_cert(out), x509.NameConstraints)
    assert nc.critical and nc.value.excluded_subtrees is None
    assert nc.value.permitted_subtrees == [x509.DNSName("example.com"), x509.DNSName(".corp.test")]
    for dns, allowed in [
        ("example.com", True),  # the domain itself
        ("api.example.com", True),  # and every name below it
        ("a.b.example.com", True),
        ("db.corp.test", True),  # a leading dot: only names below it
        ("corp.test", False),
        ("badexample.com", False),  # a label boundary, not a suffix
        ("evil.org", False),
    ]:
        code, text = verify(one.ca_cert, out, leaf(work, out, key, dns))
        assert (code == 0) is allowed, (dns, text)
        if not allowed:
            assert "permitted subtree violation" in text


def test_revoke_serial_publishes_the_root_crl_and_verify_then_fails(
    one: Profile, home: Path, work: Path
) -> None:
    key, csr = make_csr(work, "vault", "to-revoke")
    out = work / "to-revoke.crt"
    done = cli(home, "ca", "sign-intermediate", "-p", "one", "--csr", str(csr),
               "--out", str(out), "--with-root", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    cert = load_cert(out)
    assert out.read_bytes().endswith(one.ca_cert.read_bytes())  # --with-root: the chain
    listed = json.loads(cli(home, "list", "-p", "one", "--kind", "ca", "--json").stdout)
    assert {"kind": "ca", "status": "valid", "serial": info["serial"]}.items() <= next(
        row for row in listed if row["serial"] == info["serial"]
    ).items()
    # the intermediate's own (empty) CRL, which it would publish on its side
    inter_key = serialization.load_pem_private_key(key.read_bytes(), None)
    now = datetime.now(UTC)
    inter_crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=1))
        .sign(inter_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    crls = work / "crls.pem"
    good = leaf(work, out, key, "shop.example.com")

    def crl_verify() -> tuple[int, str]:
        crls.write_bytes(one.crl.read_bytes() + inter_crl.public_bytes(serialization.Encoding.PEM))
        return verify(one.ca_cert, out, good, "-crl_check_all", "-CRLfile", str(crls))

    assert crl_verify()[0] == 0
    revoked = cli(home, "revoke", "-p", "one", "--serial", info["serial"], "--json")
    assert revoked.returncode == 0, revoked.stderr
    crl = load_crl(one.crl)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.is_signature_valid(load_cert(one.ca_cert).public_key())  # type: ignore[arg-type]
    code, text = crl_verify()
    assert code != 0 and "certificate revoked" in text
    assert cli(home, "check", "-p", "one").returncode == 0


def test_two_level_offline_root_key(home: Path, work: Path) -> None:
    """The root key exported: refused without --root-key (nothing changes), signed with it;
    revoke --serial needs it too and publishes the root CRL inside crl-chain.pem."""
    fleet = intermediate.init("offline", home)
    root_key = work / "offline-root.key"
    intermediate.export_root_key(fleet, root_key)
    _, csr = make_csr(work, "step-ca", "offline")
    out = work / "offline.crt"
    argv = ["ca", "sign-intermediate", "-p", "offline", "--csr", str(csr), "--out", str(out)]
    before = snapshot(home)
    refused = cli(home, *argv)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "--root-key" in refused.stderr and snapshot(home) == before and not out.exists()
    done = cli(home, *argv, "--root-key", str(root_key), "--json")
    assert done.returncode == 0, done.stderr
    serial = json.loads(done.stdout)["serial"]
    cert = load_cert(out)
    assert cert.issuer == load_cert(fleet.ca_cert).subject  # the root, not the intermediate
    assert serial in fleet.root.index.read_text() and serial not in fleet.index.read_text()
    listed = json.loads(cli(home, "list", "-p", "offline", "--json").stdout)
    assert [(r["name"], r["kind"]) for r in listed] == [("Smallstep Intermediate CA", "ca")]
    before = snapshot(home)
    refused = cli(home, "revoke", "-p", "offline", "--serial", serial)
    assert refused.returncode == 2 and "--root-key" in refused.stderr and snapshot(home) == before
    done = cli(home, "revoke", "-p", "offline", "--serial", serial, "--root-key", str(root_key))
    assert done.returncode == 0, done.stderr
    crl = load_crl(fleet.root.crl)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert fleet.root.crl.read_bytes() in fleet.nginx_crl.read_bytes()  # what NGINX reads
    assert cli(home, "check", "-p", "offline").returncode == 0


def test_der_request_cn_option_and_status(two: Profile, work: Path) -> None:
    """A DER request; --cn replaces the subject; `status` warns before it expires and
    names the command that makes a new one."""
    _, csr = make_csr(work, "step-ca", "renamed")
    der = work / "renamed.der"
    openssl("req", "-in", str(csr), "-outform", "DER", "-out", str(der))
    out = work / "renamed.crt"
    done = subordinate.sign_intermediate(two, der, out, common_name="Team B Issuing CA", days=1)
    assert load_cert(out).subject.rfc4514_string() == "CN=Team B Issuing CA"
    assert two.root.index.read_text().count("Team B Issuing CA") == 1
    items = [i for i in status.of_profile(two, timedelta(days=30)) if i.serial == done.serial]
    assert [(i.kind, i.state) for i in items] == [("signed-ca", "warning")]
    assert "certwiz ca sign-intermediate -p two" in items[0].message


def test_validity_is_capped_at_the_roots_end(one: Profile, work: Path) -> None:
    _, csr = make_csr(work, "vault", "long")
    authority = CA.open("one", one.home, lock_timeout=5)  # the facade services use
    done = authority.sign_intermediate(csr, work / "long.crt", days=20000)
    root_end = load_cert(one.ca_cert).not_valid_after_utc
    assert load_cert(work / "long.crt").not_valid_after_utc == root_end
    assert done.notes and "capped" in done.notes[0]


# Values refused before the request is read (pathlen, days, --permitted-dns, --out, a file
# that is not a CSR) are rows of tests/security/test_hostile_input.py; these need one.
HOSTILE = [
    (["--csr", "{weak}"], "csr"),
    (["--csr", "{rootname}"], "csr"),
    (["--csr", "{roottwin}"], "csr"),  # the same name to OpenSSL: case and spaces folded
    (["--csr", "{email}"], "csr"),
    (["--out", "{exists}"], "out"),
    (["--root-key", "{csr}"], "root-key"),
    (["--pathlen", "1", "--cn", ""], "cn"),
]


@pytest.fixture(scope="module")
def paths(home: Path, work: Path) -> dict[str, str]:
    """The files the hostile rows name, made once."""
    _, csr = make_csr(work, "vault", "hostile")
    found = {
        "csr": str(csr),
        "weak": str(work / "weak.csr"),
        "rootname": str(work / "rootname.csr"),
        "roottwin": str(work / "roottwin.csr"),
        "email": str(work / "email.csr"),
        "exists": str(work / "exists.crt"),
    }
    (work / "exists.crt").write_text("keep me\n")
    for name, key, subject in [
        ("weak", "rsa:1024", "/CN=weak"),
        ("rootname", "rsa:2048", "/CN=one Root CA"),  # the root's own name
        ("roottwin", "rsa:2048", "/CN=ONE  root   ca"),
        ("email", "rsa:2048", "/CN=x/emailAddress=a@b.example"),
    ]:
        openssl("req", "-new", "-newkey", key, "-nodes", "-keyout", str(work / f"{name}.key"),
                "-subj", subject, "-out", found[name])  # fmt: skip
    return found


@pytest.mark.parametrize(("args", "field"), HOSTILE)
def test_hostile_input_is_one_line_and_changes_nothing(
    one: Profile, home: Path, work: Path, paths: dict[str, str], args: list[str], field: str
) -> None:
    given = {"--csr": paths["csr"], "--out": str(work / "hostile.crt")}
    for option, value in zip(args[::2], args[1::2], strict=True):
        given[option] = value.format(**paths)
    argv = [arg for pair in given.items() for arg in pair]
    before = snapshot(home)
    # in process (the refusal is what is tested, not the process); one line on stderr
    done = CliRunner().invoke(app, ["ca", "sign-intermediate", "-p", "one", "--home", str(home),
                                    *argv])  # fmt: skip
    assert done.exit_code == 2, done.output
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}: "), done.stderr
    assert snapshot(home) == before
    assert not (work / "hostile.crt").exists()
    assert (work / "exists.crt").read_text() == "keep me\n"


def test_pathlen_beyond_the_roots_is_refused(two: Profile, work: Path) -> None:
    _, csr = make_csr(work, "vault", "deep")
    with pytest.raises(InputError, match="pathlen 0 at most"):
        subordinate.sign_intermediate(two, csr, work / "deep.crt", pathlen=1)


def test_signed_but_not_written_is_revoked(
    one: Profile, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out cannot be written after signing (disk full, directory gone): the certificate
    nobody received is revoked at once (cessationOfOperation) and the CRL says so."""
    _, csr = make_csr(work, "vault", "lost")

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(subordinate, "write_atomic", full_disk)
    with pytest.raises(StateError, match=r"No space left.*revoked"):
        subordinate.sign_intermediate(one, csr, work / "lost.crt")
    lost = database.read(one.index)[-1]
    assert lost.flag == "R" and lost.reason == "cessationOfOperation"
    crl = load_crl(one.crl)
    assert crl.get_revoked_certificate_by_serial_number(lost.serial_int) is not None
    record = json.loads(one.dir.joinpath("audit.log").read_text().splitlines()[-1])
    assert record["command"] == "ca sign-intermediate" and record["result"] == "error"


def test_a_root_revoke_killed_before_its_crl_or_reload_is_finished_by_the_rerun(
    two: Profile, work: Path
) -> None:
    """Issue 13 item 2 and D5 at the root of a two-level profile: `revoke --serial S` of an
    intermediate the root signed, killed after the root's `openssl ca -revoke` (the state
    it leaves is made by hand) and before its CRL: the rerun said "no valid certificate"
    (exit 2) and published nothing. Now it publishes the root CRL (crl-chain.pem for
    NGINX); run again (as after a kill before the reload) it says it was already revoked."""
    _, csr = make_csr(work, "vault", "killed-root-revoke")
    out = work / "killed-root-revoke.crt"
    argv = ["ca", "sign-intermediate", "-p", "two", "--csr", str(csr), "--out", str(out)]
    assert cli(two.home, *argv).returncode == 0
    number = load_cert(out).serial_number
    openssl("ca", "-config", str(two.root.cnf), "-revoke", str(out))  # then the kill
    (entry,) = [e for e in database.read(two.root.index) if e.serial_int == number]
    assert load_crl(two.root.crl).get_revoked_certificate_by_serial_number(number) is None
    owed = f"revoked serial {entry.serial} is not in {two.root.crl}; run: certwiz crl gen -p two"
    checked = cli(two.home, "check", "-p", "two")
    assert checked.returncode == 4 and owed in checked.stdout + checked.stderr
    other = cli(two.home, "client", "issue", "-p", "two", "-n", "meanwhile", "-u")
    assert other.returncode == 4 and owed in other.stderr  # only a root CRL fixes it
    done = cli(two.home, "revoke", "-p", "two", "--serial", entry.serial, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["finished"] == [entry.serial]
    assert load_crl(two.root.crl).get_revoked_certificate_by_serial_number(number) is not None
    assert two.root.crl.read_bytes() in two.nginx_crl.read_bytes()
    crl = two.nginx_crl.read_bytes()
    again = cli(two.home, "revoke", "-p", "two", "--serial", entry.serial, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert (result["already_revoked"], result["serials"]) == ([entry.serial], [])
    assert result["reload_command"] and two.nginx_crl.read_bytes() == crl
    assert cli(two.home, "check", "-p", "two").returncode == 0
