"""Two-level profiles: an offline root and an intermediate that signs, checked with
cryptography and with hand-run `openssl` on both levels."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import ca, intermediate, issue
from certwiz.profile import Profile
from tests.conftest import hand_sign, load_cert, load_crl, openssl, run_certwiz, snapshot


def ext(cert: x509.Certificate, kind: type) -> object:
    return cert.extensions.get_extension_for_class(kind)


def pem_blocks(path: Path, kind: str) -> list[bytes]:
    text = path.read_bytes()
    end = f"-----END {kind}-----\n".encode()
    return [block + end for block in text.split(end) if block.strip()]


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def verify(profile: Profile, cert: Path) -> tuple[int, str]:
    """openssl's own verdict on a leaf: the full chain and both CRLs (crl-chain.pem)."""
    done = openssl("verify", "-crl_check_all", "-CAfile", str(profile.ca_cert), "-untrusted",
                   str(profile.intermediate_cert), "-CRLfile", str(profile.nginx_crl), str(cert),
                   check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def fleet(home: Path) -> Profile:
    return intermediate.init("fleet", home)


def test_two_level_chain(fleet: Profile) -> None:
    root, inter = load_cert(fleet.ca_cert), load_cert(fleet.intermediate_cert)
    assert root.subject == root.issuer and inter.issuer == root.subject
    assert root.subject.rfc4514_string() == "CN=fleet Root CA"
    assert inter.subject.rfc4514_string() == "CN=fleet Intermediate CA"
    root_bc, inter_bc = ext(root, x509.BasicConstraints), ext(inter, x509.BasicConstraints)
    assert root_bc.critical and root_bc.value == x509.BasicConstraints(True, 1)
    assert inter_bc.critical and inter_bc.value == x509.BasicConstraints(True, 0)
    for cert in (root, inter):
        usage = ext(cert, x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    root_ski = ext(root, x509.SubjectKeyIdentifier).value.digest
    inter_ski = ext(inter, x509.SubjectKeyIdentifier).value.digest
    assert ext(inter, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    inter.verify_directly_issued_by(root)
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert lifetime.days == 7300
    assert (inter.not_valid_after_utc - inter.not_valid_before_utc).days == 1825
    assert fleet.root.ca_cert.read_bytes() == fleet.ca_cert.read_bytes()
    assert fleet.chain.read_bytes() == fleet.intermediate_cert.read_bytes() + root_pem(fleet)
    # The leaf hangs off the intermediate.
    issue.issue_server(fleet, "api.example.com")
    leaf = load_cert(fleet.cert_path("api.example.com"))
    assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == inter_ski
    leaf.verify_directly_issued_by(inter)
    assert verify(fleet, fleet.cert_path("api.example.com"))[0] == 0
    chain = pem_blocks(fleet.fullchain_path("api.example.com"), "CERTIFICATE")
    assert [x509.load_pem_x509_certificate(b).subject for b in chain] == [
        leaf.subject, inter.subject, root.subject
    ]  # fmt: skip


def root_pem(profile: Profile) -> bytes:
    return profile.ca_cert.read_bytes()


def test_both_crls_and_the_crl_chain(fleet: Profile) -> None:
    root_crl, inter_crl = load_crl(fleet.root.crl), load_crl(fleet.crl)
    assert root_crl.is_signature_valid(load_cert(fleet.ca_cert).public_key())
    assert inter_crl.is_signature_valid(load_cert(fleet.intermediate_cert).public_key())
    assert crl_number(root_crl) == 1 and crl_number(inter_crl) == 1
    assert (root_crl.next_update_utc - root_crl.last_update_utc).days == 365
    assert (inter_crl.next_update_utc - inter_crl.last_update_utc).days == 90
    blocks = pem_blocks(fleet.nginx_crl, "X509 CRL")
    assert blocks == [fleet.crl.read_bytes(), fleet.root.crl.read_bytes()]
    # The root is a classic openssl ca directory of its own.
    for name in ("openssl.cnf", "ca.crt", "private/ca.key", "index.txt", "serial", "crlnumber",
                 "crl.pem", "newcerts", "index.txt.attr"):  # fmt: skip
        assert (fleet.root.dir / name).exists(), name
    (line,) = fleet.root.index.read_text().splitlines()
    assert line.startswith("V\t") and line.endswith("/CN=fleet Intermediate CA")
    assert stat.S_IMODE(fleet.root.private.stat().st_mode) == 0o700


def test_client_bundle_carries_leaf_intermediate_and_root(fleet: Profile) -> None:
    issue.issue_client(fleet, "bot-1")
    key, cert, extra = pkcs12.load_key_and_certificates(fleet.p12_path("bot-1").read_bytes(), None)
    assert key is not None and cert is not None
    assert [c.subject.rfc4514_string() for c in extra] == [
        "CN=fleet Intermediate CA", "CN=fleet Root CA"
    ]  # fmt: skip


def test_revoked_leaf_in_intermediate_crl_only(cli, fleet: Profile) -> None:
    a = issue.issue_client(fleet, "bot-a")
    issue.issue_client(fleet, "bot-b")
    root_before = fleet.root.crl.read_bytes()
    result = cli("revoke", "-p", "fleet", "-n", "bot-a", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["crl"] == str(fleet.nginx_crl)
    inter_crl = load_crl(fleet.crl)
    assert inter_crl.get_revoked_certificate_by_serial_number(int(a.serial, 16)) is not None
    assert crl_number(inter_crl) == 2
    assert fleet.root.crl.read_bytes() == root_before
    assert pem_blocks(fleet.nginx_crl, "X509 CRL")[0] == fleet.crl.read_bytes()
    code, out = verify(fleet, fleet.cert_path("bot-a"))
    assert code != 0 and "certificate revoked" in out
    assert verify(fleet, fleet.cert_path("bot-b"))[0] == 0


def test_root_key_export_then_leaves_and_crls(cli, home: Path, fleet: Profile) -> None:
    issue.issue_client(fleet, "bot-a")
    key_bytes = fleet.root.ca_key.read_bytes()
    out = home.parent / "offline" / "fleet-root.key"
    out.parent.mkdir()
    result = cli("ca", "root-key", "export", "-p", "fleet", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == key_bytes and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not fleet.root.ca_key.exists()
    assert key_bytes not in b"".join(p.read_bytes() for p in fleet.dir.rglob("*") if p.is_file())
    # Leaves keep working: issue, revoke, crl gen; check is happy.
    assert cli("client", "issue", "-p", "fleet", "-n", "bot-b", "-u").returncode == 0
    assert cli("revoke", "-p", "fleet", "-n", "bot-a").returncode == 0
    root_crl = fleet.root.crl.read_bytes()
    gen = cli("crl", "gen", "-p", "fleet")
    assert gen.returncode == 0, gen.stderr
    assert fleet.root.crl.read_bytes() == root_crl  # the root CRL needs the root key
    assert cli("check", "-p", "fleet").returncode == 0
    assert verify(fleet, fleet.cert_path("bot-b"))[0] == 0
    # What needs the root refuses without it, and says how; nothing changes.
    before = snapshot(fleet.dir)
    for args in (["ca", "revoke-intermediate", "-p", "fleet"],
                 ["ca", "renew", "-p", "fleet"]):  # fmt: skip
        refused = cli(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "--root-key FILE" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert snapshot(fleet.dir) == before
    # With --root-key: the root CRL is re-signed, then the intermediate revoked.
    number = crl_number(load_crl(fleet.root.crl))
    gen = cli("crl", "gen", "-p", "fleet", "--root-key", str(out))
    assert gen.returncode == 0, gen.stderr
    assert crl_number(load_crl(fleet.root.crl)) == number + 1
    assert "root CRL" in gen.stdout
    done = cli("ca", "revoke-intermediate", "-p", "fleet", "--root-key", str(out),
               "--reason", "keyCompromise")  # fmt: skip
    assert done.returncode == 0, done.stderr
    root_crl_now = load_crl(fleet.root.crl)
    assert root_crl_now.is_signature_valid(load_cert(fleet.ca_cert).public_key())
    inter_serial = load_cert(fleet.intermediate_cert).serial_number
    assert root_crl_now.get_revoked_certificate_by_serial_number(inter_serial) is not None
    code, text = verify(fleet, fleet.cert_path("bot-b"))
    assert code != 0 and "certificate revoked" in text
    status = cli("status", "-p", "fleet", "--json")
    assert status.returncode == 2
    first = json.loads(status.stdout)["items"][0]
    assert (first["kind"], first["state"]) == ("intermediate-ca", "critical")
    assert out.read_bytes() == key_bytes  # the exported key itself is never touched


def test_status_of_a_two_level_profile(cli, fleet: Profile, home: Path) -> None:
    data = json.loads(cli("status", "-p", "fleet", "--json").stdout)
    kinds = {i["kind"]: i for i in data["items"]}
    assert set(kinds) == {"root-ca", "intermediate-ca", "root-crl", "crl"}
    assert kinds["root-crl"]["name"] == "root/crl.pem"
    assert int(kinds["root-ca"]["serial"], 16) == load_cert(fleet.ca_cert).serial_number
    assert data["exit_code"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["ca", "init", "-p", "x", "--intermediate", "--root-days", "0"],
        ["ca", "init", "-p", "x", "--intermediate", "--root-days", "12h"],
        ["ca", "init", "-p", "x", "--intermediate", "--root-crl-days", "-1"],
        ["ca", "init", "-p", "x", "--root-days", "100"],
        ["ca", "init", "-p", "x", "--intermediate", "--days", "4000", "--root-days", "3000"],
    ],
)
def test_hostile_init_options(cli, home: Path, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("certwiz: error: ")
    assert not (home / "x").exists()


def test_hostile_root_key_and_out(cli, home: Path, fleet: Profile) -> None:
    single = ca.init("single", home)
    not_a_key = home.parent / "note.txt"
    not_a_key.write_text("hello\n")
    existing = home.parent / "exists.key"
    existing.write_text("x")
    shared = home.parent / "shared"  # anyone may rename or delete what lands here
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    theirs = home.parent / "theirs"
    theirs.mkdir()
    if os.geteuid() == 0:  # only root can give a directory away; CI runs as root
        os.chown(theirs, 65534, 65534)
    else:
        theirs.chmod(0o777)
    cases = [
        (["crl", "gen", "-p", "fleet", "--root-key", str(home.parent / "missing.key")], "root-key"),
        (["crl", "gen", "-p", "fleet", "--root-key", str(not_a_key)], "root-key"),
        (["crl", "gen", "-p", "fleet", "--root-key", str(home.parent)], "root-key"),
        (["crl", "gen", "-p", "single", "--root-key", str(fleet.root.ca_key)], "root-key"),
        (["ca", "revoke-intermediate", "-p", "fleet", "--reason", "bogus"], "reason"),
        (["ca", "root-key", "export", "-p", "fleet", "--out", str(existing)], "out"),
        (["ca", "root-key", "export", "-p", "fleet", "--out", str(fleet.dir / "k.pem")], "out"),
        (["ca", "root-key", "export", "-p", "fleet", "--out", str(home / "nodir" / "k")], "out"),
        (["ca", "root-key", "export", "-p", "fleet", "--out", str(shared / "root.key")], "out"),
        (["ca", "root-key", "export", "-p", "fleet", "--out", str(theirs / "root.key")], "out"),
    ]
    before = snapshot(home)
    for args, field in cases:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"certwiz: error: {field}: "), (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1
    refused = cli("ca", "root-key", "export", "-p", "single", "--out", str(home.parent / "k"))
    assert refused.returncode == 2 and "single CA" in refused.stderr
    assert snapshot(home) == before
    assert single.cnf.read_text().count("pathlen") == 0


def test_hand_run_openssl_on_both_levels(cli, home: Path, fleet: Profile) -> None:
    """Hand-run openssl ca on the intermediate (sign, revoke) and on the root (gencrl),
    mixed with certwiz: the database stays one openssl ca would write."""
    hand = hand_sign(fleet.cnf, home.parent / "hand", "handmade", "-extensions", "client_ext")
    assert load_cert(hand).issuer.rfc4514_string() == "CN=fleet Intermediate CA"
    listed = json.loads(cli("list", "-p", "fleet", "--json").stdout)
    assert [c["name"] for c in listed] == ["handmade"]
    assert cli("revoke", "-p", "fleet", "-n", "handmade").returncode == 0
    assert verify(fleet, hand)[0] != 0
    # The root by hand: a new root CRL NGINX does not read yet (check says so), then
    # certwiz rebuilds the CRL chain on its next run.
    openssl("ca", "-gencrl", "-batch", "-config", str(fleet.root.cnf), "-out", str(fleet.root.crl))
    assert crl_number(load_crl(fleet.root.crl)) == 2
    behind = cli("check", "-p", "fleet")
    assert behind.returncode == 4
    assert f"{fleet.nginx_crl}: is not {fleet.crl} + {fleet.root.crl}" in behind.stdout
    assert "run: certwiz crl gen -p fleet" in behind.stdout
    assert cli("crl", "gen", "-p", "fleet").returncode == 0
    assert pem_blocks(fleet.nginx_crl, "X509 CRL")[1] == fleet.root.crl.read_bytes()
    assert crl_number(load_crl(fleet.root.crl)) == 3  # root key at hand: re-signed too
    # certwiz issues after the hand-run commands; openssl revokes it by hand on the intermediate.
    bot = issue.issue_client(fleet, "bot-z")
    openssl("ca", "-config", str(fleet.cnf), "-revoke", str(fleet.cert_path("bot-z")))
    listed = {c["serial"]: c["status"] for c in json.loads(cli("list", "-p", "fleet",
                                                                "--json").stdout)}  # fmt: skip
    assert listed[bot.serial] == "revoked"
    assert cli("crl", "gen", "-p", "fleet").returncode == 0
    assert verify(fleet, fleet.cert_path("bot-z"))[0] != 0
    assert cli("check", "-p", "fleet").returncode == 0


def test_single_level_profile_is_unchanged(profile: Profile) -> None:
    text = profile.cnf.read_text()
    assert "certificate = $dir/ca.crt" in text and "pathlen" not in text
    assert "v3_intermediate" not in text
    assert profile.chain == profile.ca_cert and profile.nginx_crl == profile.crl
    assert not profile.two_level and profile.level == "single"
    assert not (profile.dir / "root").exists() and not (profile.dir / "chain.pem").exists()


def test_help_shows_the_two_level_options(home: Path) -> None:
    text = run_certwiz(home, "ca", "init", "--help").stdout
    assert "--intermediate" in text and "--root-days" in text


def test_a_single_level_profile_named_root_is_not_mistaken_for_a_root(cli, home: Path) -> None:
    root = ca.init("root", home)
    assert root.level == "single"
    issue.issue_client(root, "bot-1")
    result = cli("revoke", "-p", "root", "-n", "bot-1")
    assert result.returncode == 0, result.stderr
    assert not (home / "crl-chain.pem").exists()
    assert "pathlen" not in root.cnf.read_text()


def test_a_two_level_init_survives_a_concurrent_init_in_the_same_home(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `ca init` of another profile removes every *unheld* build directory it finds in
    the home (the leftovers of killed inits): a two-level build must be held like a
    single-level one, or that cleanup deletes it half-way (it did)."""
    original = intermediate.self_signed_ca
    started: list[Profile] = []

    def meanwhile(*args: object, **kwargs: object) -> None:
        if not started:
            started.append(ca.init("other", home))  # while fleet is being built
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(intermediate, "self_signed_ca", meanwhile)
    fleet = intermediate.init("fleet", home)
    assert started and started[0].ca_cert.is_file()
    load_cert(fleet.intermediate_cert).verify_directly_issued_by(load_cert(fleet.ca_cert))
    assert not list(home.glob(".*.init-*"))  # nothing left behind
