"""certwiz agent without a server: when it renews, what it refuses, what it never leaves.

The renewal and enrollment themselves run against real NGINX and `certwiz serve` in
test_est_e2e.py; here only what needs no server (one CA for the module, in process).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certwiz import fsutil
from certwiz.api import CA
from certwiz.der import spki_of as spki
from certwiz.errors import CertwizError, InputError
from certwiz.est import agent, pending, transport, verify
from certwiz.est.device import new_key_and_csr, read_bundle
from certwiz.openssl import Secret
from certwiz.profile import Profile
from tests.conftest import run_certwiz
from tests.nginx_support import secret_file
from tests.security.test_secrets import WRAPPER


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device directory: ca.crt, bot.p12 (1 day, -u) and pw.p12 (modern, a password)."""
    base = tmp_path_factory.mktemp("agent")
    CA.create("app", base / "certs", unencrypted=True)
    lib = CA.open("app", base / "certs")
    lib.issue_client("bot", days="1", unencrypted=True)
    lib.issue_client("pw", days="1", bundle_passphrase=Secret("s3cret-pw"), p12_format="modern")
    dev = base / "device"
    dev.mkdir()
    prof = base / "certs" / "app"
    for src, dst in (("ca.crt", "ca.crt"), ("private/bot.p12", "bot.p12"),
                     ("private/pw.p12", "pw.p12")):  # fmt: skip
        (dev / dst).write_bytes((prof / src).read_bytes())
    os.chmod(dev / "bot.p12", 0o600)
    return dev


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_fresh_certificate_is_not_due_and_nothing_changes(device: Path) -> None:
    before = (device / "bot.p12").read_bytes()
    done = agent.renew(
        f"https://127.0.0.1:{closed_port()}", device / "bot.p12", device / "ca.crt",
        password=None,
    )  # fmt: skip
    assert (done.renewed, done.reason) == (False, "not due")
    cert = read_bundle(device / "bot.p12", None).cert
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    due = cert.not_valid_after_utc - lifetime / 3
    assert done.renew_at == f"{due:%Y-%m-%dT%H:%M:%SZ}"
    assert (device / "bot.p12").read_bytes() == before


def test_due_means_less_than_before_of_the_lifetime_left(device: Path) -> None:
    cert = read_bundle(device / "bot.p12", None).cert
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    when = agent.schedule(cert, agent.check_before("25%"), start)
    assert not when.due(end - timedelta(hours=6, seconds=1))
    assert when.due(end - timedelta(hours=6))
    assert agent.check_before("1/3") == pytest.approx(1 / 3)


