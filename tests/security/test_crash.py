"""SIGKILL at random points of issue, revoke and crl gen: the profile stays whole.

Each trial forks a process that runs the library call (the code the CLI runs
after parsing), kills its whole process group (openssl children included)
after a random delay spread over the operation, then checks the profile
with `cryptography` and runs the next command to completion. A few trials
kill the real CLI the same way. The states openssl itself leaves when killed
between its two renames are also built by hand, deterministically.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import ca, check, database, inventory, issue, journal, recover, revoke
from certwiz.profile import Profile
from tests.conftest import clean_env, load_cert, load_crl

ISSUE_TRIALS = 60
REVOKE_TRIALS = 30
CRL_TRIALS = 30
CLI_TRIALS = 12


def killed_after(action: Callable[[], object], delay: float) -> bool:
    """Run `action` in a forked process group; SIGKILL the group after `delay` seconds.

    True if the kill landed before the action finished.
    """
    pid = os.fork()
    if pid == 0:  # child: own process group, so the kill reaches openssl too
        code = 1
        try:
            os.setpgid(0, 0)
            action()
            code = 0
        finally:
            os._exit(code)
    os.setpgid(pid, pid)  # also from the parent: no race with the kill below
    time.sleep(delay)
    landed = True
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        landed = False
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        assert os.WEXITSTATUS(status) == 0, "the action failed on its own"
        return False
    return landed


def crl_is_valid(profile: Profile) -> x509.CertificateRevocationList:
    crl = load_crl(profile.crl)
    assert crl.is_signature_valid(load_cert(profile.ca_cert).public_key())
    return crl


def assert_consistent(profile: Profile, traces: Counter[str]) -> None:
    """The invariants after a kill, as the next command sees them under the lock."""
    crl_is_valid(profile)  # crl.pem is never half-written, even before recovery
    for leftover in profile.dir.glob(".certwiz-*"):
        traces["scratch dir left"] += 1 if leftover.is_dir() else 0
    if not profile.index.exists():
        assert profile.index.with_name("index.txt.new").is_file()
        traces["index.txt mid-rotation"] += 1
    with profile.lock(timeout=30):
        for done in recover.recover(profile):
            traces[" ".join(w for w in done.split() if "/" not in w)] += 1
        entries = database.read(profile.index)  # parses
        next_serial = int(profile.serial.read_text(), 16)
        for entry in entries:
            assert entry.serial_int < next_serial
            if entry.flag == "V":
                cert = load_cert(profile.newcert_path(entry.serial))
                assert cert.serial_number == entry.serial_int
        # Only journals that owe a revocation stay, stripped to the journal (no key).
        owed = {o.work for o in journal.pending(profile)}
        assert set(profile.dir.glob(".certwiz-*")) == owed
        for work in owed:
            assert {p.name for p in work.iterdir()} <= set(journal.FILES)
        assert check.verify_profile(profile).problems == []


def assert_settled(profile: Profile) -> None:
    """After a command ran to completion: fully consistent, every revocation published."""
    report = check.verify_profile(profile)
    assert report.ok, report
    revoked = {e.serial_int for e in database.read(profile.index) if e.flag == "R"}
    assert revoked <= {r.serial_number for r in crl_is_valid(profile)}
    for entry in database.read(profile.index):
        if entry.status() == "valid":
            name = str(entry.common_name)
            signed = profile.newcert_path(entry.serial).read_bytes()
            if profile.cert_path(name).exists():
                assert profile.cert_path(name).read_bytes() == signed
                continue
            # Killed after signing, before its key was delivered: never paired with another
            # key (issue 13 item 14), and the journal had it withdrawn (attack r1 item 6).
            raise AssertionError(f"{entry.serial} of {name} is valid and was never delivered")
    assert not list(profile.dir.glob(".certwiz-*"))


def calibrate(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def ca_of(profile: Profile) -> x509.Certificate:
    return load_cert(profile.ca_cert)


def entries_named(profile: Profile, name: str) -> list[database.Entry]:
    return [e for e in database.read(profile.index) if str(e.common_name) == name]


def issued_state(profile: Profile, name: str, finished: bool) -> str:
    """After a killed `client issue NAME` and recovery: exactly all or nothing.

    "absent": no index line, no certificate, key, bundle or request of NAME, no serial
    used. "issued": one valid index line whose newcerts/ copy is a certificate for
    CN=NAME signed by the CA (checked with cryptography), delivered (issued/NAME.crt
    is that copy, private/NAME.key its key, private/NAME.p12 that key and certificate).
    "withdrawn": signed, killed before its delivery committed: revoked
    (cessationOfOperation, on the CRL) by the next change, no file of NAME installed.
    A run that finished before the kill must be "issued" and delivered.
    """
    found = entries_named(profile, name)
    files = [profile.cert_path(name), profile.key_path(name), profile.p12_path(name),
             profile.csr_path(name)]  # fmt: skip
    if not found:
        assert not finished, f"{name} finished but is not in the index"
        assert not [f for f in files if f.exists()], name
        return "absent"
    (entry,) = found
    if entry.flag == "R":  # signed, never delivered: the journal had it withdrawn
        assert not finished, f"{name} finished but was withdrawn"
        assert entry.reason == "cessationOfOperation", entry
        assert entry.serial_int in {r.serial_number for r in crl_is_valid(profile)}
        assert not [f for f in files if f.exists()], name
        return "withdrawn"
    assert entry.flag == "V", entry
    signed = load_cert(profile.newcert_path(entry.serial))
    assert signed.serial_number == entry.serial_int
    assert signed.subject.rfc4514_string() == f"CN={name}"
    signed.verify_directly_issued_by(ca_of(profile))
    if profile.key_path(name).exists():  # whatever was installed is this certificate's key
        key = serialization.load_pem_private_key(profile.key_path(name).read_bytes(), None)
        assert key.public_key() == signed.public_key()
    if profile.p12_path(name).exists():
        p12_key, p12_cert, _ = pkcs12.load_key_and_certificates(
            profile.p12_path(name).read_bytes(), b""
        )
        assert p12_cert == signed and p12_key is not None
        assert p12_key.public_key() == signed.public_key()
    assert load_cert(profile.cert_path(name)) == signed  # a valid one is delivered whole
    assert profile.key_path(name).exists() and profile.p12_path(name).exists()
    return "issued"


def revoked_state(profile: Profile, name: str, serial: int, finished: bool) -> str:
    """After a killed `revoke --purge NAME` and the next change: exactly one of
    "valid" (untouched: its line V, not on the CRL, key and bundle in place) or
    "revoked" (its line R with a revocation date, on the CA-signed CRL; a finished run
    also purged key and bundle)."""
    (entry,) = [e for e in entries_named(profile, name) if e.serial_int == serial]
    on_crl = serial in {r.serial_number for r in crl_is_valid(profile)}
    if entry.flag == "V":
        assert not finished, f"{name} finished but is still valid"
        assert not on_crl
        assert profile.key_path(name).exists() and profile.p12_path(name).exists()
        return "valid"
    assert entry.flag == "R", entry
    assert on_crl, f"{name} revoked but not on the CRL"
    if finished:
        assert not profile.key_path(name).exists() and not profile.p12_path(name).exists()
    return "revoked"


def crl_number(profile: Profile) -> int:
    crl = crl_is_valid(profile)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def crl_state(profile: Profile, before: int, finished: bool) -> str:
    """After a killed `crl gen`: crl.pem is the old CRL or the next one, whole and
    CA-signed, listing exactly the index's revoked serials; never anything between."""
    number = crl_number(profile)
    assert number in (before, before + 1), (before, number)
    assert not finished or number == before + 1
    crl = crl_is_valid(profile)
    assert crl.issuer == ca_of(profile).subject
    revoked = {e.serial_int for e in database.read(profile.index) if e.flag == "R"}
    assert {r.serial_number for r in crl} == revoked
    return "old CRL" if number == before else "new CRL"


