"""The renewal agent, run as root, never deletes or replaces anything through a directory
another user can change (attack round 10, F2: the bot's user planted `.b.p12.work-zz`,
filled it with a victim's file names and swapped it for a link while root's `agent renew`
emptied it; root deleted files in a directory only root could write)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from certwiz import fsutil
from certwiz.api import CA
from certwiz.errors import CertwizError
from certwiz.est import pending
from tests.conftest import run_certwiz, snapshot

NOBODY = 65534
VICTIMS = [f"n{i:04d}" for i in range(200)]


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile's bot.p12 (-u) and ca.crt, to copy into each device directory."""
    base = tmp_path_factory.mktemp("agentdir")
    CA.create("app", base / "certs", unencrypted=True)
    CA.open("app", base / "certs").issue_client("bot", days="1", unencrypted=True)
    return base / "certs" / "app"


def device_dir(issued: Path, where: Path, mode: int) -> Path:
    """WHERE with bot.p12, ca.crt, and what the attacker planted: a pending renewal (every
    run then takes the cleanup path) and a scratch directory named like the agent's."""
    where.mkdir(mode=mode)
    where.chmod(mode)
    shutil.copy(issued / "private" / "bot.p12", where / "bot.p12")
    shutil.copy(issued / "ca.crt", where / "ca.crt")
    (where / ".bot.p12.pending").mkdir()
    (where / ".bot.p12.work-zz").mkdir()
    for name in VICTIMS[:5]:
        (where / ".bot.p12.work-zz" / name).write_text("")
    return where


def victim(where: Path) -> Path:
    """A directory only root may write (as the attack's), full of root's files."""
    where.mkdir(mode=0o755)
    for name in VICTIMS:
        (where / name).write_text("")
    return where


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def renew(bundle: Path) -> list[str]:
    url = f"https://127.0.0.1:{closed_port()}"
    return ["agent", "renew", "--url", url, "--p12", str(bundle),
            "--ca", str(bundle.parent / "ca.crt"), "-u", "--force"]  # fmt: skip


def refused(result, field: str, says: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}: "), lines
    assert says in lines[0], lines[0]


def test_a_bundle_directory_another_user_can_change_is_refused(
    issued: Path, tmp_path: Path
) -> None:
    """renew and enroll refuse (exit 2, one line) before touching anything: a directory
    of another user (the attack's), one writable by group or others, sticky included (the
    agent makes names there that another user could plant first), and a link to a good
    directory that another user owns. Before the fix renew went on (exit 1, cannot reach)
    after emptying and removing the planted directories."""
    cases: list[tuple[Path, str]] = []
    for mode in (0o777, 0o1777, 0o775):
        cases.append((device_dir(issued, tmp_path / f"m{mode:o}", mode), f"(mode {mode:o})"))
    if os.geteuid() == 0:  # only root can give a directory (or a link) away; CI runs as root
        theirs = device_dir(issued, tmp_path / "theirs", 0o755)
        for path in (theirs, *theirs.rglob("*")):
            os.lchown(path, NOBODY, NOBODY)
        cases.append((theirs, f"owned by uid {NOBODY}"))
        ours = device_dir(issued, tmp_path / "ours", 0o700)
        link = tmp_path / "link"
        link.symlink_to(ours)
        os.lchown(link, NOBODY, NOBODY)
        cases.append((link, f"owned by uid {NOBODY}"))
    safe = tmp_path / "safe"  # enroll's --ca out of the way: its own check comes first (F7)
    safe.mkdir(mode=0o700)
    shutil.copyfile(cases[0][0] / "ca.crt", safe / "ca.crt")
    for where, says in cases:
        before = snapshot(where)
        refused(run_certwiz(tmp_path, *renew(where / "bot.p12")), "p12", says)
        result = run_certwiz(
            tmp_path, "agent", "enroll", "--url", f"https://127.0.0.1:{closed_port()}",
            "-n", "bot", "--token", "t0k", "--ca", str(safe / "ca.crt"),
            "--out", str(where / "new.p12"), "-u",
        )  # fmt: skip
        refused(result, "out", says)
        assert snapshot(where) == before, where  # the planted directories are still there