def test_a_down_server_is_exit_1_and_the_bundle_stays(device: Path) -> None:
    before = (device / "bot.p12").read_bytes()
    result = run_certwiz(
        device, "agent", "renew", "--url", f"https://127.0.0.1:{closed_port()}",
        "--p12", str(device / "bot.p12"), "--ca", str(device / "ca.crt"), "-u", "--force",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("certwiz: error: cannot reach https://127.0.0.1:")
    assert len(result.stderr.splitlines()) == 1
    assert (device / "bot.p12").read_bytes() == before
    # no scratch directory left behind; the pending renewal (its encrypted new key and
    # CSR) stays for the next run, which sends the same key
    names = sorted(p.name for p in device.iterdir())
    assert names == [".bot.p12.pending", "bot.p12", "ca.crt", "pw.p12"]
    pending.discard(pending.dir_of(device / "bot.p12"))  # the module's other tests


def test_one_agent_at_a_time_per_bundle_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundle lock is a flock on the directory (fsutil.flock_by, as the profile lock's
    loop): while one agent holds it another is refused after LOCK_WAIT; released, taken."""
    p12, other = tmp_path / "bot.p12", os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with agent._bundle_lock(p12):
            assert not fsutil.flock_by(other, time.monotonic())
        monkeypatch.setattr(agent, "LOCK_WAIT", 0)
        fcntl.flock(other, fcntl.LOCK_EX)  # another agent
        held = re.escape(f"another agent holds {tmp_path} (waited 0s)")
        with pytest.raises(CertwizError, match=held), agent._bundle_lock(p12):
            pass
        fcntl.flock(other, fcntl.LOCK_UN)
        with agent._bundle_lock(p12):
            assert not fsutil.flock_by(other, time.monotonic())
        assert fsutil.flock_by(other, time.monotonic())  # released with its descriptor
    finally:
        os.close(other)
    assert sorted(tmp_path.iterdir()) == []  # no lock file left


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"url": "http://127.0.0.1:1"}, "url"),
        ({"url": "https://127.0.0.1:1/est"}, "url"),
        ({"url": "https://user@127.0.0.1:1"}, "url"),
        ({"before": "0"}, "before"),
        ({"before": "1.5"}, "before"),
        ({"before": "a third"}, "before"),
        ({"p12": "pw.p12"}, "p12-passphrase-file"),  # a password, none given
        ({"p12": "ca.crt"}, "p12"),  # not a bundle
        ({"p12": "missing.p12"}, "p12"),
        ({"ca": "bot.p12"}, "ca"),
        ({"ca": "missing.crt"}, "ca"),
        ({"server_ca": "bot.p12"}, "server-ca"),
        ({"server_ca": "missing.crt"}, "server-ca"),
    ],
)
def test_bad_input_changes_nothing(device: Path, given: dict[str, str], field: str) -> None:
    call = {"url": "https://127.0.0.1:1", "p12": "bot.p12", "ca": "ca.crt", "before": "1/3",
            "server_ca": "ca.crt"}  # fmt: skip
    call.update(given)
    before = {p.name: p.read_bytes() for p in device.iterdir()}
    with pytest.raises(InputError) as raised:
        agent.renew(call["url"], device / call["p12"], device / call["ca"], password=None,
                    before=call["before"], force=True,
                    server_ca=device / call["server_ca"])  # fmt: skip
    assert raised.value.field == field
    assert {p.name: p.read_bytes() for p in device.iterdir()} == before


def test_bad_input_on_the_command_line_is_one_line_exit_2(device: Path) -> None:
    result = run_certwiz(
        device, "agent", "renew", "--url", "http://127.0.0.1:1", "--p12", "bot.p12",
        "--ca", "ca.crt", "-u", cwd=device,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("certwiz: error: url: 'http://127.0.0.1:1' must be https://")
    assert len(result.stderr.splitlines()) == 1


def test_a_password_opens_the_bundle_from_a_file(device: Path, tmp_path: Path) -> None:
    pw = secret_file(tmp_path / "pw", "s3cret-pw\n")
    result = run_certwiz(
        device, "agent", "renew", "--url", "https://127.0.0.1:1", "--p12", "pw.p12",
        "--ca", "ca.crt", "--p12-passphrase-file", str(pw), "--json", cwd=device,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"reason": "not due"' in result.stdout


def test_the_request_copies_any_subject_and_the_new_key_is_encrypted(tmp_path: Path) -> None:
    subject = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "a/b+c\\d"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "bot=07 ü"),
                ]
            ),
        ]
    )
    key, _secret, csr_der, _spki = new_key_and_csr(tmp_path, "ec:P-256", subject)
    csr = x509.load_der_x509_csr(csr_der)
    assert csr.subject == subject and csr.is_signature_valid
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert not list(csr.extensions)


def test_a_pending_renewal_is_kept_encrypted_until_done_and_dropped_when_stale(
    device: Path, tmp_path: Path
) -> None:
    """The new key and CSR outlive a failed run (a retry must send the same key: the
    service gives the certificate it signed back only for that key), encrypted under a
    passphrase derived from the bundle's key; a bundle replaced meanwhile drops them."""
    dev = tmp_path / "dev"
    dev.mkdir(mode=0o700)
    bundle = dev / "bot.p12"
    shutil.copy(device / "bot.p12", bundle)
    current = read_bundle(bundle, None)
    begun = pending.begin(bundle, current)
    where = pending.dir_of(bundle)
    assert where.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in where.iterdir()) == ["new.key", "req.csr", "state.json"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in where.iterdir())
    assert b"ENCRYPTED PRIVATE KEY" in begun.key.read_bytes()
    assert sorted(p.name for p in dev.iterdir()) == [".bot.p12.pending", "bot.p12"]

    # a run that fails (the server down), due or not, keeps it for the next one
    for force in (True, False):
        with pytest.raises(CertwizError, match="cannot reach"):
            agent.renew(f"https://127.0.0.1:{closed_port()}", bundle, device / "ca.crt",
                        password=None, force=force)  # fmt: skip
    again = pending.load(bundle, current)
    assert again is not None and again.resumed
    assert (again.csr, again.spki) == (begun.csr, begun.spki)

    # one older than the certificate it was made for is stale: a new one is begun
    state = json.loads((where / "state.json").read_text())
    (where / "state.json").write_text(json.dumps(state | {"created": "2000-01-01T00:00:00Z"}))
    assert pending.load(bundle, current) is None and not where.exists()
    pending.begin(bundle, current)

    # a killed run's leftovers go; a bundle with another key (re-issued) drops it
    for leftover in (".bot.p12.pending-x1y2", ".bot.p12.work-z3"):
        (dev / leftover).mkdir(mode=0o700)
        (dev / leftover / "new.key").write_bytes(b"half")
    other = read_bundle(device / "pw.p12", Secret("s3cret-pw"))
    assert pending.load(bundle, other) is None
    assert sorted(p.name for p in dev.iterdir()) == ["bot.p12"]

    # a symlink in its place is removed, never followed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    where.symlink_to(elsewhere)
    assert pending.load(bundle, current) is None
    assert not where.is_symlink() and (elsewhere / "keep").exists()


