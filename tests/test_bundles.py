"""Bundles after issuance: `p12 inspect`, `client rebundle`, `client bundle`, and the -u bundle.

Bundles with known defects are made here by hand-run openssl and cryptography, the way
other tools (and certwiz before) made them; what the real clients do with each is in
test_client_matrix.py.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    NoEncryption,
    load_pem_private_key,
    pkcs12,
)

from certwiz import audit
from certwiz.profile import Profile
from tests.conftest import REPO, Result, load_cert, openssl, snapshot

PASSWORD = "bundle-secret-4711"


@pytest.fixture
def pw_file(tmp_path: Path) -> Path:
    path = tmp_path / "p12.pass"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)  # a secret file: only ours
    path.chmod(0o600)
    return path


def ok(result: Result) -> Result:
    assert result.returncode == 0, result.stderr
    return result


def one_line_error(result: Result, code: int, *words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certwiz: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def inspect(cli: Callable[..., Result], p12: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("p12", "inspect", str(p12), "--json", *extra)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def broken(report: dict[str, Any]) -> set[str]:
    return {client for client, v in report["clients"].items() if not v["accepts"]}


def old_u_bundle(profile: Profile, name: str, out: Path) -> Path:
    """What `-u` made before: no MAC, nothing encrypted (Java and NSS cannot use it)."""
    openssl("pkcs12", "-export", "-inkey", str(profile.key_path(name)),
            "-in", str(profile.cert_path(name)), "-certfile", str(profile.ca_cert),
            "-name", name, "-out", str(out), "-certpbe", "NONE", "-keypbe", "NONE",
            "-nomac", "-passout", "pass:")  # fmt: skip
    return out


# ---- the -u bundle ---------------------------------------------------------------------


def test_u_bundle_has_the_empty_password_a_mac_and_an_encrypted_key_bag(cli, profile) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    p12 = profile.p12_path("bot")
    info = openssl("pkcs12", "-in", str(p12), "-info", "-nokeys", "-noout", "-passin", "pass:")
    assert "MAC: sha1, Iteration 2048" in info.stderr
    assert "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr
    assert "Key bag" not in info.stderr.replace("Shrouded Keybag", "")
    wrong = openssl("pkcs12", "-in", str(p12), "-info", "-nokeys", "-noout",
                    "-passin", "pass:x", check=False)  # fmt: skip
    assert wrong.returncode != 0 and "Mac verify error" in wrong.stderr  # the MAC is checked
    for password in (b"", None):
        bundle = pkcs12.load_pkcs12(p12.read_bytes(), password)
        assert bundle.cert is not None and bundle.cert.certificate == load_cert(
            profile.cert_path("bot")
        )
    # the leaf key file stays unencrypted, as -u promises
    load_pem_private_key(profile.key_path("bot").read_bytes(), None)


# ---- p12 inspect -----------------------------------------------------------------------


def test_inspect_a_good_bundle(cli, profile) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    code, report = inspect(cli, profile.p12_path("bot"))
    assert code == 0 and report["ok"] and report["problems"] == []
    cert = load_cert(profile.cert_path("bot"))
    leaf, ca_cert = report["certificates"]
    assert leaf["subject"] == "CN=bot" and leaf["issuer"] == "CN=my-app Root CA"
    assert leaf["serial"] == f"{cert.serial_number:X}"
    assert leaf["not_after"] == f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert ca_cert["is_ca"] and ca_cert["subject"] == ca_cert["issuer"]
    assert report["key_matches"] is True and report["chain_complete"] is True
    assert (report["mac"], report["mac_iterations"], report["password"]) == ("sha1", 2048, "empty")
    assert report["clients"]["java"]["password"].startswith("new char[0]")
    text = ok(cli("p12", "inspect", str(profile.p12_path("bot"))))
    assert "every listed client takes it" in text.stdout


def _mismatched(profile: Profile, name: str, out: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    enc = NoEncryption()  # cryptography needs a non-empty password to encrypt
    # both openssl and cryptography refuse to pair them; as a loose key and certificates
    # (what a tool that adds certificates separately writes) they go in
    leaf, ca_cert = load_cert(profile.cert_path(name)), load_cert(profile.ca_cert)
    data = pkcs12.serialize_key_and_certificates(name.encode(), other, None, [leaf, ca_cert], enc)
    out.write_bytes(data)


def _hand(*args: str) -> Callable[[Profile, str, Path], None]:
    """A bundle made by hand-run openssl with ARGS; "CA" stands for the profile's ca.crt."""

    def make(profile: Profile, name: str, out: Path) -> None:
        extra = [str(profile.ca_cert) if a == "CA" else a for a in args]
        openssl("pkcs12", "-export", "-inkey", str(profile.key_path(name)),
                "-in", str(profile.cert_path(name)), "-name", name, "-out", str(out),
                "-passout", "pass:", *extra)  # fmt: skip

    return make


