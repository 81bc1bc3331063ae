"""Concurrent certwiz processes on one profile: the lock keeps openssl's database whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from certwiz import database
from tests.conftest import load_cert, openssl


def test_eight_parallel_client_issues(profile, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTWIZ_")}
    env["CERTWIZ_HOME"] = str(home)
    names = [f"bot-{i:02d}" for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "certwiz", "client", "issue", "-p", "my-app", "-n", name, "-u"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [rc for rc, _ in results] == [0] * 8, results
    entries = database.read(profile.index)
    assert sorted(e.common_name for e in entries) == names
    serials = [e.serial_int for e in entries]
    assert len(set(serials)) == 8
    for entry in entries:
        name = str(entry.common_name)
        assert load_cert(profile.cert_path(name)).serial_number == entry.serial_int
        assert load_cert(profile.newcert_path(entry.serial)).serial_number == entry.serial_int
    assert int(profile.serial.read_text(), 16) == max(serials) + 1
    # openssl itself still agrees the database is sound
    openssl("ca", "-config", str(profile.cnf), "-gencrl", "-out", str(profile.crl))
