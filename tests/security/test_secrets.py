"""Secrets never reach a command line or a child's environment; keys are born 0600.

Three witnesses: a logging wrapper installed as $CERTWIZ_OPENSSL records the
argv, umask, environment and output directory modes of every openssl run
(deterministic); a thread samples /proc/*/cmdline and /proc/*/environ while
the real CLI runs (what `ps` would show another user); and pytest-subprocess
captures the argv certwiz builds without running anything.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import issue, openssl, openssl_args, p12
from certwiz.openssl import Secret
from certwiz.profile import Profile
from tests.conftest import load_cert, run_certwiz

CA_SECRET = "ca-Secret-4827"
P12_SECRET = "p12-Secret-9913"
ENV_SECRET = "env-Secret-5571"
SECRETS = (CA_SECRET, P12_SECRET, ENV_SECRET)

WRAPPER = """#!/bin/sh
# Records how certwiz runs openssl, then runs it.
{{
  echo "=== umask $(umask)"
  for arg in "$@"; do echo "arg $arg"; done
  prev=
  for arg in "$@"; do
    case "$prev" in -out|-keyout) echo "outdir $prev $(stat -c %a "$(dirname "$arg")")";; esac
    prev=$arg
  done
  env | sed 's/^/env /'
}} >> "{log}"
exec "{real}" "$@"
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class ProcSampler(threading.Thread):
    """Reads every process's cmdline and environ as fast as it can until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.cmdlines: set[bytes] = set()
        self.openssl_environs: set[bytes] = set()

    def run(self) -> None:
        me = str(os.getpid())
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"certwiz" in cmdline or b"openssl" in cmdline:
                        self.cmdlines.add(cmdline)
                    if cmdline.split(b"\0")[0].endswith(b"openssl"):
                        self.openssl_environs.add(Path(f"/proc/{pid}/environ").read_bytes())
                except OSError:
                    continue


@pytest.fixture
def secret_files(tmp_path: Path) -> dict[str, Path]:
    files = {"ca": tmp_path / "ca.pass", "p12": tmp_path / "p12.pass"}
    files["ca"].write_text(CA_SECRET + "\n")
    files["ca"].chmod(0o600)  # a secret file: only ours
    files["p12"].write_text(P12_SECRET + "\n")
    files["p12"].chmod(0o600)  # a secret file: only ours
    return files


def every_secret_command(home: Path, files: dict[str, Path], env: dict[str, str]) -> None:
    """init (encrypted CA), server issue, client issue with p12 password, revoke, crl gen."""
    ca_file = ["--ca-passphrase-file", str(files["ca"])]
    steps = [
        ["ca", "init", "-p", "vault", *ca_file],
        ["server", "issue", "-p", "vault", "-n", "www.example.com", *ca_file],
        [
            "client",
            "issue",
            "-p",
            "vault",
            "-n",
            "alice",
            *ca_file,
            "--p12-passphrase-file",
            str(files["p12"]),
        ],
        ["client", "issue", "-p", "vault", "-n", "bob", "--p12-format", "modern", *ca_file],
        ["revoke", "-p", "vault", "-n", "alice", *ca_file],
        ["crl", "gen", "-p", "vault"],  # the CA passphrase from the environment this time
    ]
    for argv in steps:
        extra = dict(env)
        if argv[0] == "crl" or argv[-1] == "modern":
            extra["CERTWIZ_CA_PASSPHRASE"] = CA_SECRET
        if "bob" in argv:
            extra["CERTWIZ_P12_PASSPHRASE"] = ENV_SECRET
        result = run_certwiz(home, *argv, env=extra)
        assert result.returncode == 0, (argv, result.stderr)
        for secret in SECRETS:
            assert secret not in result.stdout + result.stderr


def test_wrapper_sees_no_secret_and_umask_077(
    home: Path, tmp_path: Path, secret_files: dict[str, Path]
) -> None:
    log = tmp_path / "openssl.log"
    wrapper = tmp_path / "openssl-wrapper"
    wrapper.write_text(WRAPPER.format(log=log, real=shutil.which("openssl")))
    wrapper.chmod(0o755)
    every_secret_command(home, secret_files, {"CERTWIZ_OPENSSL": str(wrapper)})

    runs = log.read_text().split("=== ")[1:]
    assert len(runs) >= 15
    passing = keys_made = 0
    for record in runs:
        lines = record.splitlines()
        assert lines[0] == "umask 0077", lines[0]  # every file openssl creates is 0600
        for secret in SECRETS:
            assert secret not in record
        args = [line[4:] for line in lines if line.startswith("arg ")]
        for flag in ("-passin", "-passout", "-pass"):
            if flag in args:
                assert args[args.index(flag) + 1].startswith("fd:"), args
                passing += 1
        assert not [x for x in lines if x.startswith("env CERTWIZ_") and "PASSPHRASE" in x]
        for flag in ("-out", "-keyout"):  # a key and its CSR may come from one `openssl req`
            out = args[args.index(flag) + 1] if flag in args else ""
            if out.endswith((".key", "key.pem", ".p12")):
                dirs = [line for line in lines if line.startswith(f"outdir {flag} ")]
                assert dirs == [f"outdir {flag} 700"], (args, dirs)  # made in a 0700 directory
                keys_made += 1
    assert passing >= 10  # the secrets did travel, through pipes
    assert keys_made == 6  # CA key, 3 leaf keys, 2 bundles: each checked

    profile = Profile("vault", home)
    assert mode(profile.private) == 0o700
    for path in profile.private.iterdir():
        assert mode(path) == 0o600, path
    key_bytes = profile.ca_key.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_bytes
    for path in home.rglob("*"):  # the CA key lives in exactly one file
        if path.is_file() and path != profile.ca_key:
            assert key_bytes not in path.read_bytes()
            assert b"PRIVATE KEY" not in path.read_bytes() or path.parent == profile.private
    assert not list(home.rglob(".certwiz-*"))
    bundle = pkcs12.load_key_and_certificates(
        profile.p12_path("bob").read_bytes(), ENV_SECRET.encode()
    )
    assert bundle[1] is not None and bundle[1] == load_cert(profile.cert_path("bob"))


def test_proc_sampling_sees_no_secret(home: Path, secret_files: dict[str, Path]) -> None:
    sampler = ProcSampler()
    sampler.start()
    try:
        every_secret_command(home, secret_files, {})
    finally:
        sampler.stop.set()
        sampler.join()
    assert any(b"certwiz" in c for c in sampler.cmdlines)  # the sampler did see certwiz
    for blob in sampler.cmdlines:
        for secret in SECRETS:
            assert secret.encode() not in blob, blob
    for blob in sampler.openssl_environs:  # openssl children: not even in the environment
        for secret in SECRETS:
            assert secret.encode() not in blob


def test_openssl_children_get_no_passphrase_in_environment(
    profile: Profile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CERTWIZ_CA_PASSPHRASE", ENV_SECRET)
    monkeypatch.setenv("CERTWIZ_P12_PASSPHRASE", ENV_SECRET)
    script = tmp_path / "env.sh"
    script.write_text(f'#!/bin/sh\nenv > "{tmp_path}/env.txt"\nexec openssl "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("CERTWIZ_OPENSSL", str(script))
    openssl.run(["version"])
    seen = (tmp_path / "env.txt").read_text()
    assert ENV_SECRET not in seen
    assert "CERTWIZ_OPENSSL=" in seen  # the environment was passed, minus the secrets


FAKE_NGINX = """#!/bin/sh
# Stands in for nginx: records each run's argv and environment, then succeeds.
{{ echo "=== $*"; env; }} >> "{log}"
"""


@pytest.mark.parametrize("command", ["revoke", "crl"])
def test_nginx_children_get_no_passphrase_in_environment(
    home: Path, tmp_path: Path, secret_files: dict[str, Path], command: str
) -> None:
    """--reload runs `nginx -t` and `nginx -s reload`: they get no CERTWIZ_*PASSPHRASE."""
    ca_file = ["--ca-passphrase-file", str(secret_files["ca"])]
    for argv in (
        ["ca", "init", "-p", "vault", *ca_file],
        ["client", "issue", "-p", "vault", "-n", "alice", "-u", *ca_file],
    ):
        assert run_certwiz(home, *argv).returncode == 0, argv
    log = tmp_path / "nginx.log"
    fake = tmp_path / "fake nginx"
    fake.write_text(FAKE_NGINX.format(log=log))
    fake.chmod(0o755)
    argv = ["revoke", "-p", "vault", "-n", "alice"] if command == "revoke" else ["crl", "gen"]
    if command == "crl":
        argv += ["-p", "vault"]
    env = {"CERTWIZ_CA_PASSPHRASE": CA_SECRET, "CERTWIZ_P12_PASSPHRASE": ENV_SECRET}
    result = run_certwiz(
        home, *argv, "--reload", "--nginx-cmd", shlex.join([str(fake), "-c", "x.conf"]), env=env
    )
    assert result.returncode == 0, result.stderr
    runs = log.read_text().split("=== ")[1:]
    assert [run.splitlines()[0] for run in runs] == ["-c x.conf -V -T", "-c x.conf -s reload"]
    for run in runs:
        for secret in SECRETS:
            assert secret not in run
        assert not [x for x in run.splitlines() if x.startswith("CERTWIZ_") and "PASSPHRASE" in x]
        assert f"CERTWIZ_HOME={home}" in run  # the environment was passed, minus the secrets


def test_built_argv_holds_fd_not_secret(profile: Profile, fp, tmp_path: Path) -> None:
    """pytest-subprocess: the exact argv certwiz hands to Popen, for each secret path."""
    fp.register([fp.any()], occurrences=10)
    secret = Secret(CA_SECRET)
    openssl.run(openssl_args.keygen("ec:P-256", tmp_path / "k.pem", secret))
    openssl.run(openssl_args.gencrl(profile.cnf, tmp_path / "crl.pem", secret))
    files = {"key": tmp_path / "k.pem", "cert": tmp_path / "c.pem", "chain": profile.ca_cert}
    p12.export(**files, name="bob", out=tmp_path / "b.p12", password=Secret(P12_SECRET),
               key_passphrase=Secret(P12_SECRET))  # fmt: skip
    p12.export(**files, name="bot", out=tmp_path / "b.p12")
    assert len(fp.calls) == 4
    for call in fp.calls:
        argv = [str(a) for a in call]
        for value in SECRETS:
            assert not any(value in a for a in argv)
        for flag in ("-pass", "-passin", "-passout"):
            if flag in argv:
                assert argv[argv.index(flag) + 1].startswith("fd:")
    assert "-passin" in [str(a) for a in fp.calls[1]]


def test_secret_repr_does_not_leak() -> None:
    assert CA_SECRET not in repr(Secret(CA_SECRET))
    assert CA_SECRET not in str([Secret(CA_SECRET)])


def test_revoke_purge_deletes_key_and_bundle(cli, profile: Profile) -> None:
    issue.issue_client(profile, "alice")
    issue.issue_client(profile, "carol")
    result = cli("revoke", "-p", "my-app", "-n", "alice", "--purge", "--json")
    assert result.returncode == 0, result.stderr
    purged = json.loads(result.stdout)["purged"]
    assert sorted(purged) == sorted(
        [str(profile.key_path("alice")), str(profile.p12_path("alice"))]
    )
    assert not profile.key_path("alice").exists() and not profile.p12_path("alice").exists()
    assert profile.cert_path("alice").exists()  # public material stays for the record
    text = cli("revoke", "-p", "my-app", "-n", "carol", "--purge")
    assert f"Deleted {profile.key_path('carol')}" in text.stdout
    audit = [json.loads(x) for x in (profile.dir / "audit.log").read_text().splitlines()]
    assert audit[-1]["purged"] == [str(profile.key_path("carol")), str(profile.p12_path("carol"))]


def test_revoke_without_purge_keeps_the_key(cli, profile: Profile) -> None:
    issue.issue_client(profile, "dave")
    result = cli("revoke", "-p", "my-app", "-n", "dave", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["purged"] == []
    assert profile.key_path("dave").exists()


def test_sampler_reads_proc() -> None:
    """The /proc witness works here: it sees a child's argv (else the test above proves nothing)."""
    sampler = ProcSampler()
    sampler.start()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(0.5)", "certwiz-marker"]
    )
    child.wait()
    sampler.stop.set()
    sampler.join()
    assert any(b"certwiz-marker" in c for c in sampler.cmdlines)
