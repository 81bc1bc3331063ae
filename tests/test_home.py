"""Where the profiles live: --home, CERTWIZ_HOME, /etc/certwiz.conf (CERTWIZ_CONFIG), ./certs.

Every "not found" names the directory it looked in and how to point elsewhere; the advice
to run `certwiz ca init` appears only in a home chosen on purpose, so running certwiz from
the wrong directory cannot lead an operator into a second CA.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Result, clean_env, missing, snapshot


def certwiz(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """certwiz with no CERTWIZ_* variable but those given (a shell on a fresh server)."""
    full_env = clean_env()
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "certwiz", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def server(tmp_path: Path) -> dict[str, Path]:
    """A server layout: a config file naming the home, and two unrelated working directories."""
    home = tmp_path / "etc-certwiz"
    config = tmp_path / "certwiz.conf"
    config.write_text(f"# written by the install\nhome = {home}\n")
    places = {"home": home, "config": config}
    for name in ("root", "srv"):
        places[name] = tmp_path / name
        places[name].mkdir()
    return places


def one_error_line(result: Result) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("certwiz: error: "), result.stderr
    return lines[0]


LOOKUPS = [
    ("server", "issue", "-p", "api", "-n", "api.example.com"),
    ("client", "issue", "-p", "api", "-n", "bot", "-u"),
    ("revoke", "-p", "api", "-n", "bot"),
    ("crl", "gen", "-p", "api"),
    ("list", "-p", "api"),
    ("show", "-p", "api", "-n", "bot"),
    ("check", "-p", "api"),
    ("audit", "-p", "api"),
    ("nginx", "render", "-p", "api", "--server", "a.example", "--upstream", "http://127.0.0.1:1"),
]


@pytest.mark.parametrize("args", LOOKUPS, ids=lambda a: " ".join(a[:2]))
def test_default_home_elsewhere_names_it_and_never_advises_ca_init(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The issue's case: run from another directory, with no home configured."""
    empty_config = tmp_path / "empty.conf"
    empty_config.write_text("# no home here\n")
    cwd = tmp_path / "root"
    cwd.mkdir()
    line = one_error_line(certwiz(cwd, *args, env={"CERTWIZ_CONFIG": str(empty_config)}))
    assert f"home {cwd / 'certs'} (the default ./certs of the current directory" in line
    assert "--home DIR" in line and "CERTWIZ_HOME=DIR" in line and "/etc/certwiz.conf" in line
    assert "ca init" not in line
    assert list(cwd.iterdir()) == []  # nothing created where the operator happened to be


def test_config_file_gives_one_home_from_every_directory(server: dict[str, Path]) -> None:
    env = {"CERTWIZ_CONFIG": str(server["config"])}
    assert certwiz(server["root"], "ca", "init", "-p", "api", env=env).returncode == 0
    assert (server["home"] / "api" / "ca.crt").is_file()
    issued = certwiz(server["srv"], "server", "issue", "-p", "api", "-n", "api.local", env=env)
    assert issued.returncode == 0, issued.stderr
    assert (server["home"] / "api" / "issued" / "api.local.crt").is_file()
    listed = certwiz(server["srv"], "profiles", env=env)
    assert listed.stdout.split() == ["api"]
    # A second `ca init` from anywhere lands on the same profile and is refused.
    before = snapshot(server["home"])
    again = certwiz(server["srv"], "ca", "init", "-p", "api", env=env)
    assert "already exists" in one_error_line(again)
    assert snapshot(server["home"]) == before
    assert list(server["root"].iterdir()) == [] and list(server["srv"].iterdir()) == []


def test_configured_home_advises_ca_init_and_names_the_config(server: dict[str, Path]) -> None:
    env = {"CERTWIZ_CONFIG": str(server["config"])}
    assert certwiz(server["root"], "ca", "init", "-p", "api", env=env).returncode == 0
    line = one_error_line(certwiz(server["srv"], "list", "-p", "other", env=env))
    assert f"not found in home {server['home']} (from {server['config']})" in line
    assert line.endswith("to create it there: certwiz ca init -p other")


def test_configured_home_that_does_not_exist_is_said_so(server: dict[str, Path]) -> None:
    env = {"CERTWIZ_CONFIG": str(server["config"])}
    line = one_error_line(certwiz(server["srv"], "list", "-p", "api", env=env))
    assert f"home {server['home']} (from {server['config']}) does not exist" in line
    assert "ca init" not in line


