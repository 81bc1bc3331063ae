"""Start-up: --version, commands imported only when run, Typer without pydantic, completion.

Speed itself is measured by `make bench`, never asserted here; these tests pin the
mechanisms that make it fast (what a command imports) and what users see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import certwiz
from certwiz.cli import COMMANDS, app
from tests.conftest import clean_env, missing


@pytest.fixture
def cli(cli_process):
    """Start-up is about the process: every call here is a real `python -m certwiz`."""
    return cli_process


# Runs the real entry point in a fresh interpreter, then prints the modules it imported.
_PROBE = """
import sys
sys.argv = ["certwiz", *sys.argv[1:]]
from certwiz.entry import main
try:
    main()
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)))
"""


def imported_by(home: Path, *args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=clean_env(home),
        check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def test_version_names_certwiz_openssl_and_python(cli) -> None:
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True)
    assert lines == [
        f"certwiz {certwiz.__version__}",
        openssl.stdout.strip(),
        f"CPython {sys.version.split()[0]}",
    ]
    assert metadata.version("certwiz") == certwiz.__version__  # pyproject reads the same


def test_version_through_the_command_line_says_the_same(cli) -> None:
    """The fast path and Typer's eager --version option print the same text."""
    fast, parsed = cli("--version"), cli("--lock-timeout", "5", "--version")
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout == fast.stdout
    assert "--version" in cli("--help").stdout


def test_version_loads_neither_typer_nor_a_command(home: Path) -> None:
    modules = imported_by(home, "--version")
    assert "certwiz.about" in modules
    assert not {m for m in modules if m.startswith(("typer", "certwiz.cli", "rich"))}


def test_list_imports_only_what_list_needs(home: Path, profile) -> None:
    modules = imported_by(home, "list", "-p", profile.name)
    assert {"certwiz.cli.certs", "certwiz.inventory"} <= modules
    not_needed = {
        "certwiz.cli.client",
        "certwiz.cli.ca",
        "certwiz.cli.nginx",
        "certwiz.cli.doctor",
        "certwiz.issue",
        "certwiz.revoke",
        "certwiz.nginx.site",
        "jinja2",
        "rich",
        "pydantic",
    }
    assert not modules & not_needed


def test_list_reads_kinds_without_cryptography(home: Path, profile) -> None:
    """der's shortcut reads the kind of what certwiz issued (tests/test_der_shapes.py)."""
    from certwiz import issue

    issue.issue_client(profile, "bot")
    issue.issue_server(profile, "www.example", sans=["10.0.0.1"])
    modules = imported_by(home, "list", "-p", profile.name, "--json")
    assert "certwiz.der" in modules
    assert not {m for m in modules if m.startswith("cryptography")}


def test_client_issue_imports_no_other_command(home: Path, profile) -> None:
    """The facade imports batch, revoke and the others only in the methods that use them."""
    modules = imported_by(home, "client", "issue", "-p", profile.name, "-n", "import-probe", "-u")
    assert "certwiz.issue" in modules
    assert not modules & {"certwiz.batch", "certwiz.revoke", "certwiz.cli.certs", "jinja2"}
    # der's shortcut reads validity, extensions and the CRL (tests/test_der_shapes.py);
    # the CRL's signature is checked with cryptography's EC/RSA primitives only
    assert "cryptography.x509" not in modules


def test_every_registered_command_loads_and_has_help(cli) -> None:
    root = cli("--help")
    assert root.returncode == 0
    for name in COMMANDS:
        assert f" {name} " in root.stdout, name
        page = cli(name, "--help")
        assert page.returncode == 0, (name, page.stderr)
        assert "Usage:" in page.stdout


def test_lazy_registry_resolves_in_process() -> None:
    """The click group built from the registry holds every command and group."""
    import typer

    group = typer.main.get_command(app)
    ctx = group.make_context("certwiz", ["list", "-p", "x"], resilient_parsing=True)
    assert list(group.list_commands(ctx)) == list(COMMANDS)
    assert group.get_command(ctx, "client").get_command(ctx, "issue").name == "issue"
    assert group.get_command(ctx, "no-such-command") is None


def test_typo_gets_a_suggestion_and_exit_2(cli) -> None:
    result = cli("lst")
    assert result.returncode == 2
    assert "Did you mean 'list'?" in result.stderr


def test_typer_is_a_version_without_pydantic() -> None:
    """typer >= 0.29 validates every option through pydantic: pyproject bounds it below."""
    major, minor = (int(x) for x in metadata.version("typer").split(".")[:2])
    assert (0, 26) <= (major, minor) < (0, 29)
    requires = metadata.requires("certwiz") or []
    typer_req = next(r for r in requires if r.startswith("typer"))
    assert "<0.29" in typer_req and ">=0.26" in typer_req, typer_req


def completion_env(home: Path) -> dict[str, str]:
    return clean_env(home)


def test_bash_completion_completes_groups_and_options(tmp_path: Path, home: Path) -> None:
    """Source the script certwiz prints into a real bash and run its completion function."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "certwiz"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m certwiz "$@"\n')
    launcher.chmod(0o755)
    env = {**completion_env(home), "PATH": f"{bindir}:{os.environ['PATH']}"}
    script = subprocess.run(
        ["certwiz"],
        env={**env, "_CERTWIZ_COMPLETE": "source_bash"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "complete -o default -F _certwiz_completion certwiz" in script

    def complete(words: str) -> list[str]:
        line = words.split(" ")
        probe = (
            f"{script}\nCOMP_WORDS=({words})\nCOMP_CWORD={len(line) - 1}\n"
            "_certwiz_completion certwiz\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
        )
        proc = subprocess.run(
            ["bash", "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        return proc.stdout.split()

    assert "client" in complete("certwiz cl")
    assert {"--profile", "--p12-format", "--p12-passphrase-file"} <= set(
        complete("certwiz client issue --p")
    )


@pytest.mark.parametrize(
    ("shell", "syntax_check", "marker"),
    [("zsh", ["zsh", "-n"], "#compdef certwiz"), ("fish", ["fish", "--no-execute"], "complete")],
)
def test_zsh_and_fish_scripts(
    home: Path, tmp_path: Path, shell: str, syntax_check: list[str], marker: str
) -> None:
    """`_CERTWIZ_COMPLETE=source_SHELL certwiz` prints a script the shell accepts."""
    script = subprocess.run(
        [sys.executable, "-m", "certwiz"],
        env={**completion_env(home), "_CERTWIZ_COMPLETE": f"source_{shell}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert marker in script and "_CERTWIZ_COMPLETE=complete_" in script
    if shutil.which(shell) is None:
        missing(shell, f"apt-get install {shell}; .ci/run installs it")
    path = tmp_path / f"certwiz.{shell}"
    path.write_text(script)
    subprocess.run([*syntax_check, str(path)], check=True, capture_output=True)


def test_nginx_package_resolves_every_public_name_lazily() -> None:
    import certwiz.nginx as nginx_lib

    for name in nginx_lib.__all__:
        assert getattr(nginx_lib, name) is not None, name
    with pytest.raises(AttributeError):
        nginx_lib.no_such_name  # noqa: B018
