"""The server install as the README shows it, and the cron and systemd recipes on top of it.

The README's install block runs into a scratch root (its /opt, /usr/local/bin and /etc
moved there); then a lifecycle runs from an unrelated directory with the installed command,
`systemd-analyze verify --root` checks every unit in examples/systemd against that root, and
the units' and the cron line's commands renew the CRL of an encrypted CA unattended, with
nginx (a private one on 127.0.0.1) reloaded.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from examples.local_nginx import LocalNginx, free_port
from tests.conftest import REPO, clean_env, load_crl, missing
from tests.nginx_support import require_nginx

PASSPHRASE = "correct horse battery"
SYSTEMD = REPO / "examples" / "systemd"
CRON = REPO / "examples" / "cron" / "certwiz-crl"


def readme_block(heading: str, lang: str = "sh") -> str:
    """The first ```lang block after `heading` in README.md."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    match = re.compile(rf"^```{lang}\n(.*?)^```$", re.S | re.M).search(text, start)
    assert match is not None, f"no ```{lang} block after {heading}"
    return match.group(1)


def into_root(text: str, root: Path) -> str:
    """The README's absolute system paths moved under `root`."""
    return re.sub(r"(?<![\w./-])/(opt|usr/local/bin|etc)/", rf"{root}/\1/", text)


