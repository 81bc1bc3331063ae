"""A corrupted index.txt, serial, crlnumber or crl.pem is named, line and all; nothing moves.

Every change verifies the profile under the lock first (certwiz/check.py).
The only byte a refused change adds is its failure record at the end of
audit.log (append-only: the old records stay a prefix).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import ca, issue
from certwiz.profile import Profile
from tests.conftest import load_cert, snapshot
from tests.security.conftest import one_error_line


def corrupt_index_line(profile: Profile) -> None:
    lines = profile.index.read_text().splitlines(keepends=True)
    lines[1] = "V\tnot-a-date\t\tZZ\tunknown\t/CN=x\n"
    profile.index.write_text("".join(lines))


def truncate_index(profile: Profile) -> None:
    data = profile.index.read_bytes()
    profile.index.write_bytes(data[:-25])  # a torn last line


def duplicate_serial(profile: Profile) -> None:
    lines = profile.index.read_text().splitlines(keepends=True)
    profile.index.write_text("".join([*lines, lines[0]]))


def serial_garbage(profile: Profile) -> None:
    profile.serial.write_text("not hex\n")


def serial_rewound(profile: Profile) -> None:
    profile.serial.write_text("01\n")


def serial_empty(profile: Profile) -> None:
    profile.serial.write_text("")


def crlnumber_garbage(profile: Profile) -> None:
    profile.crlnumber.write_text("\x00\x01\n")


def crl_truncated(profile: Profile) -> None:
    lines = profile.crl.read_text().splitlines(keepends=True)
    profile.crl.write_text("".join(lines[:3]))


def crl_bad_base64(profile: Profile) -> None:
    lines = profile.crl.read_text().splitlines(keepends=True)
    lines[2] = "!!!! this is not base64 !!!!\n"
    profile.crl.write_text("".join(lines))


def crl_flipped_byte(profile: Profile) -> None:
    lines = profile.crl.read_text().splitlines(keepends=True)
    line = lines[3]
    lines[3] = ("A" if line[10] != "A" else "B").join([line[:10], line[11:]])
    profile.crl.write_text("".join(lines))


def crl_of_another_ca(profile: Profile) -> None:
    other = ca.init("other", profile.home)
    profile.crl.write_bytes(other.crl.read_bytes())


def newcert_missing(profile: Profile) -> None:
    next(profile.newcerts.iterdir()).unlink()


CORRUPTIONS: list[tuple[Callable[[Profile], None], str]] = [
    (corrupt_index_line, "index.txt:2: cannot parse"),
    (truncate_index, "index.txt:3: cannot parse"),
    (duplicate_serial, "index.txt:4: serial"),
    (serial_garbage, "serial:1: expected one line"),
    (serial_rewound, "serial:1: next serial 1 is not above"),
    (serial_empty, "serial:1: expected one line"),
    (crlnumber_garbage, "crlnumber:1:"),
    (crl_truncated, "crl.pem:4: truncated"),
    (crl_bad_base64, "crl.pem:3: not a base64 line"),
    (crl_flipped_byte, "crl.pem:"),
    (crl_of_another_ca, "crl.pem: not a CRL signed by"),
    (newcert_missing, ".pem is missing"),
]

COMMANDS = [
    ["client", "issue", "-p", "my-app", "-n", "dave", "-u"],
    ["revoke", "-p", "my-app", "-n", "bob"],
    ["crl", "gen", "-p", "my-app"],
]


@pytest.fixture
def filled(profile: Profile) -> Profile:
    for name in ("alice", "bob", "carol"):
        issue.issue_client(profile, name)
    return profile


@pytest.mark.parametrize(
    ("corrupt", "message"), CORRUPTIONS, ids=[c.__name__ for c, _ in CORRUPTIONS]
)
def test_corruption_is_named_and_nothing_is_overwritten(
    cli, filled: Profile, corrupt, message: str
) -> None:
    corrupt(filled)
    audit_before = (filled.dir / "audit.log").read_bytes()
    before = {k: v for k, v in snapshot(filled.dir).items() if k != "audit.log"}
    # `crl gen` is the repair for a bad crl.pem (test below); everything else refuses.
    crl_damage = corrupt.__name__.startswith("crl_")
    commands = [c for c in COMMANDS if not (crl_damage and c[:2] == ["crl", "gen"])]
    for argv in commands:
        result = cli(*argv)
        assert result.returncode == 4, (argv, result.stderr)
        line = one_error_line(result)
        assert message in line, line
        assert "nothing was changed" in line
        if crl_damage:
            assert "certwiz crl gen -p my-app" in line
    after = {k: v for k, v in snapshot(filled.dir).items() if k != "audit.log"}
    assert after == before
    audit_after = (filled.dir / "audit.log").read_bytes()
    assert audit_after.startswith(audit_before)
    failures = [json.loads(x) for x in audit_after[len(audit_before) :].splitlines()]
    assert [f["result"] for f in failures] == ["error"] * len(commands)
    check = cli("check", "-p", "my-app")
    assert check.returncode == 4


def test_check_command_on_a_healthy_profile(cli, filled: Profile) -> None:
    result = cli("check", "-p", "my-app", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"profile": "my-app", "ok": True, "problems": []}


def test_check_reports_a_revocation_missing_from_the_crl(
    cli, filled: Profile, tmp_path: Path
) -> None:
    """A revoke killed before its CRL: `check` says so, and the next change publishes it."""
    old_crl = filled.crl.read_bytes()
    assert cli("revoke", "-p", "my-app", "-n", "bob").returncode == 0
    filled.crl.write_bytes(old_crl)
    result = cli("check", "-p", "my-app")
    assert result.returncode == 4
    assert "is not in" in result.stdout and "certwiz crl gen" in result.stdout
    assert cli("client", "issue", "-p", "my-app", "-n", "erin", "-u").returncode == 0
    assert cli("check", "-p", "my-app").returncode == 0


CRL_DAMAGE = [c for c, _ in CORRUPTIONS if c.__name__.startswith("crl_")]


def crl_missing(profile: Profile) -> None:
    profile.crl.unlink()


@pytest.mark.parametrize("corrupt", [*CRL_DAMAGE, crl_missing], ids=lambda c: c.__name__)
def test_crl_gen_repairs_a_missing_or_damaged_crl(cli, filled: Profile, corrupt) -> None:
    """Refusing `crl gen` too would leave no way back but openssl by hand."""
    revoked = issue.issue_client(filled, "eve")
    assert cli("revoke", "-p", "my-app", "-n", "eve").returncode == 0
    corrupt(filled)
    result = cli("crl", "gen", "-p", "my-app")
    assert result.returncode == 0, result.stderr
    crl = x509.load_pem_x509_crl(filled.crl.read_bytes())
    assert crl.is_signature_valid(load_cert(filled.ca_cert).public_key())
    assert [r.serial_number for r in crl] == [int(revoked.serial, 16)]
    assert cli("check", "-p", "my-app").returncode == 0
    assert cli("client", "issue", "-p", "my-app", "-n", "dave", "-u").returncode == 0
