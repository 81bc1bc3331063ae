"""The CLI's last line of defence: any OSError is one line with something to read."""

from __future__ import annotations

import errno

import pytest
import typer
from jinja2 import TemplateNotFound

from certwiz.cli.common import reports_errors


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/srv/x"),
         "certwiz: error: No space left on device: /srv/x"),
        # an OSError without strerror (jinja2) printed "certwiz: error: None: None"
        (TemplateNotFound("openssl.cnf.j2"), "certwiz: error: openssl.cnf.j2"),
    ],
)  # fmt: skip
def test_an_os_error_is_one_readable_line(
    exc: OSError, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @reports_errors
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 1
    assert capsys.readouterr().err.splitlines() == [line]


@pytest.mark.parametrize(
    "stderr",
    [
        "40F7:error:1C800064:Provider routines:ossl_cipher_unpadblock:bad decrypt",
        # OpenSSL 3 decodes a wrongly decrypted key as garbage as often as not (flaky in CI)
        "Could not read key from /x/private/ca.key: unsupported",
    ],
)
def test_a_wrong_passphrase_is_hinted_whatever_openssl_says(stderr: str) -> None:
    from certwiz import openssl

    assert openssl.explain(stderr).endswith("(is the passphrase right?)")
