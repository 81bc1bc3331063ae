"""What certwiz puts on openssl's command line (pytest-subprocess; openssl is faked here).

These tests are about the command line only: the argv built, that no secret is
ever in it, and how a failure is reported. Everything else runs the real openssl.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certwiz import openssl, revoke
from certwiz.cli import app
from certwiz.errors import OpenSSLError
from certwiz.openssl import Secret

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
    with pytest.raises(Exception, match="openssl not found"):
        openssl.run(["version"])
