"""The templates ship inside the wheel: certwiz works from a plain (non-editable) install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import REPO, clean_env


def test_installed_wheel_runs_the_lifecycle(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "certs", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("certwiz-*.whl")
    members = zipfile.ZipFile(wheel).namelist()
    assert "certwiz/openssl_templates/openssl.cnf.j2" in members
    assert "certwiz/openssl_templates/leaf_ext.cnf.j2" in members

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = clean_env()
    env["PYTHONPATH"] = str(target)
    run = tmp_path / "run"
    run.mkdir()

    def certwiz(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "certwiz", *args],
            cwd=run,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = subprocess.run(
        [sys.executable, "-c", "import certwiz; print(certwiz.__file__)"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))
    certwiz("ca", "init", "-p", "wheel-app")
    certwiz("client", "issue", "-p", "wheel-app", "-n", "bot", "-u")
    bundle = pkcs12.load_pkcs12((run / "certs/wheel-app/private/bot.p12").read_bytes(), None)
    assert bundle.key is not None
    # The NGINX templates ship too: render from the installed wheel.
    for name in (
        "ssl.conf.j2",
        "proxy.conf.j2",
        "mtls_proxy.conf.j2",
        "standalone.conf.j2",
    ):
        assert f"certwiz/nginx_templates/{name}" in members
    certwiz("server", "issue", "-p", "wheel-app", "-n", "myserver.local")
    certwiz(
        "nginx",
        "render",
        "-p",
        "wheel-app",
        "--server",
        "myserver.local",
        "--upstream",
        "http://127.0.0.1:8080",
        "--tls",
        "modern",
    )
    assert "ssl_protocols TLSv1.3;" in (run / "certs/wheel-app/nginx/ssl.inc").read_text()
