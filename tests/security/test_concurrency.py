"""Many certwiz processes on one profile: the lock serialises `openssl ca`.

(tests/test_parallel.py, eight parallel client issues, is folded into the first test:
16 processes x 3 rounds with revokes, asserting all it asserted.)

Without it openssl reuses serials and loses index lines (see the reference
facts); with it every process succeeds and the database adds up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import ca, check, database, issue
from certwiz.profile import Profile
from tests.conftest import clean_env, hand_sign, load_cert, load_crl, openssl, snapshot
from tests.security.conftest import one_error_line

CLIENTS = 16
ROUNDS = 3
REVOKES_PER_ROUND = 4


def certwiz_env(home: Path, **extra: str) -> dict[str, str]:
    return clean_env(home, extra)


def spawn(home: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "certwiz", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=certwiz_env(home, **env),
    )


def test_sixteen_processes_three_rounds_with_revokes(home: Path, tmp_path: Path) -> None:
    profile = ca.init("busy", home)
    issued: dict[str, str] = {}  # name -> serial
    revoked: list[str] = []
    for rnd in range(ROUNDS):
        procs = [
            (
                f"r{rnd}-c{i}",
                spawn(home, "client", "issue", "-p", "busy", "-n", f"r{rnd}-c{i}", "-u", "--json"),
            )
            for i in range(CLIENTS)
        ]
        # Revoke clients of the previous round while this round issues.
        victims = [n for n in issued if n.startswith(f"r{rnd - 1}-")][:REVOKES_PER_ROUND]
        revs = [spawn(home, "revoke", "-p", "busy", "-n", n, "--json") for n in victims]
        for name, proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            issued[name] = json.loads(out)["serial"]
        for proc in revs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            revoked += json.loads(out)["serials"]

    assert len(issued) == CLIENTS * ROUNDS
    assert len(set(issued.values())) == len(issued), "a serial was handed out twice"
    entries = database.read(profile.index)
    assert len(entries) == len(issued)
    assert {e.serial for e in entries} == set(issued.values())
    assert sorted(str(e.common_name) for e in entries) == sorted(issued)
    for name, serial in issued.items():
        cert = load_cert(profile.cert_path(name))
        assert cert.serial_number == int(serial, 16)
        assert cert.subject.rfc4514_string() == f"CN={name}"
    for entry in entries:  # openssl's own copy under newcerts/ agrees with the index
        assert load_cert(profile.newcert_path(entry.serial)).serial_number == entry.serial_int
    # No serial was skipped or reused: the next one follows the highest handed out.
    assert int(profile.serial.read_text(), 16) == max(e.serial_int for e in entries) + 1

    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    assert {r.serial_number for r in crl} == {int(s, 16) for s in revoked}
    assert len(revoked) == REVOKES_PER_ROUND * (ROUNDS - 1)
    assert {e.serial for e in entries if e.flag == "R"} == set(revoked)
    assert check.verify_profile(profile).ok

    records = [json.loads(line) for line in (profile.dir / "audit.log").read_text().splitlines()]
    assert sum(r["command"] == "client issue" and r["result"] == "ok" for r in records) == len(
        issued
    )
    assert sum(r["command"] == "revoke" for r in records) == len(revoked)

    # The directory is still a classic `openssl ca` directory: sign and revoke by hand.
    crt = hand_sign(profile.cnf, tmp_path, "by-hand", "-extensions", "client_ext")
    openssl("ca", "-batch", "-config", str(profile.cnf), "-revoke", str(crt))
    openssl("ca", "-batch", "-config", str(profile.cnf), "-gencrl", "-out", str(profile.crl))
    by_hand = x509.load_pem_x509_certificate(crt.read_bytes())
    assert by_hand.serial_number not in {int(s, 16) for s in issued.values()}
    assert by_hand.serial_number in {r.serial_number for r in load_crl(profile.crl)}
    assert check.verify_profile(profile).problems == []


def hold_lock(profile: Profile, release: threading.Event, held: threading.Event) -> None:
    with profile.lock(timeout=5):
        held.set()
        release.wait(120)


def test_lock_timeout_names_the_lock_file(profile: Profile, home: Path) -> None:
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(profile, release, held))
    holder.start()
    try:
        assert held.wait(10)
        before = snapshot(profile.dir)
        for args, env in (
            (
                ["client", "issue", "-p", "my-app", "-n", "bob", "-u"],
                {"CERTWIZ_LOCK_TIMEOUT": "0.3"},
            ),
            (["--lock-timeout", "0.2", "crl", "gen", "-p", "my-app"], {}),
        ):
            proc = spawn(home, *args, **env)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 3, err
            line = one_error_line(err)
            assert str(profile.lock_file) in line and "busy" in line
        assert snapshot(profile.dir) == before
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lock_file_removed_under_its_holder_lets_no_second_writer_in(
    profile: Profile, home: Path, how: str
) -> None:
    """Issue 13 item 13: an operator "clearing a stale lock" (rm .lock) while certwiz held
    it let a second writer in. The lock is also held on the profile directory itself,
    which no `rm` of a file can take away."""
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(profile, release, held))
    holder.start()
    try:
        assert held.wait(10)
        profile.lock_file.unlink()
        if how == "replaced":
            profile.lock_file.write_text("")
        before = snapshot(profile.dir)
        proc = spawn(home, "client", "issue", "-p", "my-app", "-n", "bob", "-u",
                     CERTWIZ_LOCK_TIMEOUT="0.5")  # fmt: skip
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "busy" in one_error_line(err)
        after = snapshot(profile.dir)
        after.pop(".lock", None)
        before.pop(".lock", None)
        assert after == before
    finally:
        release.set()
        holder.join()
    assert issue.issue_client(profile, "bob").name == "bob"  # and it is released


def holds_open(pid: int, path: Path) -> bool:
    """Whether process PID has PATH open (its /proc/PID/fd links)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def test_waiting_process_succeeds_once_the_lock_is_released(profile: Profile, home: Path) -> None:
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(profile, release, held))
    holder.start()
    try:
        assert held.wait(10)
        proc = spawn(
            home, "client", "issue", "-p", "my-app", "-n", "bob", "-u", CERTWIZ_LOCK_TIMEOUT="120"
        )
        # Wait until it really holds the lock file open (it is blocked on the lock),
        # then it must still be waiting, not failed.
        deadline = time.monotonic() + 60
        while not holds_open(proc.pid, profile.lock_file):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "never reached the lock"
            time.sleep(0.02)
        time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
        assert not profile.cert_path("bob").exists()
    finally:
        release.set()
        holder.join()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert load_cert(profile.cert_path("bob")).subject.rfc4514_string() == "CN=bob"
