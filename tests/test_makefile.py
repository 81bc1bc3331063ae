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

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = ["make", "-f", str(REPO / "Makefile"), *args, f"VENV={venv}"]
        return subprocess.run(  # in tmp_path: a command that ran would leave files there
            [*argv, f"CERTWIZ_HOME={home}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
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
