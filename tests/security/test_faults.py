"""A full disk or a read-only profile: one clear line, and no damage.

Full disk: a small tmpfs filled to a few pages short of full, at several
levels, so the failure lands in different steps. Where mounting is not
allowed the same test limits the file size instead (RLIMIT_FSIZE: writes
fail with EFBIG, the way they fail with ENOSPC). Read-only: a read-only
bind mount (root ignores chmod), or chmod when not root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from certwiz import ca, check, database, issue
from certwiz.profile import Profile
from tests.conftest import Result, clean_env, in_ci, invoke, load_cert, load_crl, missing, snapshot
from tests.security.conftest import one_error_line


def mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def run(home: Path, *args: str, fsize: int | None = None) -> Result:
    """certwiz with its file size limited to FSIZE bytes (a process of its own: the limit
    is the process's); without a limit, in this process (a full tmpfs is the disk's)."""
    if fsize is None:
        return invoke(home, *args)
    env = clean_env(home)

    def limit() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.run(
        [sys.executable, "-m", "certwiz", *args],
        env=env,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def fill(directory: Path, leave: int) -> Path:
    """Fill the file system of `directory` up, then give back `leave` bytes."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
                handle.flush()
        written = handle.tell()
    with contextlib.suppress(OSError):
        os.truncate(filler, max(0, written - leave))
    return filler


def assert_healthy(profile: Profile) -> None:
    report = check.verify_profile(profile)
    assert report.problems == []
    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    database.read(profile.index)


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, bool]]:
    """(directory, True) on a 512 KiB tmpfs; (directory, False): use RLIMIT_FSIZE.

    The tmpfs variant falls back to the file size limit where mounting is refused.
    """
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = request.param == "tmpfs" and mount(
        "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mnt)
    )
    if request.param == "tmpfs" and not mounted:
        missing("a tmpfs mount (root; the rlimit variant runs anyway)", "run as root")
    yield mnt, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


COMMANDS = [
    ["client", "issue", "-p", "full", "-n", "new{step}", "-u"],
    ["revoke", "-p", "full", "-n", "keep{step}"],
    ["crl", "gen", "-p", "full"],
]


def check_failure(result: Result) -> None:
    """Either it worked, or it failed with exit 1 and one line that says why."""
    if result.returncode != 0:
        # 1: the write failed visibly; 4: openssl "succeeded" but left a damaged
        # database or CRL, which certwiz caught and rolled back (check.guarded).
        assert result.returncode in (1, 4), result.stderr
        line = one_error_line(result)
        telling = ("No space left", "File too large", "openssl", "cannot grow")  # audit.log
        assert any(s in line for s in telling), line
        assert result.returncode == 1 or any(
            s in line for s in ("nothing was changed", "was kept", "nothing was installed")
        )


def test_full_disk_gives_a_clear_error_and_no_damage(small_fs: tuple[Path, bool]) -> None:
    mnt, mounted = small_fs
    home = mnt / "certs"
    profile = ca.init("full", home)
    levels = [0, 1024, 4096, 8192, 12288, 20480] if mounted else [0, 200, 700, 1500, 3000, 6000]
    for step in range(len(levels)):
        issue.issue_client(profile, f"keep{step}")
    failures = 0
    for step, level in enumerate(levels):
        filler = fill(mnt, level) if mounted else None
        for argv in COMMANDS:
            args = [a.replace("{step}", str(step)) for a in argv]
            result = run(home, *args, fsize=None if mounted else level)
            check_failure(result)
            failures += result.returncode != 0
            load_crl(profile.crl)  # never half-written, even when the disk is full
        if filler is not None:
            filler.unlink()
        # Space is back: the next command works and the profile adds up.
        after = run(home, "client", "issue", "-p", "full", "-n", f"ok{step}", "-u")
        assert after.returncode == 0, after.stderr
        assert_healthy(profile)
    assert failures > 0  # the fault really was injected
    assert run(home, "check", "-p", "full").returncode == 0


