"""The four numbered shims, run exactly as the seed writes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from tests.conftest import REPO, clean_env, load_cert, load_crl


def test_four_steps_through_the_shims(tmp_path: Path) -> None:
    # A copy of the scripts outside the repository, with certwiz found on PATH:
    # the shims must run from anywhere, with no logic of their own.
    work = tmp_path / "project"
    shutil.copytree(REPO / "scripts", work / "scripts")
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    def step(*argv: str) -> None:
        proc = subprocess.run(list(argv), cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    step("scripts/1_gen_ca.sh", "-p", "my-app")
    step("scripts/2_gen_server_cert.sh", "-p", "my-app", "-n", "myserver.local", "-d", "365")
    step("scripts/3_gen_client_cert.sh", "-p", "my-app", "-n", "bot-01", "-u")
    step("scripts/4_revoke_client.sh", "-p", "my-app", "-n", "bot-01")

    d = work / "certs" / "my-app"  # the default home is ./certs
    server = load_cert(d / "issued" / "myserver.local.crt")
    eku = server.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bundle = pkcs12.load_pkcs12((d / "private" / "bot-01.p12").read_bytes(), None)
    assert bundle.key is not None
    client = load_cert(d / "issued" / "bot-01.crt")
    assert [e.serial_number for e in load_crl(d / "crl.pem")] == [client.serial_number]


def test_shims_hold_no_logic() -> None:
    for script in sorted((REPO / "scripts").glob("[0-9]_*.sh")):
        code = [
            line
            for line in script.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(code) <= 4, script.name
        assert code[-1].startswith('exec "$certwiz" '), script.name