def test_random_sigkill_during_issue_revoke_and_crl_gen(home: Path) -> None:
    profile = ca.init("crashy", home)
    rng = random.Random(1234)
    traces: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    landed = 0
    counter = iter(range(10**6))

    def client() -> str:
        return f"c{next(counter)}"

    span = calibrate(lambda: issue.issue_client(profile, client())) * 1.3
    for _ in range(ISSUE_TRIALS):
        name = client()
        hit = killed_after(lambda n=name: issue.issue_client(profile, n), rng.uniform(0, span))
        landed += hit
        assert_consistent(profile, traces)
        issue.issue_client(profile, client())  # the next command succeeds
        assert_settled(profile)
        outcomes["issue: " + issued_state(profile, name, finished=not hit)] += 1

    valid = [e.common_name for e in database.read(profile.index) if e.status() == "valid"]
    valid = [n for n in valid if profile.cert_path(str(n)).exists()]  # delivered ones
    while len(valid) < 2 * REVOKE_TRIALS + 1:  # kills that left few delivered: top up
        valid.insert(0, issue.issue_client(profile, client()).name)
    span = calibrate(lambda: revoke.revoke(profile, name=valid.pop())) * 1.3
    for _ in range(REVOKE_TRIALS):
        victim, survivor = str(valid.pop()), valid.pop()
        (serial,) = [e.serial_int for e in entries_named(profile, victim) if e.flag == "V"]
        hit = killed_after(
            lambda v=victim: revoke.revoke(profile, name=v, purge=True), rng.uniform(0, span)
        )
        landed += hit
        assert_consistent(profile, traces)
        revoke.revoke(profile, name=survivor)
        assert_settled(profile)
        outcomes["revoke: " + revoked_state(profile, victim, serial, finished=not hit)] += 1

    span = calibrate(lambda: revoke.generate_crl(profile)) * 1.3
    for _ in range(CRL_TRIALS):
        before = crl_number(profile)
        hit = killed_after(lambda: revoke.generate_crl(profile), rng.uniform(0, span))
        landed += hit
        assert_consistent(profile, traces)
        outcomes["crl: " + crl_state(profile, before, finished=not hit)] += 1
        revoke.generate_crl(profile)
        assert_settled(profile)
        assert crl_number(profile) > before

    assert landed > 0  # at least one kill interrupted something (most do)
    assert sum(outcomes.values()) == ISSUE_TRIALS + REVOKE_TRIALS + CRL_TRIALS
    inventory.certificates(profile)  # list still works
    print(
        f"\n{landed} of {ISSUE_TRIALS + REVOKE_TRIALS + CRL_TRIALS} kills landed; "
        f"outcomes: {dict(outcomes)}; traces recovered: {dict(traces)}"
    )


