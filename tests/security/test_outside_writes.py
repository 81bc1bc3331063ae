"""Paths an operator gives (pid file, error log) never land on a profile's files, and a
profile that someone else could have replaced is not signed from (outside attack, round 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env, snapshot


@pytest.fixture
def made(cli, home: Path) -> Path:
    assert cli("ca", "init", "-p", "a").returncode == 0
    assert cli("server", "issue", "-p", "a", "-n", "web.local").returncode == 0
    return home / "a"


def one_line_exit_2(result, field: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}:"), lines


@pytest.mark.parametrize("target", ["private/ca.key", "index.txt", "crl.pem"])
def test_the_ocsp_pid_file_is_never_a_profile_file(cli, made: Path, home: Path, target) -> None:
    """`ocsp serve --pid-file private/ca.key` deleted the CA key."""
    before = snapshot(home)
    result = cli("ocsp", "serve", "-p", "a", "--listen", "127.0.0.1:1", "--pid-file", made / target)
    one_line_exit_2(result, "pid-file")
    assert snapshot(home) == before


def test_an_existing_file_that_is_not_a_pid_file_is_refused(cli, made: Path, tmp_path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    result = cli("ocsp", "serve", "-p", "a", "--listen", "127.0.0.1:1", "--pid-file", precious)
    one_line_exit_2(result, "pid-file")
    assert precious.read_text() == "precious\n"


@pytest.mark.parametrize("target", ["index.txt", "crl.pem", "private/ca.key", "nginx/x.log"])
def test_the_nginx_error_log_is_never_inside_the_home(cli, made: Path, home: Path, target) -> None:
    """nginx appends what any client makes it log: into index.txt, the CA was refused (exit 4)."""
    before = snapshot(home)
    result = cli(
        "nginx", "render", "-p", "a", "--server", "web.local", "--upstream",
        "http://127.0.0.1:9", "--error-log", made / target,
    )  # fmt: skip
    one_line_exit_2(result, "error-log")
    assert snapshot(home) == before


def test_a_new_home_is_not_world_writable_under_umask_000(tmp_path: Path) -> None:
    """The home, its new parents and the rendered nginx/ took the umask's 0777."""
    home = tmp_path / "new" / "deeper" / "certs"
    script = (
        "import os, sys; os.umask(0); from certwiz.cli import app; sys.argv[0] = 'certwiz'; "
        "app(sys.argv[1:])"
    )

    def run(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-c", script, *args], env=clean_env(home), capture_output=True
        )
        assert proc.returncode == 0, proc.stderr

    run("ca", "init", "-p", "u")
    run("server", "issue", "-p", "u", "-n", "s.local")
    run("nginx", "render", "-p", "u", "--server", "s.local", "--upstream", "http://127.0.0.1:9")
    for directory in (home.parent.parent, home.parent, home, home / "u", home / "u" / "nginx"):
        assert directory.stat().st_mode & 0o022 == 0, (directory, oct(directory.stat().st_mode))


@pytest.mark.parametrize(
    ("where", "mode"), [("profile", 0o777), ("profile", 0o775), ("home", 0o777), ("home", 0o770)]
)
def test_a_profile_others_could_replace_is_refused(
    cli, made: Path, home: Path, where: str, mode: int
) -> None:
    """With a world-writable home anyone could swap in their own CA and have it sign."""
    os.chmod(made if where == "profile" else home, mode)
    before = snapshot(home)
    refused = cli("client", "issue", "-p", "a", "-n", "bot", "-u")
    assert refused.returncode == 4, refused.stderr
    assert "writable by group or others" in refused.stderr
    assert snapshot(home) == before  # refused when the profile is opened: nothing written
    assert cli("check", "-p", "a").returncode == 4


def test_a_sticky_shared_home_is_accepted(cli, made: Path, home: Path) -> None:
    """Like /tmp: others may add entries but not rename or remove this user's profile."""
    os.chmod(home, 0o1777)
    assert cli("client", "issue", "-p", "a", "-n", "bot", "-u").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_profile_owned_by_another_user_is_refused(cli, made: Path, home: Path) -> None:
    os.chown(made, 65534, 65534)
    refused = cli("client", "issue", "-p", "a", "-n", "bot", "-u")
    assert refused.returncode == 4 and "is owned by uid 65534" in refused.stderr