def test_enroll_refuses_an_existing_out_and_a_missing_token(device: Path) -> None:
    common = ["agent", "enroll", "--url", "https://127.0.0.1:1", "--ca", "ca.crt", "-u",
              "-n", "bot"]  # fmt: skip
    result = run_certwiz(device, *common, "--out", "bot.p12", "--token", "t0k", cwd=device)
    assert (result.returncode, result.stderr.split(":")[:3]) == (
        2, ["certwiz", " error", " out"],
    ), result.stderr  # fmt: skip
    result = run_certwiz(device, *common, "--out", "new.p12", cwd=device)
    assert result.returncode == 2 and "error: token: " in result.stderr
    assert not (device / "new.p12").exists()


def test_the_token_reaches_no_openssl_child(device: Path, tmp_path: Path) -> None:
    """Key and CSR are made before the server is asked: their openssl runs see no token,
    neither in argv nor in the environment (CERTWIZ_EST_TOKEN is where a timer puts it)."""
    token = "tok-" + "7" * 40
    log, wrapper = tmp_path / "openssl.log", tmp_path / "openssl-wrapper"
    wrapper.write_text(WRAPPER.format(log=log, real=shutil.which("openssl")))
    wrapper.chmod(0o700)
    result = run_certwiz(
        device, "agent", "enroll", "--url", f"https://127.0.0.1:{closed_port()}",
        "--ca", "ca.crt", "--out", str(tmp_path / "new.p12"), "-n", "newbot", "-u",
        env={"CERTWIZ_EST_TOKEN": token, "CERTWIZ_OPENSSL": str(wrapper)}, cwd=device,
    )  # fmt: skip
    assert result.returncode == 1 and "cannot reach" in result.stderr, result.stderr
    seen = log.read_text()
    assert "arg genpkey" in seen and "arg req" in seen
    assert token not in seen + result.stdout + result.stderr
    assert not (tmp_path / "new.p12").exists()


# ---- what the agent accepts as an answer (in process; a two-level CA) ----------------