@pytest.mark.parametrize(
    ("make", "clients", "words"),
    [
        (old_u_bundle, {"java", "nss"}, ["no MAC", "key bag is not encrypted"]),
        (
            _hand(
                "-certfile",
                "CA",
                "-macalg",
                "sha256",
                "-certpbe",
                "AES-256-CBC",
                "-keypbe",
                "AES-256-CBC",
            ),
            {"macos", "windows"},
            ["macOS"],
        ),
        (_hand("-certfile", "CA", "-legacy"), {"curl", "openssl"}, ["legacy"]),
        (
            _hand("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
            set(),
            ["chain is incomplete"],
        ),
        (
            _mismatched,
            {"curl", "openssl", "python", "java", "nss", "macos", "windows"},
            ["does not match"],
        ),
    ],
    ids=["old-u", "modern", "legacy-rc2", "no-chain", "wrong-key"],
)
def test_inspect_names_each_problem_the_client_it_breaks_and_the_fix(
    cli, profile, tmp_path: Path, make: Any, clients: set[str], words: list[str]
) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    out = tmp_path / "bad.p12"
    make(profile, "bot", out)
    code, report = inspect(cli, out)
    assert code == 1 and not report["ok"]
    assert broken(report) == clients
    text = " ".join(p["problem"] for p in report["problems"])
    for word in words:
        assert word in text
    assert all("rebundle" in p["fix"] or "issue" in p["fix"] for p in report["problems"])


def test_inspect_bad_input_is_one_line_and_exit_2(cli, profile, tmp_path: Path, pw_file) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "alice", "--p12-passphrase-file", str(pw_file)))
    p12 = str(profile.p12_path("alice"))
    one_line_error(cli("p12", "inspect", p12), 2, "password:", "--p12-passphrase-file")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)  # a secret file: only ours
    result = cli("p12", "inspect", p12, "--p12-passphrase-file", str(wrong))
    one_line_error(result, 2, "password: wrong password")
    assert "not-the-password" not in result.stdout + result.stderr
    env = cli("p12", "inspect", p12, "--json", env={"CERTWIZ_P12_PASSPHRASE": PASSWORD})
    assert env.returncode == 0 and PASSWORD not in env.stdout
    junk = tmp_path / "junk.p12"
    junk.write_text("not a bundle\n")
    one_line_error(cli("p12", "inspect", str(junk)), 2, "file:", "not a PKCS#12")
    one_line_error(cli("p12", "inspect", str(tmp_path / "missing.p12")), 2, "file: cannot read")
    one_line_error(
        cli("p12", "inspect", "/dev/zero"), 2, "file: /dev/zero is larger than", "a client bundle"
    )


# ---- client rebundle -------------------------------------------------------------------


