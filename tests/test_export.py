"""`certwiz export`: pem, chain, der and a fresh p12, checked with cryptography."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import intermediate
from certwiz.errors import InputError
from certwiz.profile import Profile
from tests.conftest import load_cert, snapshot
from tests.test_library import make_csr


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.conftest import invoke

    base = tmp_path_factory.mktemp("export")
    home = base / "certs"
    pw = base / "pw"
    pw.write_text("old-password\n")
    pw.chmod(0o600)  # a secret file: only ours
    csr = base / "device.csr"
    csr.write_bytes(make_csr("device"))
    for args in (
        ["ca", "init", "-p", "p"],
        ["server", "issue", "-p", "p", "-n", "lb.example.com"],
        ["client", "issue", "-p", "p", "-n", "bot", "-u"],
        ["client", "issue", "-p", "p", "-n", "alice", "--p12-passphrase-file", str(pw)],
        ["client", "sign", "-p", "p", "--csr", str(csr)],
    ):
        assert invoke(home, *args).returncode == 0
    return {"home": home, "base": base, "pw": pw}


def certwiz(state: dict[str, Path], *args: str):
    from tests.conftest import invoke

    return invoke(state["home"], *args)


def secret(state: dict[str, Path], name: str, text: str) -> str:
    path = state["base"] / name
    path.write_text(text + "\n")
    path.chmod(0o600)  # a secret file: only ours
    return str(path)


def test_pem_chain_der(state: dict[str, Path], tmp_path: Path) -> None:
    prof = state["home"] / "p"
    leaf = load_cert(prof / "issued" / "lb.example.com.crt")
    for fmt in ("pem", "chain", "der"):
        out = tmp_path / f"lb.{fmt}"
        done = certwiz(state, "export", "-p", "p", "-n", "lb.example.com", "--format", fmt,
                       "--out", str(out), "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert int(json.loads(done.stdout)["serial"], 16) == leaf.serial_number
        assert out.stat().st_mode & 0o777 == 0o644
        data = out.read_bytes()
        if fmt == "der":
            assert x509.load_der_x509_certificate(data) == leaf
        else:
            certs = x509.load_pem_x509_certificates(data)
            expected = [leaf, load_cert(prof / "ca.crt")] if fmt == "chain" else [leaf]
            assert certs == expected
    # pem to stdout when no --out is given
    printed = certwiz(state, "export", "-p", "p", "-n", "lb.example.com")
    assert x509.load_pem_x509_certificate(printed.stdout.encode()) == leaf


def test_p12_with_its_own_password_and_format(state: dict[str, Path], tmp_path: Path) -> None:
    prof = state["home"] / "p"
    own = hashlib.sha256((prof / "private" / "alice.p12").read_bytes()).hexdigest()
    out = tmp_path / "alice.p12"
    done = certwiz(state, "export", "-p", "p", "-n", "alice", "--format", "p12",
                   "--p12-format", "modern", "--out", str(out),
                   "--key-passphrase-file", str(state["pw"]),
                   "--p12-passphrase-file", secret(state, "new", "new-password"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    key, cert, extra = pkcs12.load_key_and_certificates(out.read_bytes(), b"new-password")
    assert cert == load_cert(prof / "issued" / "alice.crt")
    assert key is not None and key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert extra == [load_cert(prof / "ca.crt")]
    assert hashlib.sha256((prof / "private" / "alice.p12").read_bytes()).hexdigest() == own
    last = json.loads(certwiz(state, "audit", "-p", "p", "--json").stdout)[-1]
    assert last["command"] == "export p12" and last["names"] == ["alice"]
    assert "new-password" not in (prof / "audit.log").read_text()


def test_p12_empty_password(state: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bot.p12"
    done = certwiz(state, "export", "-p", "p", "-n", "bot", "--format", "p12", "-u",
                   "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    key, cert, _ = pkcs12.load_key_and_certificates(out.read_bytes(), b"")
    assert key is not None and cert is not None


def test_out_is_not_replaced_without_force(state: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "existing.pem"
    out.write_text("keep me\n")
    refused = certwiz(state, "export", "-p", "p", "-n", "bot", "--out", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert out.read_text() == "keep me\n"
    forced = certwiz(state, "export", "-p", "p", "-n", "bot", "--out", str(out), "--force")
    assert forced.returncode == 0
    assert x509.load_pem_x509_certificate(out.read_bytes())


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["-n", "bot", "--format", "pfx"], "format"),
        (["-n", "bot", "--format", "p12", "--p12-format", "legacy", "-u"], "p12-format"),
        (["-n", "../ca", "--format", "pem"], "name"),
        (["-n", "nobody", "--format", "pem", "--out", "{out}"], "nobody"),
        (
            [
                "-n",
                "alice",
                "--format",
                "p12",
                "-u",
                "--out",
                "{out}",
                "--key-passphrase-file",
                "{wrong}",
            ],
            "key-passphrase-file",
        ),
        (["-n", "alice", "--format", "p12", "-u", "--out", "{out}"], "key-passphrase-file"),
        (["-n", "device", "--format", "p12", "-u", "--out", "{out}"], "no private key"),
        (["-n", "bot", "--format", "pem", "--out", "{dir}"], "out"),
        (["-n", "bot", "--format", "p12", "--out", "{out}"], "p12-passphrase-file"),  # nor -u
    ],
)
def test_refusals_change_nothing(
    state: dict[str, Path], tmp_path: Path, args: list[str], field: str
) -> None:
    values = {"out": str(tmp_path / "x.out"), "dir": str(tmp_path),
              "wrong": secret(state, "wrong", "not-it")}  # fmt: skip
    before = snapshot(state["home"])
    result = certwiz(state, "export", "-p", "p", *[a.format(**values) for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certwiz: error: ") and field in lines[0]
    assert snapshot(state["home"]) == before
    assert not (tmp_path / "x.out").exists()


@pytest.mark.parametrize("target", ["p/private/ca.key", "p/ca.crt", "p/index.txt",
                                    "p/private/bot.p12", "other.pem"])  # fmt: skip
def test_out_never_lands_in_the_certwiz_home(state: dict[str, Path], target: str) -> None:
    """--force is for the operator's own files, never the profile's (the CA key above all)."""
    out = state["home"] / target
    if target == "other.pem":
        out.write_text("x\n")
    before = snapshot(state["home"])
    result = certwiz(state, "export", "-p", "p", "-n", "bot", "--out", str(out), "--force")
    assert result.returncode == 2
    assert "inside the certwiz home" in result.stderr
    assert snapshot(state["home"]) == before


@pytest.mark.parametrize("target", ["p/private/ca.key", "p/index.txt", "p/issued/new.pem",
                                    "p/nginx/x.pem", "p/root/private/ca.key"])  # fmt: skip
def test_out_never_lands_in_another_homes_profile(state: dict[str, Path], target: str) -> None:
    """Attack round 12 (F8): export --out --force from one home replaced another home's
    CA key. Any profile (openssl.cnf + index.txt), whatever the home, by any name."""
    other = state["base"] / "other-home"
    if not other.exists():
        shutil.copytree(state["home"], other, symlinks=True)
        (other / "p" / "root" / "private").mkdir(parents=True)
        (other / "p" / "root" / "private" / "ca.key").write_text("x\n")
        (state["base"] / "link").symlink_to(other / "p" / "private")
    before = snapshot(other)
    for out in (other / target, state["base"] / "link" / "ca.key"):
        result = certwiz(state, "export", "-p", "p", "-n", "bot", "--out", str(out), "--force")
        assert result.returncode == 2, result.stdout
        lines = result.stderr.strip().splitlines()
        assert lines == [f"certwiz: error: out: {out} is inside the certwiz profile "
                         f"{other / 'p'}; give a path outside it"]  # fmt: skip
        assert snapshot(other) == before


def test_the_agents_bundle_and_an_exported_root_key_never_land_in_a_profile(
    state: dict[str, Path],
) -> None:
    """The other write targets without a home of their own: agent enroll --out --force
    (it replaces what is there) and root-key export --out (a new file), same rule."""
    other = state["base"] / "agent-home"
    shutil.copytree(state["home"], other, symlinks=True)
    before = snapshot(other)
    key = other / "p" / "private" / "ca.key"
    done = certwiz(state, "agent", "enroll", "--url", "https://127.0.0.1:1", "-n", "bot",
                   "--token-file", secret(state, "token", "t0ken"), "--ca",
                   str(other / "p" / "ca.crt"), "-u", "--out", str(key), "--force")  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        f"certwiz: error: out: {key} is inside the certwiz profile {other / 'p'}; "
        "give a path outside it"
    ]
    with pytest.raises(InputError, match="inside the certwiz profile"):
        intermediate.check_export_target(Profile("p", state["home"]), key.with_name("root.key"))
    assert snapshot(other) == before


def test_certwiz_own_names_cannot_be_claimed_or_exported(
    state: dict[str, Path], tmp_path: Path
) -> None:
    """The OCSP responder's name (and the probes') are certwiz's: a client cannot take them."""
    before = snapshot(state["home"])
    for args in (
        ["client", "issue", "-p", "p", "-n", "certwiz-ocsp-responder", "-u"],
        ["client", "issue", "-p", "p", "-n", "CERTWIZ-probe-x", "-u"],
        ["server", "issue", "-p", "p", "-n", "certwiz-ocsp-responder"],
        [
            "export",
            "-p",
            "p",
            "-n",
            "certwiz-ocsp-responder",
            "--format",
            "p12",
            "-u",
            "--out",
            str(tmp_path / "r.p12"),
        ],
    ):
        result = certwiz(state, *args)
        assert result.returncode == 2, (args, result.stdout)
        assert "reserved" in result.stderr
    assert snapshot(state["home"]) == before
