"""A profile copied beside its original is not a second live CA (attack round 10, F10).

`cp -a HOME/g HOME/g-backup`: item 4 of issue 13 made the copy work on its own database,
so the copy became a second CA with the same key and the same serial state: `b` in g and
`evil` in g-backup got the SAME serial, revoking evil in the copy never reached g's CRL,
and revoking b in g revoked evil too. Now a change in the copy is refused (exit 4) while
the original it names is in the same home (check reports it), the original works, and a
copy becomes the profile once the original is gone (a restored backup; mv).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from certwiz import ca, check, database, rollover
from certwiz.ocsp import responder as ocsp_responder
from certwiz.profile import Profile
from examples.local_nginx import free_port
from tests.conftest import clean_env, invoke, snapshot


def _copy(profile: Profile, name: str) -> Profile:
    shutil.copytree(profile.dir, profile.home / name, symlinks=True)  # cp -a
    return Profile(name, profile.home)


def test_a_copy_beside_its_original_changes_nothing(home: Path) -> None:
    g = ca.init("g", home)
    assert invoke(home, "client", "issue", "-p", "g", "-n", "b", "-u").returncode == 0
    backup = _copy(g, "g-backup")
    before = snapshot(backup.dir)
    before.pop("audit.log")  # a refused change is recorded there, as every failure
    for argv in (("client", "issue", "-p", "g-backup", "-n", "evil", "-u"),
                 ("revoke", "-p", "g-backup", "-n", "b"),
                 ("crl", "gen", "-p", "g-backup")):  # fmt: skip
        done = invoke(home, *argv)
        assert done.returncode == 4, (argv, done.stdout, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert f"{backup.dir} is a copy of profile g ({g.dir})" in done.stderr
        assert "outside the certwiz home" in done.stderr and "nothing was changed" in done.stderr
    after = snapshot(backup.dir)
    after.pop("audit.log")
    assert after == before  # its openssl.cnf still names the original
    found = invoke(home, "check", "-p", "g-backup", "--json")
    assert found.returncode == 4
    assert f"is a copy of profile g ({g.dir})" in json.dumps(json.loads(found.stdout))
    # the original is not refused: it goes on signing its own serials
    assert invoke(home, "client", "issue", "-p", "g", "-n", "b2", "-u").returncode == 0
    assert invoke(home, "check", "-p", "g").returncode == 0
    serials = [e.serial for e in database.read(g.index)]
    assert len(set(serials)) == len(serials) == 2
    assert [e.serial for e in database.read(backup.index)] == serials[:1]  # evil never signed


def test_the_copy_becomes_the_profile_once_the_original_is_gone(home: Path, tmp_path: Path) -> None:
    """Restore from a backup (the original moved away, or lost) and `mv` keep working."""
    g = ca.init("g", home)
    backup = _copy(g, "g-backup")
    shutil.move(g.dir, tmp_path / "g-broken")  # the original leaves the home
    done = invoke(home, "client", "issue", "-p", "g-backup", "-n", "c", "-u")
    assert done.returncode == 0, done.stderr
    assert check.misplaced_cnf(backup) is None  # recovery pointed it at itself
    shutil.move(backup.dir, home / "g")  # renamed back: a move, nothing left behind
    assert invoke(home, "client", "issue", "-p", "g", "-n", "d", "-u").returncode == 0
    assert invoke(home, "check", "-p", "g").returncode == 0
    # ca adopt of a CA a profile of the home already holds would make the same twin
    before = snapshot(home)
    done = invoke(home, "ca", "adopt", "-p", "g4", "--from", str(home / "g"))
    assert done.returncode == 2, done.stderr
    assert f"profile g ({home / 'g'}) already holds this CA" in done.stderr
    assert snapshot(home) == before


def test_two_profiles_of_one_ca_key_neither_naming_the_other_are_both_refused(
    home: Path, tmp_path: Path
) -> None:
    """A copy an older certwiz already pointed at itself, and the original renewed since
    (`ca renew`: same key, another certificate): which is the copy is not known, so both
    are refused, each naming the other."""
    g = ca.init("g", home)
    g2 = _copy(g, "g2")
    text = g2.cnf.read_text().replace(f"dir = {g.dir}\n", f"dir = {g2.dir}\n")
    g2.cnf.write_text(text)  # what item 4's recovery did to such a copy
    shutil.move(g2.dir, tmp_path / "g2")
    rollover.renew_ca(g)  # while the copy was away
    shutil.move(tmp_path / "g2", g2.dir)
    assert g.ca_cert.read_bytes() != g2.ca_cert.read_bytes()
    for mine, other in ((g, g2), (g2, g)):
        done = invoke(home, "client", "issue", "-p", mine.name, "-n", "x", "-u")
        assert done.returncode == 4, done.stderr
        assert f"{mine.dir} and profile {other.name} ({other.dir}) hold the same CA key" in (
            done.stderr
        )
        assert invoke(home, "check", "-p", mine.name).returncode == 4
    # another CA in the same home is no copy
    assert invoke(home, "ca", "init", "-p", "h").returncode == 0
    assert invoke(home, "client", "issue", "-p", "h", "-n", "x", "-u").returncode == 0


def _serve(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A long-running reader as a process: refused at once, or killed (by pid) when it
    serves instead (a failure)."""
    proc = subprocess.Popen([sys.executable, "-m", "certwiz", *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(home))  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{argv} served from a copy: {out} {err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_long_running_readers_refuse_a_copy_as_changes_do(home: Path) -> None:
    """`ocsp serve` and the EST service on `cp -a g g-bk2` (attack round 11, F4): the
    responder answered "good" from the copy's index for what the original revoked."""
    g = ca.init("g", home)
    assert invoke(home, "client", "issue", "-p", "g", "-n", "b", "-u").returncode == 0
    ocsp_responder.ensure_responder(g, None)  # what `ocsp serve -p g` issues at start
    backup = _copy(g, "g-bk2")
    assert invoke(home, "revoke", "-p", "g", "-n", "b").returncode == 0
    change = invoke(home, "crl", "gen", "-p", "g-bk2")
    assert change.returncode == 4, change.stderr
    port = str(free_port())
    for argv in (("ocsp", "serve", "-p", "g-bk2", "--listen", f"127.0.0.1:{port}"),
                 ("serve", "-p", "g-bk2", "--listen", f"127.0.0.1:{port}")):  # fmt: skip
        before = snapshot(backup.dir)
        done = _serve(home, *argv)
        assert done.returncode == 4, (argv, done.stdout, done.stderr)
        assert done.stderr == change.stderr, argv  # the same line as a change's
        assert f"{backup.dir} is a copy of profile g ({g.dir})" in done.stderr
        assert snapshot(backup.dir) == before
    check.refuse_live_copy(g)  # the original is not refused


def test_a_copied_home_beside_its_original_changes_nothing(home: Path, tmp_path: Path) -> None:
    """Attack round 12 (F5): `cp -a HOME HOME2` while HOME is in use: the copy in HOME2
    issued production's next serial with production's key (its nginx admitted it).
    The directory the copy's openssl.cnf names still holds this CA: refused (exit 4,
    naming the original), check reports it; the original works; once the original is
    gone (lost, or moved), the copy is the profile again."""
    g = ca.init("g", home)
    assert invoke(home, "client", "issue", "-p", "g", "-n", "b", "-u").returncode == 0
    home2 = tmp_path / "home2"
    shutil.copytree(home, home2, symlinks=True)  # cp -a HOME HOME2
    copy = Profile("g", home2)
    before = snapshot(copy.dir)
    before.pop("audit.log")
    for argv in (("client", "issue", "-p", "g", "-n", "evil", "-u"), ("crl", "gen", "-p", "g")):
        done = invoke(home2, *argv)
        assert done.returncode == 4, (argv, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [
            f"certwiz: error: {copy.dir} is a copy of {g.dir} (its openssl.cnf names it, and "
            "it holds this CA's key): both would sign the same serials with one key and "
            f"revoke into different CRLs; work on {g.dir}, or, if this is a backup, keep it "
            f"outside any certwiz home; to work on this copy instead, move {g.dir} away "
            "first; nothing was changed"
        ], done.stderr
    after = snapshot(copy.dir)
    after.pop("audit.log")
    assert after == before
    found = invoke(home2, "check", "-p", "g", "--json")
    assert found.returncode == 4
    assert f"is a copy of {g.dir}" in json.dumps(json.loads(found.stdout))
    # attack round 14: status said ok there; it is critical, check's reason (exit 2)
    watched = invoke(home2, "status", "-p", "g", "--json")
    assert watched.returncode == 2, watched.stdout
    (item,) = [i for i in json.loads(watched.stdout)["items"] if i["state"] == "critical"]
    assert item["kind"] == "profile" and f"{copy.dir} is a copy of {g.dir}" in item["message"]
    assert invoke(home, "status", "-p", "g").returncode == 0  # the original is fine
    assert invoke(home, "client", "issue", "-p", "g", "-n", "b2", "-u").returncode == 0
    assert invoke(home, "check", "-p", "g").returncode == 0
    # another CA at the named place is not the original: the copy is repointed
    other = tmp_path / "other"
    ca.init("g", other)
    shutil.copytree(home2, tmp_path / "home3", symlinks=True)
    (tmp_path / "home3" / "g" / "openssl.cnf").write_text(
        copy.cnf.read_text().replace(str(g.dir), str(other / "g"))
    )
    assert check.live_copy(Profile("g", tmp_path / "home3")) is None
    # the original lost: the copy is the profile (restore after loss)
    shutil.rmtree(home)
    done = invoke(home2, "client", "issue", "-p", "g", "-n", "c", "-u")
    assert done.returncode == 0, done.stderr
    assert check.misplaced_cnf(copy) is None
    assert [e.common_name for e in database.read(copy.index)] == ["b", "c"]