def test_rebundle_fixes_an_old_u_bundle_in_place(cli, profile: Profile) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    p12 = profile.p12_path("bot")
    old_u_bundle(profile, "bot", p12)
    assert inspect(cli, p12)[0] == 1
    before = snapshot(profile.dir)
    done = json.loads(ok(cli("client", "rebundle", "-p", "my-app", "-n", "bot", "--json")).stdout)
    assert done["p12_format"] == "compat" and done["password"] == "empty"
    code, report = inspect(cli, p12)
    assert code == 0, report["problems"]
    assert int(report["certificates"][0]["serial"], 16) == int(done["serial"], 16)
    assert load_cert(profile.cert_path("bot")).serial_number == int(done["serial"], 16)
    after = snapshot(profile.dir)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"private/bot.p12", "audit.log"}
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    record = audit.read(profile)[-1]
    assert (record["command"], record["names"], record["result"]) == (
        "client rebundle",
        ["bot"],
        "ok",
    )


def test_rebundle_a_password_bundle_into_another_format(cli, profile, pw_file) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "alice", "--p12-format", "modern",
           "--p12-passphrase-file", str(pw_file)))  # fmt: skip
    p12 = profile.p12_path("alice")
    assert inspect(cli, p12, "--p12-passphrase-file", str(pw_file))[1]["mac"] == "sha256"
    ok(cli("client", "rebundle", "-p", "my-app", "-n", "alice", "--p12-format", "compat",
           "--p12-passphrase-file", str(pw_file)))  # fmt: skip
    code, report = inspect(cli, p12, "--p12-passphrase-file", str(pw_file))
    assert code == 0 and report["mac"] == "sha1" and report["password"] == "given"
    assert pkcs12.load_pkcs12(p12.read_bytes(), PASSWORD.encode()).key is not None


def test_rebundle_refusals_leave_the_profile_as_it_was(
    cli, profile, pw_file, tmp_path: Path
) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "alice", "--p12-passphrase-file", str(pw_file)))
    ok(cli("client", "issue", "-p", "my-app", "-n", "gone", "-u"))
    ok(cli("revoke", "-p", "my-app", "-n", "gone"))
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)  # a secret file: only ours
    before = snapshot(profile.dir)
    rebundle = ("client", "rebundle", "-p", "my-app")
    one_line_error(cli(*rebundle, "-n", "alice"), 2, "p12-passphrase-file:")
    one_line_error(cli(*rebundle, "-n", "alice", "--p12-passphrase-file", str(wrong)), 2,
                   "wrong password")  # fmt: skip
    one_line_error(cli(*rebundle, "-n", "gone"), 2, "no valid certificate")
    one_line_error(cli(*rebundle, "-n", "nobody"), 2, "nobody")
    one_line_error(cli(*rebundle, "-n", "alice", "--p12-format", "rc2"), 2, "p12-format:")
    one_line_error(cli(*rebundle, "-n", "../x"), 2, "name:")
    assert snapshot(profile.dir) == before


# ---- client bundle ---------------------------------------------------------------------


def test_bundle_for_a_bot_writes_p12_ca_and_readme(cli, profile, tmp_path: Path) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot 1", "-u"))
    out = tmp_path / "handout"
    done = json.loads(
        ok(
            cli("client", "bundle", "-p", "my-app", "-n", "bot 1", "--out", str(out), "--json")
        ).stdout
    )
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "bot 1.p12", "ca.crt"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "bot 1.p12").stat().st_mode) == 0o600
    assert (out / "bot 1.p12").read_bytes() == profile.p12_path("bot 1").read_bytes()
    assert (out / "ca.crt").read_bytes() == profile.ca_cert.read_bytes()
    readme = (out / "README.md").read_text()
    for step in ("## curl", "## Python", "## Java", "## Postman", "## Chrome / Chromium",
                 "## Firefox", "## macOS Keychain", "## Windows"):  # fmt: skip
        assert step in readme
    assert "--cert 'bot 1.p12:'" in readme  # shell-quoted, the empty password after ':'
    assert "new char[0]" in readme and "no password" in readme
    assert done["password"] == "empty" and done["p12_format"] == "compat"
    record = audit.read(profile)[-1]
    assert (record["command"], record["names"], record["out"]) == ("client bundle", ["bot 1"],
                                                                    str(out))  # fmt: skip


