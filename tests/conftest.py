"""Shared fixtures: a temporary certwiz home, the CLI as a real process, parsers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import ca
from certwiz.profile import Profile

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_certwiz(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> Result:
    """certwiz as a user runs it: a separate process, no terminal on stdin."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTWIZ_")}
    full_env["CERTWIZ_HOME"] = str(home)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "certwiz", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or home.parent,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("CERTWIZ_"):
            monkeypatch.delenv(key)
    path = tmp_path / "certs"
    monkeypatch.setenv("CERTWIZ_HOME", str(path))
    return path


@pytest.fixture
def cli(home: Path) -> Callable[..., Result]:
    def call(*args: str, **kwargs: object) -> Result:
        return run_certwiz(home, *args, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def profile(home: Path) -> Profile:
    """A fresh profile 'my-app' with an unencrypted EC CA, made through the library."""
    return ca.init("my-app", home)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file below `directory` (mode, sha256): 'byte for byte unchanged' made checkable."""
    state: dict[str, tuple[int, str]] = {}
    if not directory.exists():
        return state
    for path in sorted(directory.rglob("*")):
        rel = str(path.relative_to(directory))
        if path.is_symlink():
            state[rel] = (0, "symlink->" + os.readlink(path))
        elif path.is_file():
            state[rel] = (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[rel] = (path.stat().st_mode, "dir")
    return state


def openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real openssl binary, run directly by a test (the hand-run side)."""
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=check)


def hand_sign(
    cnf: Path, work: Path, cn: str, *ca_args: str, subj: str = "", req_args: tuple[str, ...] = ()
) -> Path:
    """Sign a fresh EC key for /CN=cn with `openssl ca -config cnf` run by hand, as a user would.

    Extra arguments go to `openssl ca` (e.g. -extensions client_ext, -startdate ...);
    `subj` replaces the subject /CN=cn, `req_args` go to `openssl req`.
    """
    work.mkdir(parents=True, exist_ok=True)
    key, csr, crt = work / f"{cn}.key", work / f"{cn}.csr", work / f"{cn}.pem"
    subject = subj or f"/CN={cn}"
    openssl("req", *req_args, "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-subj", subject, "-out", str(csr))  # fmt: skip
    openssl("ca", "-batch", "-notext", "-config", str(cnf), "-in", str(csr), "-out", str(crt),
            *ca_args)  # fmt: skip
    return crt


def crl_check(ca_cert: Path, crl: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    """`openssl verify -crl_check`: the independent verdict on revocation."""
    return openssl("verify", "-crl_check", "-CAfile", str(ca_cert), "-CRLfile", str(crl),
                   str(cert), check=False)  # fmt: skip
