"""The four numbered shims, run exactly as the seed writes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from tests.conftest import REPO, clean_env, load_cert, load_crl


def test_four_steps_through_the_shims(tmp_path: Path) -> None:
    # A copy of the scripts outside the repository, with certwiz found on PATH:
    # the shims must run from anywhere, with no logic of their own.
    work = tmp_path / "project"
    shutil.copytree(REPO / "scripts", work / "scripts")
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    def step(*argv: str) -> None:
        proc = subprocess.run(list(argv), cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    step("scripts/1_gen_ca.sh", "-p", "my-app")
    step("scripts/2_gen_server_cert.sh", "-p", "my-app", "-n", "myserver.local", "-d", "365")
    step("scripts/3_gen_client_cert.sh", "-p", "my-app", "-n", "bot-01", "-u")
    step("scripts/4_revoke_client.sh", "-p", "my-app", "-n", "bot-01")

    d = work / "certs" / "my-app"  # the default home is ./certs
    server = load_cert(d / "issued" / "myserver.local.crt")
    eku = server.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bundle = pkcs12.load_pkcs12((d / "private" / "bot-01.p12").read_bytes(), None)
    assert bundle.key is not None
    client = load_cert(d / "issued" / "bot-01.crt")
    assert [e.serial_number for e in load_crl(d / "crl.pem")] == [client.serial_number]


def test_shims_hold_no_logic() -> None:
    for script in sorted((REPO / "scripts").glob("[0-9]_*.sh")):
        code = [
            line
            for line in script.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(code) <= 4, script.name
        assert code[-1].startswith('exec "$certwiz" '), script.name


def stub(path: Path, says: str, code: int = 0) -> None:
    """An executable at PATH that prints SAYS, its working directory and its arguments,
    and exits with CODE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{says} $PWD $*"\nexit {code}\n')
    path.chmod(0o755)


def hostile(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A repository copy REPO and a directory EVIL that a CDPATH names: EVIL holds a
    scripts/ and examples/ of its own, a planted .venv certwiz and a step script; PATH
    holds a planted certwiz too (attack round 13, F4)."""
    repo, evil, bin_dir = tmp_path / "repo", tmp_path / "evil", tmp_path / "bin"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    (repo / "examples").mkdir()
    shutil.copy2(REPO / "examples" / "demo.sh", repo / "examples" / "demo.sh")
    stub(repo / ".venv" / "bin" / "certwiz", "repo-venv")
    stub(repo / "scripts" / "1_gen_ca.sh", "repo-step", 1)  # the demo stops at this probe
    (evil / "examples").mkdir(parents=True)
    stub(evil / ".venv" / "bin" / "certwiz", "planted-venv")
    stub(evil / "scripts" / "1_gen_ca.sh", "planted-step", 1)
    stub(bin_dir / "certwiz", "path-certwiz")
    env = clean_env(tmp_path / "certs")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return repo, evil, env


def test_a_hostile_cdpath_moves_neither_the_shims_nor_the_demo(tmp_path: Path) -> None:
    """With CDPATH naming another directory that has a scripts/ (or `.` first, where
    bash's cd prints the directory it found), the shims' relative cd went there: the
    captured directory had two lines, the repository's venv was not found and PATH's (or
    the planted venv's) certwiz ran; demo.sh ran that directory's steps and rm -rf'd its
    demo/run. Real bash; the demo stops at its first step (a probe), nothing else runs."""
    repo, evil, env = hostile(tmp_path)
    for cdpath in (str(evil), f".:{evil}"):
        env["CDPATH"] = cdpath

        def run(*argv: str) -> str:
            argv = ("bash", *argv)
            return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True).stdout

        said = run("scripts/4_revoke_client.sh", "-p", "a", "-n", "bot1")
        assert said == f"repo-venv {repo} revoke -p a -n bot1\n", (cdpath, said)
        (evil / "demo" / "run").mkdir(parents=True, exist_ok=True)
        said = run("examples/demo.sh")
        assert said.splitlines()[-1] == f"repo-step {repo} -p demo", (cdpath, said)
        assert (evil / "demo" / "run").is_dir()  # the demo's rm -rf stayed in the repository


def test_every_relative_cd_of_a_script_ignores_cdpath() -> None:
    """.ci/run (apt-get, not run here) and any later script: a `cd` to a relative or
    computed directory is written `CDPATH= cd -- DIR >/dev/null` (the Makefile's cd to
    the absolute $(ROOT) never consults CDPATH)."""
    scripts = [REPO / ".ci" / "run", *REPO.glob("scripts/*.sh"), *REPO.glob("examples/**/*.sh")]
    for script in scripts:
        for line in script.read_text().splitlines():
            words = line.replace("$(", " ").replace("&&", " ").split()
            if "cd" in words and not line.lstrip().startswith("#"):
                assert "CDPATH= cd -- " in line and ">/dev/null" in line, (script, line)
    assert all(
        line.split("&&")[0].strip().startswith("cd $(call arg,$(ROOT))")
        for line in (REPO / "Makefile").read_text().splitlines()
        if line.startswith("\tcd ")
    )
