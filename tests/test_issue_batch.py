"""`certwiz client issue-batch`: a fleet from a CSV file, checked with cryptography and openssl.

One profile per scenario (module scope where the scenario allows); the CLI runs as a
real process where argv, exit codes, output and kills are what is tested, the library
in-process for the table of hostile files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certwiz import audit, batch, ca, check, database, openssl, recover
from certwiz.errors import InputError, StateError
from certwiz.profile import Profile
from tests.conftest import clean_env, hand_sign, load_cert, run_certwiz, snapshot
from tests.conftest import openssl as run_openssl

PASSWORD = "fleet password 1"
FLEET = 30


def fleet_csv(path: Path, count: int, prefix: str = "bot") -> Path:
    """COUNT rows: every third 30 days, odd rows with a password, every fifth modern."""
    lines = ["name,days,unencrypted,p12_format"]
    for i in range(count):
        days = "30" if i % 3 == 0 else ""
        plain = "" if i % 2 else "true"
        fmt = "modern" if i % 5 == 0 else ""
        lines.append(f"{prefix}-{i},{days},{plain},{fmt}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Profile, Path, dict[str, object]]:
    """A profile, its CSV and the --json of one issue-batch run over 30 rows."""
    base = tmp_path_factory.mktemp("fleet")
    home = base / "certs"
    profile = ca.init("fleet", home)
    (base / "pw").write_text(PASSWORD + "\n")
    (base / "pw").chmod(0o600)  # a secret file: only ours
    csv_file = fleet_csv(base / "fleet.csv", FLEET)
    records = len(audit.read(profile))
    result = run_certwiz(home, "client", "issue-batch", "-p", "fleet", "--from", str(csv_file),
                         "--p12-passphrase-file", str(base / "pw"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(audit.read(profile)) == records + 1
    return profile, csv_file, json.loads(result.stdout)


def test_every_row_issued_with_its_own_key_and_bundle(
    fleet: tuple[Profile, Path, dict[str, object]],
) -> None:
    profile, _, out = fleet
    issued = out["issued"]
    assert isinstance(issued, list) and len(issued) == FLEET
    assert out["completed"] == [] and out["skipped"] == []
    assert [item["name"] for item in issued] == [f"bot-{i}" for i in range(FLEET)]
    assert [item["line"] for item in issued] == list(range(2, FLEET + 2))
    serials = {int(item["serial"], 16) for item in issued}
    assert len(serials) == FLEET  # distinct
    ca_cert = load_cert(profile.ca_cert)
    for i, item in enumerate(issued):
        assert set(item["files"]) == {"certificate", "key", "csr", "p12"}
        password = None if i % 2 == 0 else PASSWORD.encode()
        key, cert, chain = pkcs12.load_key_and_certificates(
            Path(item["files"]["p12"]).read_bytes(), password or b""
        )
        assert key is not None and cert is not None
        assert key.public_key() == cert.public_key()  # its own key
        assert cert.serial_number == int(item["serial"], 16)
        assert cert == load_cert(Path(item["files"]["certificate"]))
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == item["name"]
        assert [c.subject for c in chain] == [ca_cert.subject]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        cert.verify_directly_issued_by(ca_cert)
        days = 30 if i % 3 == 0 else 365
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert abs(span - timedelta(days=days)) < timedelta(minutes=5)
        key_pem = Path(item["files"]["key"]).read_bytes()
        assert (b"ENCRYPTED" in key_pem) == (password is not None)
        assert Path(item["files"]["key"]).stat().st_mode & 0o777 == 0o600
        assert Path(item["files"]["p12"]).stat().st_mode & 0o777 == 0o600


def test_database_audit_and_openssl_verify(
    fleet: tuple[Profile, Path, dict[str, object]],
) -> None:
    profile, _, out = fleet
    issued = out["issued"]
    assert isinstance(issued, list)
    assert check.verify_profile(profile).ok
    entries = {e.serial_int: e for e in database.read(profile.index)}
    for item in issued:
        entry = entries[int(item["serial"], 16)]
        assert entry.flag == "V" and entry.common_name == item["name"]
        assert (
            profile.newcert_path(entry.serial).read_bytes()
            == profile.cert_path(item["name"]).read_bytes()
        )
    for item in issued[:: FLEET // 3]:  # a sample, by the real openssl
        done = run_openssl("verify", "-CAfile", str(profile.ca_cert), "-CRLfile",
                           str(profile.crl), "-crl_check", "-purpose", "sslclient",
                           item["files"]["certificate"])  # fmt: skip
        assert done.stdout.strip().endswith(": OK")
    records = [r for r in audit.read(profile) if r.get("command") == "client issue-batch"]
    assert len(records) == 1
    assert sorted(records[0]["serials"]) == sorted(item["serial"] for item in issued)
    assert records[0]["result"] == "ok"


def test_rerun_skips_what_is_issued_and_says_so(
    fleet: tuple[Profile, Path, dict[str, object]],
) -> None:
    profile, csv_file, _ = fleet
    before = snapshot(profile.dir / "private")
    result = run_certwiz(profile.home, "client", "issue-batch", "-p", "fleet", "--from",
                         str(csv_file), "-u")  # fmt: skip  # no password needed: nothing new
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("skipped bot-") == FLEET
    assert "already issued with its files" in result.stdout
    assert snapshot(profile.dir / "private") == before
    last = audit.read(profile)[-1]
    assert last["command"] == "client issue-batch" and last["serials"] == []
    assert len(last["skipped"]) == FLEET  # type: ignore[arg-type]


def test_one_openssl_ca_run_per_validity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = ca.init("runs", tmp_path / "certs")
    ca_runs: list[list[str]] = []
    real = openssl.run

    def counting(args: list[openssl.Arg], **kwargs: object) -> str:
        if args[0] == "ca":
            ca_runs.append([str(a) for a in args])
        return real(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(openssl, "run", counting)
    rows = batch.read_rows(fleet_csv(tmp_path / "f.csv", 12), unencrypted=False)
    done = batch.issue_batch(profile, rows, passphrase=openssl.Secret(PASSWORD))
    assert len(done.of("issued")) == 12
    assert len(ca_runs) == 2  # 30 days and 365 days
    assert all(run.count("-infiles") == 1 for run in ca_runs)
    assert sum(len(run) - run.index("-infiles") - 1 for run in ca_runs) == 12


# ---- hostile files ------------------------------------------------------------------

HEADER = b"name,days,unencrypted,p12_format\n"
# (id, file bytes, the text the message must hold: FILE:LINE and the field)
HOSTILE: list[tuple[str, bytes, str]] = [
    ("nul-byte", HEADER + b"ok,,,\nb\0d,,,\n", ":3: contains a NUL byte"),
    ("not-utf8", HEADER + b"ok,,,\n\xff\xfe,,,\n", ":3: not UTF-8"),
    ("unknown-column", b"name,colour\nbob,red\n", ":1: colour: unknown column"),
    ("password-column", b"name,password\nbob,hunter2\n", ":1: password: a password column"),
    ("passphrase-column", b"name,p12_passphrase\nbob,x\n", ":1: p12_passphrase: a password"),
    ("no-name-column", b"days\n30\n", ":1: no name column"),
    ("twice-column", b"name,days,days\nbob,1,2\n", ":1: days: appears twice"),
    ("empty-file", b"", ":1: no header"),
    ("header-only", HEADER, "no rows"),
    ("ragged-row", HEADER + b"bob,30\n", ":2: 2 fields where the header has 4"),
    ("bad-quote", HEADER + b'"bob"x,,,\n', ":2: not valid CSV"),
    ("duplicate-row", HEADER + b"bob,,,\nalice,,,\nbob,,,\n", ":4: name: 'bob' repeats line 2"),
    ("name-slash", HEADER + b"ok,,,\n../etc,,,\n", ":3: name:"),
    ("name-dot", HEADER + b".lock,,,\n", ":2: name:"),
    ("name-reserved", HEADER + b"certwiz-ocsp,,,\n", ":2: name:"),
    ("name-newline", HEADER + b'"bob\nx",,,\n', ": name:"),
    ("name-empty", HEADER + b",,,\n", ":2: name:"),
    ("days-zero", HEADER + b"bob,0,,\n", ":2: days:"),
    ("days-word", HEADER + b"bob,forever,,\n", ":2: days:"),
    ("days-negative", HEADER + b"bob,-5,,\n", ":2: days:"),
    ("unencrypted-maybe", HEADER + b"bob,,maybe,\n", ":2: unencrypted: 'maybe'"),
    ("format-pfx", HEADER + b"bob,,,pfx\n", ":2: p12_format:"),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_file_is_refused_naming_line_and_field(data: bytes, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        batch.parse_rows(data, "f.csv")
    assert expected in f"f.csv{caught.value}" if expected.startswith(":") else str(caught.value)
    assert "\n" not in str(caught.value)


def test_too_large_and_too_many(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="larger than"):
        batch.read_rows(Path("/dev/zero"))
    rows = HEADER + b"".join(b"n%d,,,\n" % i for i in range(batch.MAX_ROWS + 1))
    with pytest.raises(InputError, match=rf":{batch.MAX_ROWS + 2}: more than"):
        batch.parse_rows(rows, "f.csv")


def test_minus_u_with_a_row_asking_for_a_password() -> None:
    with pytest.raises(InputError, match=":2: unencrypted: 'false', but -u"):
        batch.parse_rows(HEADER + b"bob,,false,\n", "f.csv", unencrypted=True)


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """A profile holding a hand-signed valid client 'handmade' (no key delivered by certwiz)."""
    base = tmp_path_factory.mktemp("victim")
    profile = ca.init("victim", base / "certs")
    hand_sign(profile.cnf, base / "hand", "handmade", "-extensions", "client_ext")
    return profile


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (HEADER + b"ok,,,\nb\0d,,,\n", "bad.csv:3: contains a NUL byte"),
        (b"name,password\nbob,x\n", "bad.csv:1: password: a password column is refused"),
        (HEADER + b"new-one,,,\nhandmade,,,\n", "bad.csv:3: name: handmade already has a valid"),
    ],
    ids=["nul", "password-column", "valid-elsewhere"],
)
def test_cli_refusal_is_one_line_exit_2_and_writes_nothing(
    victim: Profile, tmp_path: Path, data: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(data)
    before = snapshot(victim.home)
    result = run_certwiz(victim.home, "client", "issue-batch", "-p", "victim", "--from",
                         str(bad), "-u")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("certwiz: error: ") and result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(victim.home) == before


def test_valid_certificate_without_delivered_key_is_refused_in_process(victim: Profile) -> None:
    rows = batch.parse_rows(HEADER + b"x,,,\nhandmade,,,\n", "f.csv")
    with pytest.raises(StateError, match=r"f\.csv:3: name: handmade already has a valid"):
        batch.issue_batch(victim, rows)


# ---- interrupted ------------------------------------------------------------------------


def _count(directory: Path, suffix: str) -> int:
    try:
        return sum(1 for p in directory.iterdir() if p.name.endswith(suffix))
    except FileNotFoundError:
        return 0


def _reached(profile: Profile, stage: str, size: int, index_size: int) -> bool:
    """Kill points: some keys delivered, the database grown, some bundles made."""
    if stage == "keys":
        return _count(profile.private, ".key") >= 2 + size // 3
    if stage == "bundles":
        return _count(profile.private, ".p12") >= size // 3
    return profile.index.exists() and profile.index.stat().st_size > index_size


STAGES = [("keys", signal.SIGKILL), ("signed", signal.SIGKILL), ("bundles", signal.SIGKILL),
          ("signed", signal.SIGINT)]  # fmt: skip


def test_killed_half_way_then_rerun_issues_only_what_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "certs"
    env = clean_env(home)
    size = 16
    seen: set[str] = set()
    for trial, (stage, sig) in enumerate(STAGES):
        profile = ca.init(f"kill{trial}", home)
        index_size = profile.index.stat().st_size
        csv_file = fleet_csv(tmp_path / f"k{trial}.csv", size, prefix=f"k{trial}")
        argv = [sys.executable, "-m", "certwiz", "client", "issue-batch", "-p", profile.name,
                "--from", str(csv_file), "--json", "-u"]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _reached(profile, stage, size, index_size):
                break
            time.sleep(0.002)
        landed = proc.poll() is None
        if landed:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
        if landed:
            seen.add(f"{stage}/{sig.name}")
        # The landed crash tests' standard: recovery under the lock leaves a consistent profile.
        with profile.lock(timeout=30):
            recover.recover(profile)
            assert check.verify_profile(profile).problems == []
        assert not list(profile.dir.glob(".certwiz-*"))
        # The rerun issues only what is missing and finishes the fleet.
        rerun = run_certwiz(home, "client", "issue-batch", "-p", profile.name, "--from",
                            str(csv_file), "--json", "-u")  # fmt: skip
        assert rerun.returncode == 0, (stage, rerun.stderr)
        out = json.loads(rerun.stdout)
        assert len(out["issued"]) + len(out["completed"]) + len(out["skipped"]) == size
        if landed and stage in ("signed", "bundles"):  # signed before the kill: not again
            assert len(out["issued"]) < size
        new = {item["serial"] for item in out["issued"]}
        assert sorted(audit.read(profile)[-1]["serials"]) == sorted(new)  # type: ignore[arg-type]
        assert check.verify_profile(profile).ok
        valid = [e for e in database.read(profile.index) if e.status() == "valid"]
        assert sorted(str(e.common_name) for e in valid) == sorted(
            f"k{trial}-{i}" for i in range(size)
        )
        for entry in valid:
            name = str(entry.common_name)
            key, cert, _ = pkcs12.load_key_and_certificates(
                profile.p12_path(name).read_bytes(), b""
            )
            assert cert is not None and key is not None
            assert cert.serial_number == entry.serial_int
            assert key.public_key() == cert.public_key()
            assert (
                profile.cert_path(name).read_bytes()
                == profile.newcert_path(entry.serial).read_bytes()
            )
    assert seen, "no kill landed before the run finished"
    print(f"\nkills landed at: {sorted(seen)}")


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """Rich draws the bar on a terminal; a pipe (and so every script) gets plain lines."""
    import pty

    home = tmp_path / "certs"
    ca.init("tty", home)
    env = clean_env()
    env.update(CERTWIZ_HOME=str(home), TERM="xterm", COLUMNS="100")
    argv = [sys.executable, "-m", "certwiz", "client", "issue-batch", "-p", "tty", "-u"]
    master, slave = pty.openpty()
    proc = subprocess.Popen([*argv, "--from", str(fleet_csv(tmp_path / "a.csv", 6, "t"))],
                            env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    assert b"keys and requests" in seen and b"bundles" in seen
    assert b"6 issued" in seen
    piped = run_certwiz(home, *argv[3:], "--from", str(fleet_csv(tmp_path / "b.csv", 6, "p")))
    assert piped.returncode == 0, piped.stderr
    assert "keys and requests" not in piped.stdout + piped.stderr
    assert "\x1b[" not in piped.stdout


def test_wrong_ca_passphrase_writes_no_key(tmp_path: Path) -> None:
    """An encrypted CA key that the given passphrase does not open: refused before any key
    or request is made or installed (only the audit record of the refusal is added)."""
    profile = ca.init("enc", tmp_path / "certs", passphrase=openssl.Secret("right passphrase"))
    rows = batch.parse_rows(HEADER + b"a,,,\nb,,,\n", "f.csv", unencrypted=True)
    before = {k: v for k, v in snapshot(profile.dir).items() if k != "audit.log"}
    with pytest.raises(openssl.OpenSSLError, match="is the passphrase right"):
        batch.issue_batch(profile, rows, ca_passphrase=openssl.Secret("wrong passphrase"))
    assert {k: v for k, v in snapshot(profile.dir).items() if k != "audit.log"} == before
    done = batch.issue_batch(profile, rows, ca_passphrase=openssl.Secret("right passphrase"))
    assert [i.action for i in done.items] == ["issued", "issued"]