def test_sigkill_of_the_real_cli(home: Path) -> None:
    """The same through `python -m certwiz`: interpreter start, parsing, then the work."""
    profile = ca.init("clicrash", home)
    env = clean_env(home)
    rng = random.Random(99)
    for trial in range(CLI_TRIALS):
        argv = [
            sys.executable,
            "-m",
            "certwiz",
            "client",
            "issue",
            "-p",
            "clicrash",
            "-n",
            f"k{trial}",
            "-u",
        ]
        if trial % 3 == 2:
            argv = [
                sys.executable,
                "-m",
                "certwiz",
                "revoke",
                "-p",
                "clicrash",
                "-n",
                f"k{trial - 1}",
            ]
        proc = subprocess.Popen(
            argv,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.1, 0.8))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert_consistent(profile, Counter())
        done = subprocess.run(
            [*argv[:3], "crl", "gen", "-p", "clicrash"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert_settled(profile)
        finished = proc.returncode == 0  # -9: the kill landed first
        if trial % 3 != 2:
            issued_state(profile, f"k{trial}", finished)
            continue
        target = entries_named(profile, f"k{trial - 1}")
        assert len(target) <= 1 and {e.flag for e in target} <= {"V", "R"}
        on_crl = {r.serial_number for r in crl_is_valid(profile)}
        for entry in target:  # revoked exactly when on the CA-signed CRL
            assert (entry.flag == "R") == (entry.serial_int in on_crl)
            assert not finished or entry.flag == "R"


# The exact states a kill inside `openssl ca` leaves: it writes NAME.new, then
# renames NAME -> NAME.old and NAME.new -> NAME (apps/ca.c rotate_index/serial).


@pytest.mark.parametrize("base", ["index.txt", "index.txt.attr", "serial", "crlnumber"])
def test_killed_between_openssl_renames(cli, profile: Profile, base: str) -> None:
    issue.issue_client(profile, "first")
    path = profile.dir / base
    shutil.copy(path, path.with_name(base + ".new"))
    os.replace(path, path.with_name(base + ".old"))
    shown = cli("check", "-p", "my-app")  # explains, and leaves the repair to the next change
    assert shown.returncode == 4
    assert "interrupted openssl ca; the next change restores it" in shown.stderr
    issue.issue_client(profile, "second")
    assert_settled(profile)
    assert len(database.read(profile.index)) == 2


def test_stale_new_and_old_files_do_not_matter(profile: Profile) -> None:
    issue.issue_client(profile, "first")
    (profile.dir / "index.txt.new").write_text("garbage\n")
    (profile.dir / "serial.new").write_text("zz\n")
    issue.issue_client(profile, "second")
    assert_settled(profile)


def test_leftover_scratch_dir_with_a_key_is_removed(profile: Profile) -> None:
    scratch = profile.dir / ".certwiz-dead1234"
    scratch.mkdir(mode=0o700)
    (scratch / "key.pem").write_text("a private key of a killed run\n")
    (profile.dir / ".crl.pem.xyz.tmp").write_text("half a crl")
    issue.issue_client(profile, "after")
    assert not scratch.exists()
    assert not (profile.dir / ".crl.pem.xyz.tmp").exists()
    records = (profile.dir / "audit.log").read_text().splitlines()
    assert "removed stale scratch directory" in records[-1]


def test_certificate_signed_but_never_installed_is_recovered(cli, profile: Profile) -> None:
    issue.issue_client(profile, "lost")
    profile.cert_path("lost").unlink()  # killed after openssl ca, before the install
    profile.key_path("lost").unlink()
    result = cli("crl", "gen", "-p", "my-app")
    assert result.returncode == 0, result.stderr
    assert (
        profile.cert_path("lost").read_bytes()
        == profile.newcert_path(database.read(profile.index)[0].serial).read_bytes()
    )
    again = cli("client", "issue", "-p", "my-app", "-n", "lost", "-u")
    assert again.returncode == 2  # its key is gone: revoke it first, as the message says
    assert "revoke it first" in again.stderr
    assert cli("revoke", "-p", "my-app", "-n", "lost").returncode == 0
    assert cli("client", "issue", "-p", "my-app", "-n", "lost", "-u").returncode == 0


def test_leftover_of_killed_init_does_not_block_init(cli, home: Path) -> None:
    home.mkdir(parents=True)
    (home / ".fresh.init-abcd").mkdir()
    (home / ".fresh.init-abcd" / "serial").write_text("01\n")
    result = cli("ca", "init", "-p", "fresh")
    assert result.returncode == 0, result.stderr
    assert check.verify_profile(Profile("fresh", home)).ok


def test_a_killed_init_leaves_no_ca_key_behind(cli, home: Path) -> None:
    """Issue 13 item 13: a SIGKILLed `ca init` left HOME/.NAME.init-*/private/ca.key for
    ever. The next `ca init` in that home removes every leftover no live run holds."""
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_INIT, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None and killed.stdout.readline().strip() == "populated"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    leftovers = list(home.glob(".*.init-*"))
    assert [p.name.split(".init-")[0] for p in leftovers] == [".gone"]
    assert (leftovers[0] / "private" / "ca.key").is_file()  # the case being tested
    live = home / ".busy.init-live"
    (live / "private").mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a run still building its profile
    try:
        result = cli("ca", "init", "-p", "fresh")
        assert result.returncode == 0, result.stderr
        assert not leftovers[0].exists()
        assert live.is_dir()
    finally:
        os.close(fd)
    assert sorted(p.name for p in home.iterdir()) == [".busy.init-live", "fresh"]


KILLED_INIT = """
import sys
from certwiz import ca
real = ca._populate
def populate(work, *args):
    real(work, *args)
    print("populated", flush=True)
    import time; time.sleep(600)
ca._populate = populate
ca.init("gone", sys.argv[1])
"""


def _killed_in_delivery(profile: Profile, name: str, after: int) -> None:
    """`client issue` SIGKILLed after signing, once `after` of its files are installed."""
    pid = os.fork()
    if pid == 0:
        try:
            real, count = journal.install, [0]

            def install(src: Path, dst: Path, mode: int) -> None:
                if count[0] == after:
                    os.kill(os.getpid(), signal.SIGKILL)
                count[0] += 1
                real(src, dst, mode)

            journal.install = install  # type: ignore[assignment]
            issue.issue_client(profile, name)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"


@pytest.mark.parametrize("after", [0, 2, 3])  # nothing / key+csr / key+csr+bundle installed
def test_a_delivery_killed_midway_never_pairs_a_certificate_with_another_key(
    profile: Profile, after: int
) -> None:
    """Issue 13 item 14, first suspicion: a killed `client issue` after signing had its
    certificate restored as issued/NAME.crt whatever key lay next to it. Now recovery
    installs it only when reqs/NAME.csr (installed after the key) holds its public key."""
    issue.issue_client(profile, "bot")
    revoke.revoke(profile, name="bot")
    profile.cert_path("bot").unlink()  # e.g. tidied away by an operator: nothing to keep
    _killed_in_delivery(profile, "bot", after)
    issue.issue_client(profile, "other")  # the next change runs recovery
    crt = profile.cert_path("bot")
    if crt.exists():
        cert = load_cert(crt)
        csr = x509.load_pem_x509_csr(profile.csr_path("bot").read_bytes())
        assert cert.public_key() == csr.public_key()
        key = serialization.load_pem_private_key(profile.key_path("bot").read_bytes(), None)
        assert key.public_key() == cert.public_key()
    assert after < 3 or crt.exists()  # a delivery that got as far as the CSR is completed


def test_a_kill_while_the_finished_journal_is_removed_never_withdraws(home: Path) -> None:
    """The run delivered everything, then was killed while its scratch directory was being
    removed: rmtree had taken delivery.json but not `signed`, and the next change withdrew
    a certificate whose files were all in place (random SIGKILL, about 1 run in 2)."""
    profile = ca.init("late-kill", home)
    real_rmtree = shutil.rmtree

    def killed_half_way(path: object, *args: object, **kwargs: object) -> None:
        work = Path(str(path))
        if work.name.startswith(journal.SCRATCH_PREFIX):
            (work / journal.DELIVERY).unlink(missing_ok=True)  # rmtree's first victim
            os.kill(os.getpid(), signal.SIGKILL)
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    pid = os.fork()
    if pid == 0:
        try:
            shutil.rmtree = killed_half_way  # type: ignore[assignment]
            issue.issue_client(profile, "late")
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    issue.issue_client(profile, "next")  # the next change runs recovery and upkeep
    assert issued_state(profile, "late", finished=True) == "issued"
