"""audit.log: one JSON line per change or failed change, append-only, never a secret."""

from __future__ import annotations

import errno
import json
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certwiz import audit, issue
from certwiz.profile import Profile
from tests.conftest import clean_env, load_cert, snapshot
from tests.security.conftest import one_error_line

SECRET = "audit-Secret-3141"


def records(profile_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (profile_dir / "audit.log").read_text().splitlines()]


def test_every_change_and_failure_is_recorded(cli, home: Path, tmp_path: Path) -> None:
    passfile = tmp_path / "ca.pass"
    passfile.write_text(SECRET + "\n")
    passfile.chmod(0o600)  # a secret file: only ours
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-passphrase\n")
    wrong.chmod(0o600)  # a secret file: only ours
    ca_file = ["--ca-passphrase-file", str(passfile)]
    steps = [
        ["ca", "init", "-p", "log", *ca_file],
        ["server", "issue", "-p", "log", "-n", "www.example.com", *ca_file],
        ["client", "issue", "-p", "log", "-n", "alice", "-u", *ca_file],
        ["revoke", "-p", "log", "-n", "alice", "--reason", "keyCompromise", *ca_file],
        ["crl", "gen", "-p", "log", *ca_file],
    ]
    for argv in steps:
        result = cli(*argv)
        assert result.returncode == 0, result.stderr
    profile_dir = home / "log"
    failed = cli(
        "client", "issue", "-p", "log", "-n", "bob", "-u", "--ca-passphrase-file", str(wrong)
    )
    assert failed.returncode == 1
    one_error_line(failed)
    refused = cli("client", "issue", "-p", "log", "-n", "../bob", "-u", *ca_file)
    assert refused.returncode == 2  # refused before the lock: no record, no byte changed

    log = records(profile_dir)
    assert [r["command"] for r in log] == [
        "ca init",
        "server issue",
        "client issue",
        "revoke",
        "crl gen",
        "client issue",
    ]
    assert [r["result"] for r in log] == ["ok"] * 5 + ["error"]
    for record in log:
        assert {"time", "user", "uid", "command", "names", "serials", "result"} <= set(record)
        assert str(record["time"]).endswith("Z")
    www = load_cert(profile_dir / "issued" / "www.example.com.crt")
    assert log[1]["names"] == ["www.example.com"]
    assert [int(str(s), 16) for s in log[1]["serials"]] == [www.serial_number]  # type: ignore[union-attr]
    alice = load_cert(profile_dir / "issued" / "alice.crt").serial_number
    for record in log[2:4]:
        assert [int(str(s), 16) for s in record["serials"]] == [alice]  # type: ignore[union-attr]
    assert "openssl ca failed" in str(log[5]["error"])
    raw = (profile_dir / "audit.log").read_text()
    assert SECRET not in raw and "not-the-passphrase" not in raw
    assert stat.S_IMODE((profile_dir / "audit.log").stat().st_mode) == 0o600

    shown = cli("audit", "-p", "log", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout) == log
    text = cli("audit", "-p", "log").stdout.splitlines()
    assert len(text) == len(log) and text[3].split()[2:4] == ["revoke", "alice"]


def test_log_is_append_only(cli, profile: Profile) -> None:
    first = (profile.dir / "audit.log").read_bytes()
    assert cli("client", "issue", "-p", "my-app", "-n", "a", "-u").returncode == 0
    second = (profile.dir / "audit.log").read_bytes()
    assert cli("crl", "gen", "-p", "my-app").returncode == 0
    third = (profile.dir / "audit.log").read_bytes()
    assert second.startswith(first) and third.startswith(second)
    assert len(third.splitlines()) == len(first.splitlines()) + 2


def test_torn_last_line_is_shown_and_not_glued_to(cli, profile: Profile) -> None:
    with open(profile.dir / "audit.log", "a") as handle:
        handle.write('{"time": "2026-')  # a crash in the middle of a write
    assert cli("crl", "gen", "-p", "my-app").returncode == 0  # changes still work
    result = cli("audit", "-p", "my-app", "--json")
    assert result.returncode == 0, result.stderr
    log = json.loads(result.stdout)
    assert log[1] == {"line": 2, "unreadable": '{"time": "2026-'}
    assert log[2]["command"] == "crl gen" and log[2]["result"] == "ok"
    text = cli("audit", "-p", "my-app").stdout.splitlines()
    assert text[1].startswith("line 2: unreadable record")


def _limited(home: Path, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """certwiz with RLIMIT_FSIZE (ulimit -f) set to `limit` bytes, as a quota would bite."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = clean_env(home)
    return subprocess.run([sys.executable, "-m", "certwiz", *args], capture_output=True,
                          text=True, env=env, preexec_fn=cap, timeout=120, check=False)  # fmt: skip


def test_a_change_audit_log_cannot_take_fails_and_changes_nothing(
    profile: Profile, home: Path
) -> None:
    """Issue 13 item 13: with audit.log at the file size limit a change exited 0 and left
    no record. It is refused now, under the lock and before anything is touched."""
    log = profile.dir / "audit.log"
    with log.open("a") as handle:  # a long history: every other file stays far below it
        for number in range(3000):
            handle.write(json.dumps({"time": "x", "command": "old", "n": number}) + "\n")
    before = snapshot(home)
    done = _limited(home, log.stat().st_size, "client", "issue", "-p", "my-app", "-n", "b", "-u")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "audit.log cannot grow" in one_error_line(done.stderr)
    assert snapshot(home) == before
    ok = _limited(home, 10 * 1024 * 1024, "client", "issue", "-p", "my-app", "-n", "b", "-u")
    assert ok.returncode == 0, ok.stderr
    assert audit.read(profile)[-1]["names"] == ["b"]


def test_a_change_made_but_not_recorded_fails_loudly(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order (room checked, then the disk fills or a quota bites): the change
    stands, so the error says what was done and that audit.log lacks it."""

    def full(path: Path, record: dict[str, object]) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(path))

    monkeypatch.setattr(audit, "append", full)
    with pytest.raises(audit.NotRecorded) as caught:
        issue.issue_client(profile, "c")
    assert "the change was made (client issue c: " in str(caught.value)
    assert "Disk quota exceeded" in str(caught.value)
    assert profile.cert_path("c").is_file()