def test_bundle_with_a_password_never_writes_it(cli, profile, pw_file, tmp_path: Path) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "alice", "--p12-format", "modern",
           "--p12-passphrase-file", str(pw_file)))  # fmt: skip
    out = tmp_path / "alice"
    one_line_error(cli("client", "bundle", "-p", "my-app", "-n", "alice", "--out", str(out)), 2,
                   "password")  # fmt: skip
    assert not out.exists()
    out.mkdir()  # an existing empty directory is fine
    ok(cli("client", "bundle", "-p", "my-app", "-n", "alice", "--out", str(out),
           "--p12-passphrase-file", str(pw_file)))  # fmt: skip
    for path in out.iterdir():
        assert PASSWORD.encode() not in path.read_bytes()
    readme = (out / "README.md").read_text()
    assert "macOS Keychain and Windows Server 2016 or older refuse this `modern` bundle" in readme
    assert "--p12-format compat" in readme and "p12.pass" in readme


def test_bundle_refuses_a_non_empty_dir_and_a_broken_bundle(cli, profile, tmp_path: Path) -> None:
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    before = snapshot(profile.dir), snapshot(out)
    bundle = ("client", "bundle", "-p", "my-app", "-n", "bot")
    one_line_error(cli(*bundle, "--out", str(out)), 2, "out:", "not empty")
    old_u_bundle(profile, "bot", profile.p12_path("bot"))
    before = snapshot(profile.dir), before[1]
    one_line_error(cli(*bundle, "--out", str(tmp_path / "new")), 2, "no MAC", "rebundle")
    assert (snapshot(profile.dir), snapshot(out)) == before
    assert not (tmp_path / "new").exists()


def test_rejection_pages_are_safe_nginx_strings() -> None:
    """The pages go inside `return 400 "..."`: no quote, backslash or variable."""
    for page in ("no-client-certificate.html", "client-certificate-rejected.html"):
        text = (REPO / "nginx" / page).read_text()
        assert not set(text) & set('"\\$'), page
        assert text.startswith("<!doctype html>") and "<h1>" in text


def test_inspect_opens_a_foreign_bundle_with_a_short_password(cli, profile, tmp_path) -> None:
    """certwiz makes passwords of 4+ characters; other tools' bundles may have shorter."""
    ok(cli("client", "issue", "-p", "my-app", "-n", "bot", "-u"))
    out = tmp_path / "short.p12"
    _hand("-certfile", "CA", "-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES",
          "-macalg", "sha1", "-passout", "pass:abc")(profile, "bot", out)  # fmt: skip
    short = tmp_path / "short.pass"
    short.write_text("abc\n")
    short.chmod(0o600)  # a secret file: only ours
    code, report = inspect(cli, out, "--p12-passphrase-file", str(short))
    assert code == 0 and report["password"] == "given", report["problems"]


def test_two_level_bundles_carry_the_whole_chain(cli, home: Path) -> None:
    """Intermediate + root in the bundle: inspect finds the chain complete, rebundle keeps it."""
    ok(cli("ca", "init", "-p", "fleet", "--intermediate"))
    ok(cli("client", "issue", "-p", "fleet", "-n", "bot", "-u"))
    p12 = home / "fleet" / "private" / "bot.p12"
    for _ in range(2):
        code, report = inspect(cli, p12)
        assert code == 0 and report["chain_complete"], report["problems"]
        assert [c["is_ca"] for c in report["certificates"]] == [False, True, True]
        ok(cli("client", "rebundle", "-p", "fleet", "-n", "bot"))
