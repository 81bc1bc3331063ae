"""The Makefile's certificate targets, run by the real `make`: every variable is one argument.

A value goes to certwiz exactly as typed, whatever it holds (issue 13, item 6): no shell
runs it, no space splits it, no `$` is expanded by make or by the shell.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from certwiz import database
from certwiz.profile import Profile
from tests.conftest import REPO, clean_env, in_ci, load_cert

pytestmark = pytest.mark.skipif(shutil.which("make") is None and not in_ci(), reason="no make")


@pytest.fixture
def make(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`make TARGET VAR=...` in the repository, with a stand-in venv and a hostile home path."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    certwiz = venv / "bin" / "certwiz"
    certwiz.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m certwiz "$@"\n')
    certwiz.chmod(0o755)
    (venv / "bin" / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    home = tmp_path / "home $HOME 'q'"
    env = clean_env(drop=("MAKE",))

    def run(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["make", "-f", str(REPO / "Makefile"), *args, f"VENV={venv}"]
        return subprocess.run(  # in tmp_path: a command that ran would leave files there
            [*argv, f"CERTWIZ_HOME={home}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env | (environ or {}),
            timeout=120,
        )

    run.home = home  # type: ignore[attr-defined]
    return run


def _names(home: Path, profile: str) -> list[str]:
    return [e.common_name or "" for e in database.read(Profile(profile, home).index)]


def test_each_variable_is_one_argument(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    profile = "p-1"
    done = make("ca", f"PROFILE={profile}")
    assert done.returncode == 0, done.stderr
    hostile = [
        "bot;touch ran;:",
        "Zoë Müller",
        'O\'Brien "q" `id`',
        "x$dir $(PROFILE) ${NAME}",
        "a  b",
    ]
    for name in hostile:
        done = make("client", f"PROFILE={profile}", f"NAME={name}", "UNENCRYPTED=1", "DAYS=30")
        assert done.returncode == 0, (name, done.stderr)
        cert = load_cert(make.home / profile / "issued" / f"{name}.crt")
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [c.value for c in cns] == [name]
    assert not marker.exists()
    assert _names(make.home, profile) == hostile

    # 'x -n victim' is one name: it does not revoke victim.
    assert make("client", f"PROFILE={profile}", "NAME=victim", "UNENCRYPTED=1").returncode == 0
    done = make("revoke", f"PROFILE={profile}", "NAME=x -n victim")
    assert done.returncode == 2, done.stderr
    assert "x -n victim has no valid certificate" in done.stderr
    entries = database.read(Profile(profile, make.home).index)
    assert [e.flag for e in entries] == ["V"] * len(entries)
    done = make("revoke", f"PROFILE={profile}", "NAME=Zoë Müller")
    assert done.returncode == 0, done.stderr
    flags = {e.common_name: e.flag for e in database.read(Profile(profile, make.home).index)}
    assert flags["Zoë Müller"] == "R" and flags["victim"] == "V"


def test_days_and_profile_are_one_argument_too(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    done = make("ca", "PROFILE=p;touch ran")
    assert done.returncode == 2 and "profile:" in done.stderr
    assert make("ca", "PROFILE=q").returncode == 0
    done = make("server", "PROFILE=q", "NAME=a.example", "DAYS=30 -d 9000;touch ran")
    assert done.returncode == 2 and "days:" in done.stderr
    assert not marker.exists()
    assert not (make.home / "q" / "issued" / "a.example.crt").exists()


def _bundle_password_is_empty(home: Path, profile: str, name: str) -> bool:
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = (home / profile / "private" / f"{name}.p12").read_bytes()
    try:
        pkcs12.load_pkcs12(data, b"")
    except ValueError:
        return False
    return True


def test_unencrypted_means_yes_only_when_it_says_so(make) -> None:  # type: ignore[no-untyped-def]
    """UNENCRYPTED=0 (or no, false) added -u: `$(if $(UNENCRYPTED),-u)` took any text as
    yes (attack round 10, F14). Now 1/yes/true give -u, 0/no/false/empty do not (and
    without a password certwiz then stops naming -u), anything else stops make."""
    assert make("ca", "PROFILE=p").returncode == 0
    for i, value in enumerate(["1", "yes", "true"]):
        done = make("client", "PROFILE=p", f"NAME=u{i}", f"UNENCRYPTED={value}")
        assert done.returncode == 0, (value, done.stderr)
        assert _bundle_password_is_empty(make.home, "p", f"u{i}")
    for i, value in enumerate(["0", "no", "false", ""]):
        done = make("client", "PROFILE=p", f"NAME=e{i}", f"UNENCRYPTED={value}")
        assert done.returncode != 0 and "-u" in done.stderr, (value, done.stderr)
        assert not (make.home / "p" / "private" / f"e{i}.p12").exists()
    for value in ["maybe", "YES", "1 1", "-u", "0 -u"]:
        done = make("client", "PROFILE=p", "NAME=bad", f"UNENCRYPTED={value}")
        assert done.returncode == 2, (value, done.stderr)
        assert "UNENCRYPTED must be 1, yes or true" in done.stderr
        assert f"not '{value}'" in done.stderr
    assert _names(make.home, "p") == ["u0", "u1", "u2"]


def test_certificate_variables_come_from_the_command_line_only(make) -> None:  # type: ignore[no-untyped-def]
    """`NAME=myhost make revoke PROFILE=p` revoked myhost (WSL sets NAME for every shell):
    a target stops when PROFILE, NAME, DAYS or UNENCRYPTED come from the environment, and
    a target that does not use them (list) still runs; given on the command line, the
    command line wins as before."""
    assert make("ca", "PROFILE=p").returncode == 0
    assert make("client", "PROFILE=p", "NAME=myhost", "UNENCRYPTED=1").returncode == 0
    refused = [
        (("revoke", "PROFILE=p"), {"NAME": "myhost"}),
        (("list",), {"PROFILE": "p"}),
        (("server", "PROFILE=p", "NAME=a.example"), {"DAYS": "30"}),
        (("client", "PROFILE=p", "NAME=other"), {"UNENCRYPTED": "1"}),
    ]
    for args, environ in refused:
        done = make(*args, environ=environ)
        (var,) = environ
        assert done.returncode == 2, (args, done.stderr)
        assert f"{var} is set in the environment, not on the command line" in done.stderr
    entries = database.read(Profile("p", make.home).index)
    assert [(e.common_name, e.flag) for e in entries] == [("myhost", "V")]
    assert make("list", "PROFILE=p", environ={"NAME": "myhost"}).returncode == 0
    done = make("revoke", "PROFILE=p", "NAME=myhost", environ={"NAME": "other"})
    assert done.returncode == 0, done.stderr
    assert [e.flag for e in database.read(Profile("p", make.home).index)] == ["R"]


@pytest.fixture
def tree(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A copy of the repository's Makefile in a tree of its own (ROOT is where the Makefile
    is: `clean` there must not remove this checkout's .venv), with a stand-in venv whose
    python writes its arguments to ROOT/args, and `make ...` run there by the real make."""
    root = tmp_path / "tree"
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", root / "Makefile")
    for name in ("pyproject.toml", "constraints.txt"):
        (root / name).touch()
    (root / ".venv" / "bin" / ".installed").touch()  # newer: `make venv` has nothing to do
    python = root / ".venv" / "bin" / "python"
    python.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{root}/args'\n")
    python.chmod(0o755)

    def run(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-f", str(root / "Makefile"), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=clean_env(drop=("MAKE",)) | environ,
            timeout=120,
        )

    run.root = root  # type: ignore[attr-defined]
    return run