def test_environment_beats_config_and_option_beats_environment(
    server: dict[str, Path], tmp_path: Path
) -> None:
    env = {"CERTWIZ_CONFIG": str(server["config"]), "CERTWIZ_HOME": str(tmp_path / "envhome")}
    assert certwiz(server["root"], "ca", "init", "-p", "api", env=env).returncode == 0
    assert (tmp_path / "envhome" / "api").is_dir() and not server["home"].exists()
    option = tmp_path / "opthome"
    made = certwiz(server["root"], "ca", "init", "-p", "api", "--home", str(option), env=env)
    assert made.returncode == 0, made.stderr
    assert (option / "api" / "ca.crt").is_file()
    line = one_error_line(certwiz(server["srv"], "list", "-p", "nope", env=env))
    assert "(from CERTWIZ_HOME)" in line


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("home = certs\n", "line 1: home must be an absolute path, got 'certs'"),
        ("# ok\nhome: /etc/certwiz\n", "line 2: expected 'home = /absolute/dir'"),
        ("homedir = /etc/certwiz\n", "line 1: expected 'home = /absolute/dir'"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_line(tmp_path: Path, text: str, rule: str) -> None:
    config = tmp_path / "certwiz.conf"
    config.write_text(text)
    line = one_error_line(certwiz(tmp_path, "profiles", env={"CERTWIZ_CONFIG": str(config)}))
    assert line.startswith(f"certwiz: error: {config}: {rule}")


def test_missing_config_named_by_the_variable_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    line = one_error_line(certwiz(tmp_path, "profiles", env={"CERTWIZ_CONFIG": str(missing)}))
    assert line == f"certwiz: error: CERTWIZ_CONFIG: {missing} is not a file"


def test_incomplete_profile_names_what_is_missing(server: dict[str, Path]) -> None:
    env = {"CERTWIZ_CONFIG": str(server["config"])}
    assert certwiz(server["root"], "ca", "init", "-p", "api", env=env).returncode == 0
    (server["home"] / "api" / "ca.crt").unlink()
    line = one_error_line(certwiz(server["srv"], "list", "-p", "api", env=env))
    assert (
        line == f"certwiz: error: profile api at {server['home'] / 'api'} is incomplete: no ca.crt"
    )


def test_profiles_names_the_home_it_looked_in(server: dict[str, Path]) -> None:
    result = certwiz(server["srv"], "profiles", env={"CERTWIZ_CONFIG": str(server["config"])})
    assert result.returncode == 0
    assert f"no profiles in home {server['home']} (from {server['config']})" in result.stdout


def test_home_help_names_every_source(tmp_path: Path) -> None:
    """Rich markup once ate a bracketed help text whole: the sources must be visible."""
    text = " ".join(certwiz(tmp_path, "list", "--help").stdout.split())
    for source in ("CERTWIZ_HOME", "/etc/certwiz.conf", "CERTWIZ_CONFIG", "./certs"):
        assert source in text.replace("│ ", "")


def test_config_others_can_write_is_refused(server: dict[str, Path]) -> None:
    """/etc/certwiz.conf picks where root's certwiz writes keys: nobody else may change it."""
    server["config"].chmod(0o666)
    env = {"CERTWIZ_CONFIG": str(server["config"])}
    line = one_error_line(certwiz(server["srv"], "profiles", env=env))
    assert line == f"certwiz: error: {server['config']}: writable by others (mode 666): chmod 644"
    server["config"].chmod(0o644)
    assert certwiz(server["srv"], "profiles", env=env).returncode == 0


def test_config_of_another_user_is_refused(server: dict[str, Path]) -> None:
    if os.getuid() != 0:
        missing("root (to give the file to another user)", ".ci/run runs as root")
    os.chown(server["config"], 65534, 65534)
    line = one_error_line(
        certwiz(server["srv"], "profiles", env={"CERTWIZ_CONFIG": str(server["config"])})
    )
    assert line.endswith("owned by uid 65534: it must be yours or root's")


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o775, True), (0o1777, False)])
def test_config_in_a_directory_others_can_write_is_refused(
    server: dict[str, Path], mode: int, refused: bool
) -> None:
    """A 0644 config in a 0777 directory can be swapped by anyone (sticky: it cannot)."""
    folder = server["config"].parent
    folder.chmod(mode)
    try:
        result = certwiz(server["srv"], "profiles", env={"CERTWIZ_CONFIG": str(server["config"])})
    finally:
        folder.chmod(0o755)
    if refused:
        line = one_error_line(result)
        assert f"{folder} is writable by group or others (mode {mode & 0o777:o})" in line
    else:
        assert result.returncode == 0, result.stderr