@dataclass
class Installed:
    root: Path
    env: dict[str, str]  # a root shell's: the installed command on PATH, the config read
    install_output: str

    @property
    def certwiz(self) -> Path:
        return self.root / "usr/local/bin/certwiz"

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.certwiz), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("root")
    checkout = tmp_path_factory.mktemp("checkout") / "certwiz"
    shutil.copytree(
        REPO,
        checkout,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "certs", "demo", "build", "dist", "*.egg-info", "__pycache__",
            ".*cache",
        ),
    )  # fmt: skip
    env = clean_env(drop=("VIRTUAL_ENV",))
    env["PATH"] = (
        f"{root}/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    env["CERTWIZ_CONFIG"] = str(root / "etc/certwiz.conf")  # what /etc/certwiz.conf is there
    (root / "usr/local/bin").mkdir(parents=True)
    script = into_root(readme_block("## Install on a server"), root)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"the README's install failed:\n{script}\n{done.stderr}"
    return Installed(root, env, done.stdout)


def test_readme_install_gives_a_working_command(installed: Installed) -> None:
    assert installed.certwiz.is_symlink()
    assert os.readlink(installed.certwiz) == f"{installed.root}/opt/certwiz/bin/certwiz"
    # The block's last command, `certwiz profiles`, ran the installed command with the config.
    assert installed.install_output.endswith(
        f"no profiles in home {installed.root}/etc/certwiz "
        f"(from {installed.root}/etc/certwiz.conf)\n"
    )
    # `certwiz --version` ran in the block too: the installed release, and what it runs on.
    assert re.search(r"^certwiz \d+\.\d+\S*\nOpenSSL 3\.", installed.install_output, re.M)
    helped = installed.run("--help", cwd=Path("/"))
    assert helped.returncode == 0 and "ca" in helped.stdout, helped.stderr
    config = (installed.root / "etc/certwiz.conf").read_text()
    assert config == f"home = {installed.root}/etc/certwiz\n"
    assert (installed.root / "etc/certwiz").stat().st_mode & 0o777 == 0o700
    # The venv's own Python, not the test runner's, holds certwiz.
    where = subprocess.run(
        [str(installed.root / "opt/certwiz/bin/python"), "-c",
         "import certwiz; print(certwiz.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    )  # fmt: skip
    assert where.stdout.startswith(f"{installed.root}/opt/certwiz/lib/")


@pytest.fixture(scope="module")
def lifecycle(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An encrypted CA made the README's way, from a directory that is not the home."""
    elsewhere = tmp_path_factory.mktemp("operator-cwd")
    secret = installed.root / "etc/credstore/certwiz-my-app.ca-passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    steps = [
        ("ca", "init", "-p", "my-app", "--ca-passphrase-file", str(secret)),
        ("server", "issue", "-p", "my-app", "-n", "api.local", "--san", "127.0.0.1",
         "--ca-passphrase-file", str(secret)),
        ("client", "issue", "-p", "my-app", "-n", "bot-01", "-u",
         "--ca-passphrase-file", str(secret)),
        ("revoke", "-p", "my-app", "-n", "bot-01", "--ca-passphrase-file", str(secret)),
    ]  # fmt: skip
    for args in steps:
        done = installed.run(*args, cwd=elsewhere)
        assert done.returncode == 0, (args, done.stderr)
    assert list(elsewhere.iterdir()) == []  # nothing landed in the operator's directory
    return installed.root / "etc/certwiz/my-app"


def test_lifecycle_from_another_directory_uses_the_configured_home(
    installed: Installed, lifecycle: Path
) -> None:
    ca = x509.load_pem_x509_certificate((lifecycle / "ca.crt").read_bytes())
    bot = x509.load_pem_x509_certificate((lifecycle / "issued/bot-01.crt").read_bytes())
    crl = load_crl(lifecycle / "crl.pem")
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(bot.serial_number) is not None
    assert b"ENCRYPTED" in (lifecycle / "private/ca.key").read_bytes()
    listed = installed.run("list", "-p", "my-app", "--json", cwd=Path("/"))
    assert listed.returncode == 0, listed.stderr
    assert "revoked" in listed.stdout


def require_systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    missing("systemd-analyze", "apt-get install systemd")


def unit_commands(unit: Path) -> list[str]:
    """The absolute commands a unit runs (ExecStart= and friends)."""
    words = []
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec"):
            words.append(shlex.split(value)[0].lstrip("-@:+!"))
    return words


def systemd_root(installed: Installed, units: list[Path]) -> Path:
    """The scratch root prepared for `systemd-analyze verify --root`."""
    root = installed.root
    system = root / "etc/systemd/system"
    system.mkdir(parents=True, exist_ok=True)
    for unit in units:
        shutil.copy(unit, system / unit.name)
    vendor = root / "usr/lib/systemd/system"
    if not vendor.exists():
        vendor.mkdir(parents=True)
        for path in Path("/usr/lib/systemd/system").iterdir():  # the targets units hang on
            if path.is_file() and not path.is_symlink():
                shutil.copy(path, vendor / path.name)
    # Inside --root an absolute link resolves against the root: point ours the README's way.
    installed.certwiz.unlink()
    installed.certwiz.symlink_to("/opt/certwiz/bin/certwiz")
    for unit in units:
        for command in unit_commands(unit):
            target = root / command.lstrip("/")
            if command != "/usr/local/bin/certwiz" and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(command, target)  # a system tool the unit names (logger)
    return root


def test_every_systemd_unit_verifies_against_the_install(installed: Installed) -> None:
    analyze = require_systemd_analyze()
    units = sorted(SYSTEMD.glob("*"))
    assert {u.name for u in units} >= {"certwiz-crl@.service", "certwiz-crl@.timer"}
    root = systemd_root(installed, units)
    try:
        names = [u.name.replace("@.", "@my-app.") for u in units]
        done = subprocess.run(
            [analyze, "verify", f"--root={root}", *names], capture_output=True, text=True
        )
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        # The check has teeth: without the installed command the same verify fails.
        os.rename(root / "opt/certwiz/bin/certwiz", root / "opt/certwiz/bin/certwiz.away")
        try:
            broken = subprocess.run(
                [analyze, "verify", f"--root={root}", *names], capture_output=True, text=True
            )
        finally:
            os.rename(root / "opt/certwiz/bin/certwiz.away", root / "opt/certwiz/bin/certwiz")
        assert broken.returncode != 0
        assert "/usr/local/bin/certwiz is not executable" in broken.stderr
    finally:
        installed.certwiz.unlink()
        installed.certwiz.symlink_to(root / "opt/certwiz/bin/certwiz")


def test_units_are_templates_and_alert_on_failure() -> None:
    service = (SYSTEMD / "certwiz-crl@.service").read_text()
    settings = [line for line in service.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "my-app" in line]  # one template: %i
    assert "OnFailure=certwiz-alert@%n.service" in service
    # Every OnFailure= names a unit shipped beside it (verify does not check that).
    for unit in SYSTEMD.glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith("OnFailure="):
                template = re.sub(r"@[^.]*\.", "@.", line.partition("=")[2])
                assert (SYSTEMD / template).is_file(), f"{unit.name}: {line}"
    assert "CERTWIZ_HOME" not in service  # the home comes from /etc/certwiz.conf


@pytest.fixture(scope="module")
def nginx_for(lifecycle: Path, installed: Installed) -> Iterator[LocalNginx]:
    """A private nginx enforcing the profile, so --reload has something real to reload."""
    binary = require_nginx()
    conf = lifecycle.parent.parent / "nginx-conf"
    done = installed.run(
        "nginx", "render", "-p", "my-app", "--server", "api.local",
        "--upstream", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{free_port()}",
        "--out", str(conf), cwd=Path("/"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    server = LocalNginx(lifecycle.parent.parent / "nginx-run", conf / "mtls_proxy.conf", binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def crl_number(profile: Path) -> int:
    ext = load_crl(profile / "crl.pem").extensions.get_extension_for_class(x509.CRLNumber)
    return ext.value.crl_number


def unit_exec(unit: Path, instance: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart= and Environment= of a template unit for `instance` (%i)."""
    command: list[str] = []
    env: dict[str, str] = {}
    for line in unit.read_text().replace("%i", instance).splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            command = shlex.split(value)
        elif key == "Environment":
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
    assert command, f"{unit} has no ExecStart"
    return command, env


def test_systemd_service_renews_the_crl_of_an_encrypted_ca(
    installed: Installed, lifecycle: Path, nginx_for: LocalNginx
) -> None:
    command, unit_env = unit_exec(SYSTEMD / "certwiz-crl@.service", "my-app")
    assert unit_env == {"CERTWIZ_NGINX_CMD": "/usr/sbin/nginx"}
    env = {**installed.env, **unit_env, "CERTWIZ_NGINX_CMD": nginx_for.command}
    argv = [into_root(word, installed.root) for word in command]
    before = crl_number(lifecycle)
    done = subprocess.run(
        argv, env=env, cwd="/", capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert crl_number(lifecycle) == before + 1
    assert "reloaded" in done.stdout
    # A wrong passphrase fails the unit (and so starts its OnFailure= alert).
    secret = installed.root / "etc/credstore/certwiz-my-app.ca-passphrase"
    secret.write_text("not the passphrase\n")
    secret.chmod(0o600)  # a secret file: only ours
    try:
        failed = subprocess.run(
            argv, env=env, cwd="/", capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
    finally:
        secret.write_text(PASSPHRASE + "\n")
        secret.chmod(0o600)  # a secret file: only ours
    assert failed.returncode != 0
    assert failed.stderr.startswith("certwiz: error: ")
    assert crl_number(lifecycle) == before + 1


def cron_job(path: Path) -> tuple[str, dict[str, str]]:
    """The command of the one job in a /etc/cron.d file, and the variables it sets."""
    env: dict[str, str] = {}
    jobs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, _, value = line.partition("=")
            env[name] = value
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7 and fields[5] == "root", line
        assert "%" not in fields[6]  # cron turns % into a newline
        jobs.append(fields[6])
    assert len(jobs) == 1
    return jobs[0], env


def test_cron_line_renews_quietly_and_alerts_on_failure(
    installed: Installed, lifecycle: Path, nginx_for: LocalNginx, tmp_path: Path
) -> None:
    command, cron_env = cron_job(CRON)
    assert cron_env["MAILTO"] == "root"
    # cron's own PATH, with the scratch root's /usr/local/bin in it and a logger that records.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "logger").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {tmp_path}/logged\n')
    (bin_dir / "logger").chmod(0o755)
    env = {
        **cron_env,
        "PATH": f"{bin_dir}:{installed.root}/usr/local/bin:{cron_env['PATH']}",
        "CERTWIZ_CONFIG": installed.env["CERTWIZ_CONFIG"],
        "CERTWIZ_NGINX_CMD": nginx_for.command,  # the private nginx, not the system one
        "HOME": "/root",
    }
    line = into_root(command, installed.root)
    before = crl_number(lifecycle)
    done = subprocess.run(
        [cron_env["SHELL"], "-c", line], env=env, cwd="/", capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # cron mails nothing
    assert crl_number(lifecycle) == before + 1
    assert not (tmp_path / "logged").exists()
    secret = installed.root / "etc/credstore/certwiz-my-app.ca-passphrase"
    secret.write_text("not the passphrase\n")
    secret.chmod(0o600)  # a secret file: only ours
    try:
        failed = subprocess.run(
            [cron_env["SHELL"], "-c", line], env=env, cwd="/", capture_output=True, text=True
        )
    finally:
        secret.write_text(PASSPHRASE + "\n")
        secret.chmod(0o600)  # a secret file: only ours
    assert failed.stderr.startswith("certwiz: error: ")  # what cron mails to MAILTO
    assert "crit" in (tmp_path / "logged").read_text()
    assert crl_number(lifecycle) == before + 1


def test_readme_shows_the_cron_line_that_is_tested() -> None:
    command, _ = cron_job(CRON)
    (line,) = readme_block("### Keep the CRL fresh", "cron").splitlines()
    assert line.split(None, 6)[6] == command
    assert "my-app" in command and "/etc/credstore/certwiz-my-app.ca-passphrase" in command


def test_recipes_take_the_home_from_the_config_only() -> None:
    """One place sets the home on a server: no recipe sets CERTWIZ_HOME of its own."""
    recipes = [*SYSTEMD.glob("*"), *(REPO / "examples" / "cron").glob("*")]
    assert len(recipes) >= 4
    for recipe in recipes:
        settings = [line for line in recipe.read_text().splitlines() if not line.startswith("#")]
        assert not [line for line in settings if "CERTWIZ_HOME" in line], recipe.name