@pytest.fixture(scope="module")
def two_level(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A root -> intermediate -> client `bot`; root.crt alone is what a device trusts."""
    base = tmp_path_factory.mktemp("two-level")
    CA.create("fleet", base / "certs", intermediate=True, unencrypted=True)
    lib = CA.open("fleet", base / "certs")
    lib.issue_client("bot", days="1", unencrypted=True)
    prof = Profile("fleet", base / "certs")
    (base / "root.crt").write_bytes(prof.ca_cert.read_bytes())  # ca.crt: the root
    return {
        "base": base,
        "root": base / "root.crt",
        "leaf": x509.load_pem_x509_certificate((prof.issued / "bot.crt").read_bytes()),
        "intermediate": x509.load_pem_x509_certificate(
            (prof.dir / "intermediate.crt").read_bytes()
        ),
    }


def _verify(two_level: dict[str, Any], tmp_path: Path, certs: list[Any], extra: list[Any],
            **change: Any) -> verify.Verified:  # fmt: skip
    leaf = two_level["leaf"]
    given: dict[str, Any] = {"spki": spki(leaf), "subject": leaf.subject,
                             "ca": two_level["root"], "now": datetime.now(UTC),
                             "current": leaf}  # a renewal of bot  # fmt: skip
    given.update(change)
    return verify.check(certs, extra, given["spki"], given["subject"], given["ca"], tmp_path,
                         given["now"], given["current"])  # fmt: skip


def test_the_answer_verifies_through_its_intermediate_or_cacerts(
    two_level: dict[str, Any], tmp_path: Path
) -> None:
    leaf, middle = two_level["leaf"], two_level["intermediate"]
    for certs, extra in (([leaf, middle], []), ([middle, leaf], []), ([leaf], [middle])):
        got = _verify(two_level, tmp_path, certs, extra)
        assert got.leaf == leaf
        assert middle in got.chain and leaf not in got.chain  # the bundle gets the chain
    with pytest.raises(transport.AnswerRejected, match="does not verify"):  # then cacerts is asked
        _verify(two_level, tmp_path, [leaf], [])


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("another key", "no certificate for the new key"),
        ("another subject", "is for 'CN=bot', not 'CN=mallory'"),
        ("not yet", "not now"),
        ("expired", "not now"),
        ("a CA", "is a CA certificate"),
        ("another CA", "does not verify"),
        ("an enrollment trusting the root alone", "not directly by a certificate in"),
    ],
)
def test_an_answer_the_device_must_not_take(
    two_level: dict[str, Any], device: Path, tmp_path: Path, case: str, says: str
) -> None:
    leaf, middle = two_level["leaf"], two_level["intermediate"]
    certs, change = [leaf, middle], {}
    if case == "another key":
        certs, change = [leaf], {"spki": spki(middle)}
    elif case == "another subject":
        change = {"subject": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])}
    elif case == "not yet":
        change = {"now": leaf.not_valid_before_utc - timedelta(hours=1)}
    elif case == "expired":
        change = {"now": leaf.not_valid_after_utc}
    elif case == "a CA":
        change = {"spki": spki(middle), "subject": middle.subject}
    elif case.startswith("an enrollment"):  # its CA must be IN --ca: chain.pem, not the root
        change = {"current": None}
    else:
        change = {"ca": device / "ca.crt"}  # the profile "app": not this leaf's CA
    with pytest.raises(transport.AnswerRejected, match=says):
        _verify(two_level, tmp_path, certs, [], **change)


def test_no_password_is_asked_before_the_input_is_checked(device: Path) -> None:
    def never() -> Secret | None:
        raise AssertionError("asked for a password before checking the input")

    with pytest.raises(InputError) as raised:
        agent.renew("http://127.0.0.1:1", device / "bot.p12", device / "ca.crt", password=never)
    assert raised.value.field == "url"
    with pytest.raises(InputError) as raised:
        agent.enroll("https://127.0.0.1:1", "t0k", device / "ca.crt", device / "bot.p12",
                     password=never, name="bot")  # fmt: skip
    assert raised.value.field == "out"
    with pytest.raises(InputError) as raised:  # no -u and no password: refused before any key
        agent.enroll("https://127.0.0.1:1", "t0k", device / "ca.crt", device / "new.p12",
                     password=None, name="bot")  # fmt: skip
    assert raised.value.field == "p12-passphrase-file"
    assert not (device / "new.p12").exists()
