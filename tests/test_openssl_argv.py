"""What certwiz puts on its children's command lines.

The builder's output is checked with pytest-subprocess (openssl faked); then every
child certwiz really starts during the secret-bearing commands is captured through
Python's audit hooks (subprocess.Popen, os.exec*, os.posix_spawn, os.system): its real
argv and environment must hold no secret. How a failure is reported, too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from certwiz import openssl, revoke
from certwiz.cli import app
from certwiz.errors import CertwizError, OpenSSLError
from certwiz.openssl import Secret
from tests.conftest import invoke

SECRET = "hunter2-correct-horse"
FAILED_CA = (
    "Using configuration from /x/openssl.cnf\n"
    "Could not read CA private key from /x/private/ca.key\n"
    "40E7C8F5C27F0000:error:1C800064:Provider routines:ossl_cipher_unpadblock:bad decrypt:"
    "../providers/implementations/ciphers/ciphercommon_block.c:124:\n"
)


def _writes_out(process) -> None:
    """Play openssl: create the -out file the caller expects (a whole CRL: certwiz
    refuses to install a cut-short one)."""
    argv = [str(a) for a in process.args]
    if "-out" in argv:
        crl = Path(argv[argv.index("-config") + 1]).with_name("crl.pem")
        Path(argv[argv.index("-out") + 1]).write_bytes(crl.read_bytes())


def argvs(fp) -> list[list[str]]:
    """The `openssl ca` calls (the consistency check's `openssl verify` aside)."""
    return [[str(a) for a in call] for call in fp.calls if str(call[1]) == "ca"]


def test_passphrases_travel_as_fd_never_as_text(profile, fp) -> None:
    fp.register([fp.any()], callback=_writes_out, occurrences=5)
    revoke.generate_crl(profile, days=7, ca_passphrase=Secret(SECRET))
    (argv,) = argvs(fp)
    assert argv[0].endswith("openssl")
    assert argv[1:5] == ["ca", "-gencrl", "-batch", "-config"]
    assert argv[argv.index("-crldays") + 1] == "7"
    assert re.fullmatch(r"fd:\d+", argv[argv.index("-passin") + 1])
    assert not any(SECRET in arg for arg in argv)
    assert not any(arg.startswith(("pass:", "env:")) for arg in argv)


def test_each_secret_gets_its_own_pipe_with_the_text_behind_it() -> None:
    fds: list[int] = []
    try:
        argv = openssl.build_argv(
            ["pkcs12", "-passin", Secret("one-1"), "-passout", Secret("two-2")], fds
        )
        assert argv[1:] == ["pkcs12", "-passin", f"fd:{fds[0]}", "-passout", f"fd:{fds[1]}"]

        assert os.read(fds[0], 100) == b"one-1\n"
        assert os.read(fds[1], 100) == b"two-2\n"
    finally:
        for fd in fds:
            os.close(fd)


def test_secret_repr_hides_the_text() -> None:
    assert SECRET not in repr(Secret(SECRET))
    assert SECRET not in str([Secret(SECRET)])


def test_openssl_failure_becomes_one_clear_error(fp) -> None:
    fp.register([fp.any()], returncode=1, stderr=FAILED_CA)
    with pytest.raises(OpenSSLError) as raised:
        openssl.run(["ca", "-gencrl"])
    message = str(raised.value)
    assert message.startswith("openssl ca failed: Could not read CA private key")
    assert "bad decrypt" in message and "passphrase" in message
    assert "\n" not in message
    assert raised.value.returncode == 1


def test_cli_reports_openssl_failure_in_one_line_exit_1(profile, fp) -> None:
    fp.register([fp.any(), "verify", fp.any()])  # the consistency check before the change
    fp.register([fp.any(), "ca", fp.any()], returncode=1, stderr=FAILED_CA)
    result = CliRunner().invoke(app, ["crl", "gen", "-p", "my-app"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certwiz: error: openssl ca failed:")


def test_missing_openssl_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTWIZ_OPENSSL", "/nonexistent/openssl")
    with pytest.raises(CertwizError) as raised:
        openssl.run(["version"])
    assert type(raised.value) is CertwizError  # not an OSError or a traceback's cause
    assert str(raised.value) == (
        "openssl not found ('/nonexistent/openssl'); install it, e.g. apt-get install openssl"
    )
    assert raised.value.exit_code == 1


# ---- every real child: argv and environment ------------------------------------------

_CAPTURED: list[tuple[str, list[str], dict[str, str]]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record each process this interpreter starts, as the kernel will get it."""
    if _CAPTURED is None:
        return
    if event == "subprocess.Popen":  # (executable, args, cwd, env)
        argv, env = args[1], args[3]
    elif event in ("os.exec", "os.posix_spawn"):  # (path, argv, env)
        argv, env = args[1], args[2]
    elif event == "os.system":
        argv, env = [args[0]], None
    else:
        return
    words = [os.fsdecode(a) for a in ([argv] if isinstance(argv, str | bytes) else argv)]
    given = dict(os.environ) if env is None else {os.fsdecode(k): os.fsdecode(v)
                                                   for k, v in env.items()}  # fmt: skip
    _CAPTURED.append((event, words, given))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only inside `children()`


@contextmanager
def children() -> Iterator[list[tuple[str, list[str], dict[str, str]]]]:
    global _CAPTURED
    _CAPTURED = found = []
    try:
        yield found
    finally:
        _CAPTURED = None


CA_SECRET, P12_SECRET = "ca-Pass-7731", "p12-Pass-2209"


def test_no_secret_in_any_real_childs_argv_or_environment(home: Path, tmp_path: Path) -> None:
    """The commands that handle secrets, run for real (in process, so every child is
    seen): passphrases from files and from the environment. No child's argv or
    environment holds one; each -pass/-passin/-passout is an fd:N."""
    ca_file, p12_file = tmp_path / "ca.pass", tmp_path / "p12.pass"
    ca_file.write_text(CA_SECRET + "\n")
    ca_file.chmod(0o600)  # a secret file: only ours
    p12_file.write_text(P12_SECRET + "\n")
    p12_file.chmod(0o600)  # a secret file: only ours
    ca, p12 = ["--ca-passphrase-file", str(ca_file)], ["--p12-passphrase-file", str(p12_file)]
    from_env = {"CERTWIZ_CA_PASSPHRASE": CA_SECRET, "CERTWIZ_P12_PASSPHRASE": P12_SECRET,
                "CERTWIZ_KEY_PASSPHRASE": P12_SECRET}  # fmt: skip
    steps: list[tuple[list[str], dict[str, str]]] = [
        (["ca", "init", "-p", "vault", *ca], {}),
        (["server", "issue", "-p", "vault", "-n", "www.example.com", *ca], {}),
        (["client", "issue", "-p", "vault", "-n", "alice", *ca, *p12], {}),
        (["client", "issue", "-p", "vault", "-n", "bob", "--p12-format", "modern"], from_env),
        (["client", "rebundle", "-p", "vault", "-n", "alice", *p12], {}),
        (["p12", "inspect", str(home / "vault/private/alice.p12"), *p12], {}),
        (
            [
                "export",
                "-p",
                "vault",
                "-n",
                "bob",
                "--format",
                "p12",
                "--out",
                str(tmp_path / "bob.p12"),
            ],
            from_env,
        ),
        (["client", "renew", "-p", "vault", "-n", "bob"], from_env),
        (["revoke", "-p", "vault", "-n", "alice", *ca], {}),
        (["crl", "gen", "-p", "vault"], from_env),
    ]
    with children() as seen:
        for argv, env in steps:
            result = invoke(home, *argv, env=env)
            assert result.returncode == 0, (argv, result.stderr)
    assert len(seen) >= 20  # the commands did start their children
    piped = 0
    for event, argv, env in seen:
        for secret in (CA_SECRET, P12_SECRET):
            assert not any(secret in word for word in argv), (event, argv)
            assert not any(secret in f"{k}={v}" for k, v in env.items()), (event, argv)
        for flag in ("-pass", "-passin", "-passout"):
            if flag in argv:
                assert re.fullmatch(r"fd:\d+", argv[argv.index(flag) + 1]), argv
                piped += 1
    assert piped >= 10  # the secrets did travel, through pipes
