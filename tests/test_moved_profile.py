"""A copied or moved profile works on itself, never on the directory it came from.

Issue 13 item 4: openssl.cnf names the profile's directory absolutely; after `cp -a` of a
home (a restored backup, a staging copy) `revoke` in the copy exited 0 while the
revocation landed in the original's index.txt, and `check` said consistent. Now the next
change re-renders the `dir =` line for where the profile is, and `check` reports it; while
the directory it names still holds the same CA (a copy beside its original, round 12 F5)
the copy is refused instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from certwiz import audit, ca, issue
from certwiz.profile import Profile
from certwiz.render import cnf_escape
from tests.conftest import crl_check, invoke, snapshot


def _copy(home: Path, to: Path) -> Profile:
    shutil.copytree(home, to, symlinks=True)  # cp -a
    return Profile("my-app", to)


def test_a_copy_revokes_and_issues_in_its_own_database(profile: Profile, tmp_path: Path) -> None:
    issue.issue_client(profile, "bot-01")
    original = snapshot(profile.home)
    copy = _copy(profile.home, tmp_path / "re$tored #1")  # escaped in openssl.cnf
    # beside its original it is a second live CA: refused (attack round 12, F5)
    done = invoke(copy.home, "revoke", "-p", "my-app", "-n", "bot-01")
    assert done.returncode == 4 and f"is a copy of {profile.dir}" in done.stderr, done.stderr
    assert snapshot(profile.home) == original  # the original is untouched
    kept = tmp_path / "original"
    shutil.move(profile.home, kept)  # the original lost (as far as the copy knows)
    done = invoke(copy.home, "revoke", "-p", "my-app", "-n", "bot-01")
    assert done.returncode == 0, done.stderr
    assert snapshot(kept) == original  # the original is untouched
    assert crl_check(copy.ca_cert, copy.crl, copy.cert_path("bot-01")).returncode != 0
    assert copy.index.read_text().startswith("R\t")
    assert f"dir = {cnf_escape(copy.dir)}\n" in copy.cnf.read_text()
    assert str(profile.dir) not in copy.cnf.read_text()  # nor in the comments
    record = audit.read(copy)[-1]
    assert any("openssl.cnf" in line for line in record["recovered"])  # type: ignore[union-attr]
    done = invoke(copy.home, "client", "issue", "-p", "my-app", "-n", "bot-02", "-u")
    assert done.returncode == 0, done.stderr
    assert snapshot(kept) == original


def test_check_reports_a_profile_whose_config_names_another_directory(
    profile: Profile, tmp_path: Path
) -> None:
    copy = _copy(profile.home, tmp_path / "staging")
    before = snapshot(copy.home)
    done = invoke(copy.home, "check", "-p", "my-app", "--json")
    assert done.returncode == 4, done.stderr
    text = json.dumps(json.loads(done.stdout))
    assert "openssl.cnf" in text and str(profile.dir) in text and str(copy.dir) in text
    assert snapshot(copy.home) == before  # check is read-only


def test_a_moved_home_keeps_hand_edits_to_its_config(profile: Profile, tmp_path: Path) -> None:
    with profile.cnf.open("a") as handle:
        handle.write("\n# kept: an operator's note\n")
    moved = tmp_path / "moved"
    shutil.move(profile.home, moved)
    after = Profile("my-app", moved)
    done = invoke(moved, "client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert done.returncode == 0, done.stderr
    text = after.cnf.read_text()
    assert "# kept: an operator's note\n" in text and f"dir = {after.dir}\n" in text
    assert invoke(moved, "check", "-p", "my-app").returncode == 0


def test_a_profile_reached_by_another_path_is_left_alone(profile: Profile, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(profile.home)
    cnf = profile.cnf.read_bytes()
    done = invoke(alias, "client", "issue", "-p", "my-app", "-n", "bot-01", "-u")
    assert done.returncode == 0, done.stderr
    assert profile.cnf.read_bytes() == cnf


def test_ca_init_renders_the_directory_it_names(home: Path) -> None:
    made = ca.init("x", home)
    assert f"dir = {made.dir}\n" in made.cnf.read_text()


def test_a_copied_two_level_profile_points_both_configs_at_itself(
    home: Path, tmp_path: Path
) -> None:
    """A verifier after the fix above: only the top openssl.cnf was re-rendered, so a copy
    of a two-level profile stayed refused ('the next change re-renders it') for ever."""
    assert invoke(home, "ca", "init", "-p", "two", "--intermediate").returncode == 0
    original = snapshot(home)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy, symlinks=True)
    kept = tmp_path / "kept"
    shutil.move(home, kept)  # the original gone (beside it, the copy is refused: F5)
    for args in (("client", "issue", "-p", "two", "-n", "bot", "-u"), ("crl", "gen", "-p", "two")):
        done = invoke(copy, *args)
        assert done.returncode == 0, done.stderr
    assert (
        f"dir = {cnf_escape(copy / 'two' / 'root')}\n"
        in (copy / "two" / "root" / "openssl.cnf").read_text()
    )
    assert invoke(copy, "check", "-p", "two").returncode == 0
    assert snapshot(kept) == original