@pytest.mark.parametrize(
    ("entry", "mode"),
    [("openssl.cnf", 0o666), ("index.txt", 0o660), ("crl.pem", 0o646), ("newcerts", 0o777),
     ("issued", 0o775), ("private", 0o770), ("private/..", 0o757)],
)  # fmt: skip
def test_an_entry_of_the_profile_others_can_write_is_refused(
    cli, made: Path, home: Path, entry: str, mode: int
) -> None:
    """A world-writable openssl.cnf let another user load a module into root's openssl
    (`openssl_conf` + a providers section): the check covered only the directories."""
    path = made / entry
    old = path.stat().st_mode & 0o7777
    os.chmod(path, mode)
    try:
        refused = cli("client", "issue", "-p", "a", "-n", "bot", "-u")
        assert refused.returncode == 4, refused.stderr
        assert "writable by group or others" in refused.stderr
        assert not (made / "issued" / "bot.crt").exists()
        assert cli("check", "-p", "a").returncode == 4
    finally:
        os.chmod(path, old)
    assert cli("check", "-p", "a").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("entry", ["openssl.cnf", "index.txt", "private", "private/ca.key"])
def test_an_entry_another_user_owns_is_refused(cli, made: Path, entry: str) -> None:
    path = made / entry
    os.chown(path, 65534, 65534)
    refused = cli("client", "issue", "-p", "a", "-n", "bot", "-u")
    assert refused.returncode == 4, refused.stderr
    assert "owned by uid 65534" in refused.stderr or "private" in refused.stderr


def test_the_error_log_is_never_in_the_directory_render_writes(
    cli, made: Path, home: Path, tmp_path: Path
) -> None:
    """nginx would append its log to ssl.inc, an include it reads: the next `nginx -t`
    fails, and with it every reload a new CRL needs (attack round 6, L1)."""
    out = tmp_path / "ng"
    result = cli(
        "nginx", "render", "-p", "a", "--server", "web.local", "--upstream",
        "http://127.0.0.1:9", "--out", str(out), "--error-log", str(out / "ssl.inc"),
    )  # fmt: skip
    one_line_exit_2(result, "error-log")
    assert not out.exists()


def test_a_bundle_handout_is_never_written_inside_the_home(cli, made: Path, home: Path) -> None:
    """`client bundle --out` copies a key out: into the home (reqs/, another profile) it
    would sit where certwiz and its operators do not look for keys (round 6, L2)."""
    assert cli("client", "issue", "-p", "a", "-n", "bob", "-u").returncode == 0
    before = snapshot(home)
    result = cli("client", "bundle", "-p", "a", "-n", "bob", "--out", str(made / "reqs" / "x"))
    one_line_exit_2(result, "out")
    assert snapshot(home) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("owned", ["home", "parent"])
def test_ca_init_refuses_a_home_another_user_could_swap(cli, tmp_path: Path, owned: str) -> None:
    """`ca init` built the CA in a home another user owned: they renamed the build
    directory to one of theirs and swapped openssl.cnf, and root's openssl loaded their
    module (attack round 7). The same with a directory above the home."""
    parent = tmp_path / "shared"
    parent.mkdir()
    home = parent / "certs"
    home.mkdir()
    os.chown(home if owned == "home" else parent, 65534, 65534)
    before = snapshot(tmp_path)
    result = cli("ca", "init", "-p", "x", "--home", str(home))
    one_line_exit_2(result, "home")
    assert "is owned by uid 65534" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_profile_under_a_directory_another_user_owns_is_refused(
    cli, made: Path, home: Path
) -> None:
    """Whoever owns a directory above the home can rename the home and put a link to
    their own CA in its place between certwiz's check and openssl's next open (the
    attack won on the 4th crl gen): refused before anything, on every command."""
    above = home.parent
    old = above.stat()
    os.chown(above, 65534, 65534)
    try:
        refused = cli("crl", "gen", "-p", "a")
        assert refused.returncode == 4, refused.stderr
        assert f"{above} is owned by uid 65534" in refused.stderr
    finally:
        os.chown(above, old.st_uid, old.st_gid)
    assert cli("crl", "gen", "-p", "a").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mount needs root")
