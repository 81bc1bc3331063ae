"""Symlinks planted inside a profile never make certwiz write outside it.

Files certwiz writes are renamed into place (a rename replaces a link, it does
not follow it); directories and files that openssl itself writes through
(newcerts/, the audit log) are checked under the lock and refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import audit, issue
from certwiz.profile import Profile
from tests.conftest import load_cert, snapshot
from tests.security.conftest import one_error_line


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the profile holding a precious file."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "precious").write_text("do not overwrite\n")
    return path


@pytest.mark.parametrize("which", ["key", "p12"])
def test_planted_key_or_p12_symlink_is_replaced_not_followed(
    cli, profile: Profile, outside: Path, which: str
) -> None:
    target = outside / "precious"
    link = profile.key_path("bob") if which == "key" else profile.p12_path("bob")
    link.symlink_to(target)
    result = cli("client", "issue", "-p", "my-app", "-n", "bob", "-u")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "do not overwrite\n"
    assert not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    cert = load_cert(profile.cert_path("bob"))
    if which == "key":
        key = serialization.load_pem_private_key(link.read_bytes(), None)
    else:
        key = pkcs12.load_key_and_certificates(link.read_bytes(), None)[0]
    assert key is not None and key.public_key() == cert.public_key()


@pytest.mark.parametrize("sub", ["issued", "private", "reqs", "newcerts"])
def test_directory_replaced_by_symlink_is_refused(
    cli, profile: Profile, outside: Path, sub: str
) -> None:
    real = profile.dir / sub
    os.rename(real, outside / sub)
    real.symlink_to(outside / sub)
    index = profile.index.read_bytes()
    before = snapshot(outside)
    result = cli("client", "issue", "-p", "my-app", "-n", "bob", "-u")
    assert result.returncode == 4, result.stderr
    assert "not a plain directory" in one_error_line(result)
    assert snapshot(outside) == before
    assert profile.index.read_bytes() == index


@pytest.mark.parametrize("sub", ["issued", "private", "reqs", "newcerts"])
def test_recovery_never_works_through_a_directory_link(
    cli, profile: Profile, outside: Path, sub: str
) -> None:
    """Issue 13 item 3: recovery ran before the link check, so it removed scratch
    directories and temporary files in the link's target and restored certificates
    into it. The links are checked first now: nothing outside is touched or recorded."""
    issue.issue_client(profile, "alice")
    profile.cert_path("alice").unlink()  # recovery would restore it from newcerts/
    real, target = profile.dir / sub, outside / sub
    os.rename(real, target)  # the link leads to the real files, and to someone else's
    real.symlink_to(target)
    (target / ".certwiz-abc").mkdir()
    (target / ".certwiz-abc" / "key.pem").write_text("someone else's\n")
    (target / ".notes.tmp").write_text("someone else's\n")
    before = snapshot(outside)
    result = cli("client", "issue", "-p", "my-app", "-n", "bob", "-u")
    assert result.returncode == 4, result.stderr
    assert "not a plain directory" in one_error_line(result)
    assert snapshot(outside) == before
    record = audit.read(profile)[-1]
    assert record["result"] == "error" and "recovered" not in record


def test_symlink_at_next_newcerts_file_is_refused(cli, profile: Profile, outside: Path) -> None:
    """openssl ca would fopen() newcerts/SERIAL.pem through the link."""
    next_serial = profile.serial.read_text().strip()
    profile.newcert_path(next_serial).symlink_to(outside / "precious")
    result = cli("client", "issue", "-p", "my-app", "-n", "bob", "-u")
    assert result.returncode == 4
    assert "is a symlink" in one_error_line(result)
    assert (outside / "precious").read_text() == "do not overwrite\n"
    assert profile.index.read_text() == ""


@pytest.mark.parametrize(
    "name",
    ["serial.new", "index.txt.new", "index.txt.attr.new", "crlnumber.new", "serial", "index.txt"],
)
def test_symlink_at_a_file_openssl_ca_writes_is_refused(
    cli, profile: Profile, outside: Path, name: str
) -> None:
    """openssl ca fopen()s NAME.new and renames it over NAME: a link there would be followed."""
    victim = outside / "precious"
    planted = profile.dir / name
    if planted.exists():  # the database file itself: its content moves outside, a link stays
        os.rename(planted, victim)
    planted.symlink_to(victim)
    before = victim.read_bytes()
    for argv in (["client", "issue", "-p", "my-app", "-n", "bob", "-u"], ["crl", "gen", "-p",
                                                                           "my-app"]):  # fmt: skip
        result = cli(*argv)
        assert result.returncode == 4, result.stderr
        assert "symlink" in one_error_line(result)
    assert victim.read_bytes() == before
    assert cli("check", "-p", "my-app").returncode == 4


def test_symlinked_audit_log_is_refused(cli, profile: Profile, outside: Path) -> None:
    (profile.dir / "audit.log").unlink()
    (profile.dir / "audit.log").symlink_to(outside / "precious")
    result = cli("crl", "gen", "-p", "my-app")
    assert result.returncode == 4
    assert "audit.log: is a symlink" in one_error_line(result)
    assert (outside / "precious").read_text() == "do not overwrite\n"


def test_symlinked_crl_is_replaced_not_followed(cli, profile: Profile, outside: Path) -> None:
    (outside / "crl.pem").write_bytes(profile.crl.read_bytes())
    profile.crl.unlink()
    profile.crl.symlink_to(outside / "crl.pem")
    before = (outside / "crl.pem").read_bytes()
    result = cli("crl", "gen", "-p", "my-app")
    assert result.returncode == 0, result.stderr
    assert (outside / "crl.pem").read_bytes() == before
    assert not profile.crl.is_symlink()


def test_symlinked_lock_file_is_refused(cli, profile: Profile, outside: Path) -> None:
    profile.lock_file.unlink()
    profile.lock_file.symlink_to(outside / "precious")
    result = cli("crl", "gen", "-p", "my-app")
    assert result.returncode == 1
    one_error_line(result)
    assert (outside / "precious").read_text() == "do not overwrite\n"


def test_purge_removes_a_symlink_not_its_target(cli, profile: Profile, outside: Path) -> None:
    issue.issue_client(profile, "bob")
    profile.key_path("bob").unlink()
    profile.key_path("bob").symlink_to(outside / "precious")
    result = cli("revoke", "-p", "my-app", "-n", "bob", "--purge", "--json")
    assert result.returncode == 0, result.stderr
    assert not profile.key_path("bob").is_symlink() and not profile.key_path("bob").exists()
    assert (outside / "precious").read_text() == "do not overwrite\n"


def render_args(profile: Profile) -> tuple[str, ...]:
    issue.issue_server(profile, "www.example.com")
    return (
        "nginx",
        "render",
        "-p",
        profile.name,
        "--server",
        "www.example.com",
        "--upstream",
        "http://127.0.0.1:8080",
    )


def test_symlinked_nginx_dir_is_refused(cli, profile: Profile, outside: Path) -> None:
    """The default --out, PROFILE/nginx, planted as a link: refused, nothing written."""
    args = render_args(profile)
    (profile.dir / "nginx").symlink_to(outside)
    before = snapshot(outside)
    result = cli(*args)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"certwiz: error: out: {profile.dir / 'nginx'}: not a plain directory")
    assert snapshot(outside) == before


def test_symlinked_nginx_files_are_replaced_not_followed(
    cli, profile: Profile, outside: Path
) -> None:
    args = render_args(profile)
    out = profile.dir / "nginx"
    out.mkdir()
    files = [out / name for name in ("ssl.inc", "proxy.inc", "mtls_proxy.conf")]
    for link in files:
        link.symlink_to(outside / "precious")
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert (outside / "precious").read_text() == "do not overwrite\n"
    for path in files:
        assert not path.is_symlink() and "certwiz" in path.read_text(), path


@pytest.mark.parametrize("sub", ["", "reqs", "private", "newcerts", "issued"])
def test_recovery_never_works_through_a_link_in_the_root_of_two_levels(
    cli, home: Path, outside: Path, sub: str
) -> None:
    """An outside attack after the fix above: recovery on root/ of a two-level profile
    (and root/ itself replaced by a link) removed files in the link's target."""
    assert cli("ca", "init", "-p", "two", "--intermediate").returncode == 0
    root = home / "two" / "root"
    real = root / sub if sub else root
    target = outside / (sub or "root")
    os.rename(real, target)
    real.symlink_to(target)
    (target / ".certwiz-abc").mkdir()
    (target / ".certwiz-abc" / "key.pem").write_text("someone else's\n")
    (target / ".notes.tmp").write_text("someone else's\n")
    before = snapshot(outside)
    result = cli("client", "issue", "-p", "two", "-n", "bob", "-u")
    assert result.returncode == 4, result.stderr
    assert "not a plain directory" in one_error_line(result)
    assert snapshot(outside) == before