# Root without mount rights (an unprivileged container): the same refusal the kernel
# gives, injected into certwiz's own writes. Every write certwiz makes to a profile
# starts with os.open (the lock, files) or os.mkdir (scratch and init directories).
READ_ONLY_BOOT = """
import errno, os, sys
home = os.environ["CERTWIZ_HOME"]
real_open, real_mkdir = os.open, os.mkdir
def refuse(path):
    if os.path.abspath(os.fspath(path)).startswith(home):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
def ro_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        refuse(path)
    return real_open(path, flags, *args, **kwargs)
def ro_mkdir(path, *args, **kwargs):
    refuse(path)
    return real_mkdir(path, *args, **kwargs)
os.open, os.mkdir = ro_open, ro_mkdir
from certwiz.cli import app
app(sys.argv[1:], prog_name="certwiz")
"""


@pytest.fixture
def read_only_home(home: Path, tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """(view, injected): a read-only bind mount of the home; chmod a-w when not root;
    for root without mount rights, the home itself with EROFS injected (injected=True)."""
    view = tmp_path / "view"
    view.mkdir()
    if mount("--bind", str(home), str(view)):
        try:
            if not mount("-o", "remount,bind,ro", str(view)):
                pytest.fail("bind mount worked but read-only remount did not")
            yield view, False
        finally:
            subprocess.run(["umount", "-l", str(view)], check=False)
        return
    if os.geteuid() == 0:
        if in_ci():
            pytest.fail("CI is set but a read-only bind mount was refused: the kernel must run")
        yield home, True
        return
    for path in [home, *home.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        yield home, False
    finally:
        for path in [home, *home.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


@pytest.mark.parametrize(
    "argv",
    [
        ["client", "issue", "-p", "my-app", "-n", "bob", "-u"],
        ["revoke", "-p", "my-app", "-n", "alice"],
        ["crl", "gen", "-p", "my-app"],
        ["ca", "init", "-p", "another"],
    ],
)
def test_read_only_profile_gives_a_clear_error(
    profile: Profile, argv: list[str], request: pytest.FixtureRequest
) -> None:
    issue.issue_client(profile, "alice")
    view, injected = request.getfixturevalue("read_only_home")
    before = snapshot(profile.home)
    result = run_read_only(view, argv, injected)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert "Read-only file system" in line or "Permission denied" in line
    assert snapshot(profile.home) == before


def run_read_only(view: Path, argv: list[str], injected: bool) -> Result:
    env = clean_env()
    env.update(CERTWIZ_HOME=str(view), CERTWIZ_CA_PASSPHRASE="a passphrase")  # no warning
    boot = ["-c", READ_ONLY_BOOT] if injected else ["-m", "certwiz"]
    proc = subprocess.run(
        [sys.executable, *boot, *argv],
        env=env,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_read_only_injection_is_reported_in_one_line(profile: Profile) -> None:
    """The EROFS fallback (root without mount rights) itself ends in one clear line."""
    result = run_read_only(profile.home, ["crl", "gen", "-p", "my-app"], injected=True)
    assert result.returncode == 1
    assert "Read-only file system" in one_error_line(result)


def test_enospc_from_python_writes_is_one_line(
    cli, profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error path itself, independent of how the disk filled: OSError -> one line."""
    from typer.testing import CliRunner

    from certwiz import cli as cli_module
    from certwiz import fsutil

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(profile.crl))

    monkeypatch.setattr(fsutil.os, "replace", no_space)
    crl, index = profile.crl.read_bytes(), profile.index.read_bytes()
    result = CliRunner().invoke(cli_module.app, ["crl", "gen", "-p", "my-app"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("certwiz: error: No space left")
    assert (profile.crl.read_bytes(), profile.index.read_bytes()) == (crl, index)
    assert not list(profile.dir.glob(".certwiz-*"))  # the scratch directory went too


def test_files_cut_short_are_refused(profile: Profile, tmp_path: Path) -> None:
    """openssl exits 0 after a failed write: certwiz checks each file before installing it."""
    issue.issue_client(profile, "whole")
    whole = [
        profile.key_path("whole"),
        profile.p12_path("whole"),
        profile.cert_path("whole"),
        profile.csr_path("whole"),
    ]
    check.require_whole(*whole)
    for source in whole:
        data = source.read_bytes()
        for cut in (b"", data[: len(data) // 2], data[:-40]):
            short = tmp_path / source.name
            short.write_bytes(cut)
            with pytest.raises(check.ProfileCorrupt, match="incompletely"):
                check.require_whole(short)