def test_export_out_through_a_bind_mount_of_the_profile_is_refused(
    cli, made: Path, home: Path, tmp_path: Path
) -> None:
    """`private/` mounted elsewhere is the same directory under another name: `export
    --out MOUNT/ca.key --force` replaced the CA key (attack round 7, F3)."""
    assert cli("client", "issue", "-p", "a", "-n", "bob", "-u").returncode == 0
    mount = tmp_path / "bm"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(made / "private"), str(mount)], check=True)
    try:
        before = snapshot(home)
        result = cli("export", "-p", "a", "-n", "bob", "--format", "pem",
                     "--out", str(mount / "ca.key"), "--force")  # fmt: skip
        one_line_exit_2(result, "out")
        assert snapshot(home) == before
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_paths_written_later_by_name_are_in_directories_only_we_control(
    cli, made: Path, home: Path, tmp_path: Path
) -> None:
    """Checked once, written later by name: another user owning the directory could swap
    in a link to index.txt (nginx appended client noise to it as root) or race export's
    rename onto ca.crt (attack round 8)."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    assert cli("client", "issue", "-p", "a", "-n", "bob", "-u").returncode == 0
    before = snapshot(home)
    render = ["nginx", "render", "-p", "a", "--server", "web.local",
              "--upstream", "http://127.0.0.1:9", "--out", str(tmp_path / "ng")]  # fmt: skip
    one_line_exit_2(cli(*render, "--error-log", str(theirs / "mtls.log")), "error-log")
    twin = tmp_path / "twin.log"
    os.link(made / "index.txt", twin)  # a second name of index.txt, in our own directory
    one_line_exit_2(cli(*render, "--error-log", str(twin)), "error-log")
    out = ["export", "-p", "a", "-n", "bob", "--format", "pem", "--out", str(theirs / "b.pem")]
    one_line_exit_2(cli(*out), "out")
    bundle = ["client", "bundle", "-p", "a", "-n", "bob", "--out", str(theirs / "bob")]
    one_line_exit_2(cli(*bundle), "out")
    assert snapshot(home) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize(
    "args",
    [["list", "-p", "a"], ["show", "-p", "a", "-n", "web.local"], ["status", "-p", "a"],
     ["export", "-p", "a", "-n", "web.local", "--format", "chain"], ["audit", "-p", "a"],
     ["profiles"]],
)  # fmt: skip
def test_reading_commands_refuse_a_home_another_user_could_swap(
    cli, made: Path, home: Path, args: list[str]
) -> None:
    """export --format chain handed out a swapped-in attacker's root, and status said OK."""
    above = home.parent
    old = above.stat()
    os.chown(above, 65534, 65534)
    try:
        refused = cli(*args)
        assert refused.returncode == 4, (refused.stdout, refused.stderr)
        assert f"{above} is owned by uid 65534" in refused.stderr
    finally:
        os.chown(above, old.st_uid, old.st_gid)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_pid_file_error_log_and_render_out_only_where_nobody_else_writes(
    cli, made: Path, home: Path, tmp_path: Path
) -> None:
    """The responder deletes its pid file by name at exit (another user swapped its
    directory for a link and root deleted their target); nginx reopens its log as root
    (a link planted in /tmp later); root's nginx loads what render writes (another user
    turned verification off in their directory) (final attack round, D1-D3)."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    before = snapshot(home)
    pid = cli("ocsp", "serve", "-p", "a", "--listen", "127.0.0.1:1",
              "--pid-file", str(theirs / "run" / "o.pid"))  # fmt: skip
    one_line_exit_2(pid, "pid-file")
    render = ["nginx", "render", "-p", "a", "--server", "web.local", "--upstream",
              "http://127.0.0.1:9"]  # fmt: skip
    one_line_exit_2(cli(*render, "--out", str(tmp_path / "ng"), "--error-log",
                        str(shared / "e.log")), "error-log")  # fmt: skip
    one_line_exit_2(cli(*render, "--out", str(theirs)), "out")
    one_line_exit_2(cli(*render, "--out", str(theirs / "deeper")), "out")
    assert snapshot(home) == before
    assert list(theirs.iterdir()) == []