def _stand_in(path: Path, marker: Path) -> str:
    """An executable at PATH that only leaves MARKER (and fails): did make run it?"""
    path.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_clean_removes_the_trees_venv_and_nothing_named_elsewhere(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`VENV=/tmp/victim make clean` rm -rf'd /tmp/victim (attack round 11, F6): VENV from
    the environment is ignored, and clean removes ROOT/.venv only, whatever VENV says on
    the command line; CERTWIZ_HOME (legitimate in the environment, for certwiz) neither."""
    kept = [tmp_path / "victim", tmp_path / "other venv", tmp_path / "home"]
    for directory in kept:
        (directory / "bin").mkdir(parents=True)
        (directory / "bin" / "keep").touch()
    environ = {"VENV": str(kept[0]), "CERTWIZ_HOME": str(kept[2])}
    done = tree("clean", environ=environ)
    assert done.returncode == 0, done.stderr
    assert not (tree.root / ".venv").exists()
    (tree.root / ".venv").mkdir()
    done = tree("clean", f"VENV={kept[1]}", f"CERTWIZ_HOME={kept[2]}", environ=environ)
    assert done.returncode == 0, done.stderr
    assert not (tree.root / ".venv").exists()
    assert all((directory / "bin" / "keep").exists() for directory in kept)


def test_what_a_recipe_runs_comes_from_the_command_line_only(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PYTHON and VENV (whose bin/ make runs) and BENCH_ARGS (passed on word by word, each
    word one argument) from the environment are ignored; on the command line they count."""
    marker, venv = tmp_path / "ran", tmp_path / "their venv"
    python = _stand_in(tmp_path / "their python", marker)
    environ = {"PYTHON": python, "VENV": str(venv), "BENCH_ARGS": "--runs 1;touch ran"}
    done = tree("venv", environ=environ)
    assert done.returncode == 0, done.stderr  # the tree's venv is up to date: nothing ran
    done = tree("bench", environ=environ)
    assert done.returncode == 0, done.stderr
    assert (tree.root / "args").read_text().splitlines() == ["bench/run.py"]
    assert not marker.exists() and not venv.exists()

    hostile = "--runs 7 $(PYTHON) --x;touch ran 'q'"
    done = tree("bench", f"BENCH_ARGS={hostile}", environ=environ)
    assert done.returncode == 0, done.stderr
    assert (tree.root / "args").read_text().splitlines() == ["bench/run.py", *hostile.split()]
    assert not marker.exists()
    done = tree("venv", f"VENV={venv}", f"PYTHON={python}", environ={})
    assert done.returncode != 0 and marker.exists()  # given on the command line: it ran
