"""The last outside attack round of issue 13: each reproduction exits 2 with one line now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import snapshot


@pytest.fixture
def made(cli) -> None:
    assert cli("ca", "init", "-p", "a").returncode == 0
    assert cli("server", "issue", "-p", "a", "-n", "web.local").returncode == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["ca", "set", "-p", "a", "--ocsp-url", "http://[::1/"], "ocsp-url"),
        (["ca", "set", "-p", "a", "--crl-url", "http://[::1/"], "crl-url"),
        (["ca", "set", "-p", "a", "--ocsp-url", "http://[zz]/"], "ocsp-url"),
        (["ca", "set", "-p", "a", "--crl-url", "http://[::1]:0/"], "crl-url"),
        (["ca", "init", "-p", "v6", "--ocsp-url", "http://[::1/"], "ocsp-url"),
        (
            [
                "nginx",
                "render",
                "-p",
                "a",
                "--server",
                "web.local",
                "--upstream",
                "http://[::1/",
                "--out",
                "{out}",
            ],
            "upstream",
        ),
        (["doctor", "-p", "a", "--nginx-conf", "/dev/zero"], "nginx-conf"),
        (["client", "issue", "-p", "a", "-n", "bo\u0300t", "-u"], "name"),  # NFD of bòt
        (["client", "issue", "-p", "a", "-n", "A\u030a", "-u"], "name"),
        (
            [
                "client",
                "issue",
                "-p",
                "a",
                "-n",
                "\uff43\uff45\uff52\uff54\uff57\uff49\uff5a-x",
                "-u",
            ],
            "name",
        ),
    ],
)
def test_last_round_is_refused_with_one_line(
    cli, made, home: Path, tmp_path: Path, args: list[str], field: str
) -> None:
    before = snapshot(home)
    result = cli(*[a.format(out=tmp_path / "ng") for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}"), lines
    assert snapshot(home) == before


def test_the_composed_spelling_is_one_name(cli, made) -> None:
    assert cli("client", "issue", "-p", "a", "-n", "b\u00f2t", "-u").returncode == 0


def test_a_damaged_root_crl_names_the_profile_in_its_repair_hint(cli, home: Path) -> None:
    """root/ of a two-level profile is reached with its parent's -p; the hint said `-p root`."""
    assert cli("ca", "init", "-p", "two", "--intermediate").returncode == 0
    crl = home / "two" / "root" / "crl.pem"
    crl.write_text("not a CRL\n")
    refused = cli("check", "-p", "two")
    assert refused.returncode == 4
    assert "certwiz crl gen -p two" in refused.stderr and "-p root" not in refused.stderr
    assert cli("crl", "gen", "-p", "two").returncode == 0, "the hint's command repairs it"
    assert cli("check", "-p", "two").returncode == 0