def test_the_agents_own_directory_still_works(issued: Path, tmp_path: Path) -> None:
    """The README's layout (a 0700 directory of root or the agent's user): a down server
    is exit 1 as before, and the planted leftovers are gone (the agent holds the lock)."""
    where = device_dir(issued, tmp_path / "dev", 0o700)
    result = run_certwiz(tmp_path, *renew(where / "bot.p12"))
    assert result.returncode == 1 and "cannot reach" in result.stderr, result.stderr
    assert not (where / ".bot.p12.work-zz").exists()
    assert sorted(p.name for p in where.iterdir()) == [".bot.p12.pending", "bot.p12", "ca.crt"]


def swap_on_first_unlink(monkeypatch: pytest.MonkeyPatch, planted: Path, target: Path) -> None:
    """The attack's swap, at its worst moment: once the removal has listed the planted
    directory and begins to unlink, the directory is renamed away and a link to TARGET
    takes its name (a real rename and symlink on disk)."""
    real = os.unlink
    done: list[bool] = []

    def unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not done:
            done.append(True)
            os.rename(planted, planted.with_name("store"))
            os.symlink(target, planted)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)


@pytest.mark.parametrize("how", ["discard", "leftover"])
def test_a_directory_swapped_for_a_link_mid_removal_deletes_nothing_behind_it(
    monkeypatch: pytest.MonkeyPatch, issued: Path, tmp_path: Path, how: str
) -> None:
    """Removals go through the directory's descriptor (unlinkat), so the swap above only
    loses what the planted directory held; before the fix (unlink by path) every name
    after the swap was deleted in TARGET. Both ways the agent removes: a pending renewal
    (discard) and a killed run's scratch directory (found by the next run's load)."""
    from certwiz.est.device import read_bundle

    where = tmp_path / "dev"
    where.mkdir(mode=0o700)
    shutil.copy(issued / "private" / "bot.p12", where / "bot.p12")
    target = victim(tmp_path / "victim")
    planted = where / (".bot.p12.pending" if how == "discard" else ".bot.p12.work-zz")
    planted.mkdir()
    for name in VICTIMS:
        (planted / name).write_text("")
    swap_on_first_unlink(monkeypatch, planted, target)
    if how == "discard":
        pending.discard(planted)
    else:
        pending.load(where / "bot.p12", read_bundle(where / "bot.p12", None))
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == VICTIMS
    assert not (where / "store").exists() or not list((where / "store").iterdir())


SWAPPER = """
import os, sys
planted, store, target, stop = sys.argv[1:]
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        if len(os.listdir(planted)) < NAMES:  # the removal has begun: swap now
            os.rename(planted, store)
            os.symlink(target, planted)
            while not os.path.exists(stop) and os.path.islink(planted):
                pass
    except OSError:
        pass
"""


def test_removal_under_a_racing_swapper_never_reaches_the_target(tmp_path: Path) -> None:
    """The attack's loop itself, in another process: as soon as the removal has begun,
    the directory is renamed away and a link to the target takes its name; round after
    round, the target keeps every file (before the fix it lost some in the first rounds)."""
    target = victim(tmp_path / "victim")
    planted, store, stop = tmp_path / "work", tmp_path / "store", tmp_path / "stop"
    code = SWAPPER.replace("NAMES", str(len(VICTIMS)))
    for _ in range(10):
        for path in (planted, store):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
        stop.unlink(missing_ok=True)
        planted.mkdir()
        for name in VICTIMS:
            (planted / name).write_text("")
        swapper = subprocess.Popen([sys.executable, "-c", code, str(planted), str(store),
                                    str(target), str(stop)], stdout=subprocess.PIPE)  # fmt: skip
        try:
            assert swapper.stdout is not None and swapper.stdout.readline() == b"ready\n"
            for _ in range(3):  # the name may change under it (not empty, not a directory)
                with contextlib.suppress(OSError):
                    pending.discard(planted)
        finally:
            stop.write_text("")
            swapper.communicate(timeout=30)
        assert sorted(p.name for p in target.iterdir()) == VICTIMS


def test_a_directory_of_another_user_is_not_emptied(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory away needs root (CI runs as root)")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "file").write_text("")
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(CertwizError, match=f"owned by uid {NOBODY}"):
        fsutil.remove_tree(theirs)
    assert (theirs / "file").exists()
