"""audit.log: one JSON line per change or failed change, append-only, never a secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from certwiz.profile import Profile
from tests.conftest import load_cert
from tests.security.conftest import one_error_line

SECRET = "audit-Secret-3141"


def records(profile_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (profile_dir / "audit.log").read_text().splitlines()]


def test_every_change_and_failure_is_recorded(cli, home: Path, tmp_path: Path) -> None:
    passfile = tmp_path / "ca.pass"
    passfile.write_text(SECRET + "\n")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-passphrase\n")
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
