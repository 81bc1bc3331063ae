"""The whole short-lived loop, end to end: real nginx (rendered with --enroll), `certwiz
serve` as a process, and `certwiz agent` as a device runs it.

One CA, one nginx, one service for the module; each test uses its own client. The
service's refusals (revoked, expired, foreign, another name, hostile bodies) are
test_est_service.py's; here the agent's behaviour and the loop: renew, grace, CRL,
nginx; not due; two agents racing; enrollment with a token, once.

The grace is the shortest the service takes (1m); its end is reached by moving the
pending supersession's end into the past in grace.json (under the profile lock, with
the library), not by sleeping a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certwiz import database, grace
from certwiz.p12 import format_of as p12_format_of
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port, free_privileged_port, stop_pid, wait_for
from tests.conftest import clean_env, hand_sign, load_crl, openssl, run_certwiz
from tests.nginx_support import CurlResult, curl, require_curl, require_nginx, secret_file
from tests.security.test_secrets import WRAPPER

pytestmark = pytest.mark.nginx

SERVER = "myserver.local"


@dataclass
class Loop:
    home: Path
    profile: Profile
    work: Path
    port: int
    nginx: LocalNginx
    serve: subprocess.Popen[bytes]
    serve_log: Path
    serve_port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.profile.dir / "ca.crt"

    def certwiz(self, *args: str, **kwargs: Any) -> Any:
        result = run_certwiz(self.home, *args, **kwargs)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def device(self, name: str, days: str = "1") -> Path:
        """A 1-day client NAME (-u) whose bundle is copied to its own device directory."""
        self.certwiz("client", "issue", "-p", "app", "-n", name, "-d", days, "-u")
        where = self.work / f"dev-{name}"
        where.mkdir(mode=0o700)
        bundle = where / f"{name}.p12"
        bundle.write_bytes((self.profile.dir / "private" / f"{name}.p12").read_bytes())
        bundle.chmod(0o600)
        return bundle

    def agent(self, *args: str, **kwargs: Any) -> Any:
        return run_certwiz(self.home, "agent", *args, "--json", cwd=self.work, **kwargs)

    def renew_argv(self, bundle: Path, *extra: str) -> list[str]:
        return ["renew", "--url", self.url, "--p12", str(bundle), "--ca", str(self.ca), "-u",
                *extra]  # fmt: skip

    def get(self, bundle: Path, password: str = "") -> CurlResult:
        result = curl(f"{self.url}/hello", self.work, ca=self.ca, p12=bundle, password=password)
        assert result.returncode == 0, result.stderr
        return result

    def entries(self, name: str) -> list[database.Entry]:
        return [e for e in database.read(self.profile.index) if e.common_name == name]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("est-e2e")
    home = root / "certs"

    def cw(*args: str) -> None:
        result = run_certwiz(home, *args)
        assert result.returncode == 0, (args, result.stderr)

    cw("ca", "init", "-p", "app")
    cw("server", "issue", "-p", "app", "-n", SERVER, "--san", "127.0.0.1")
    est_port, port = free_privileged_port(), free_port()  # EST below 1024 (SECURITY §19)
    log = root / "serve.log"
    serve = start_serve(home, est_port, log)
    backend = EchoBackend().start()
    server: LocalNginx | None = None
    try:
        cw(
            "nginx", "render", "-p", "app", "--server", SERVER,
            "--upstream", f"http://127.0.0.1:{backend.port}", "--listen", f"127.0.0.1:{port}",
            "--enroll", f"http://127.0.0.1:{est_port}", "--out", str(root / "conf"),
        )  # fmt: skip
        server = LocalNginx(root / "nginx", root / "conf" / "mtls_proxy.conf")
        server.start()
        loop = Loop(home, Profile("app", home), root, port, server, serve, log, est_port)
        yield loop
        serve = loop.serve  # a test may have restarted it
    finally:
        if server is not None:
            server.stop()
        stop_serve(serve)
        backend.stop()


def start_serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`certwiz serve` as systemd would run it, its log appended to LOG; ready when it listens."""
    env = clean_env(home)
    with open(log, "ab") as handle:
        serve = subprocess.Popen(
            [sys.executable, "-m", "certwiz", "serve", "-p", "app",
             "--listen", f"127.0.0.1:{port}", "--grace", "1m"],
            stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=home.parent,
        )  # fmt: skip
    try:
        wait_for(lambda: _listening(port) or serve.poll() is not None, "certwiz serve")
        assert serve.poll() is None, log.read_text()
    except BaseException:
        stop_serve(serve)
        raise
    return serve


def stop_serve(serve: subprocess.Popen[bytes]) -> None:
    if serve.poll() is None:
        stop_pid(serve.pid, signal.SIGTERM)
    serve.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _open(bundle: Path) -> pkcs12.PKCS12KeyAndCertificates:
    return pkcs12.load_pkcs12(bundle.read_bytes(), None)


def _public(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        obj.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _end_grace(profile: Profile, serial: str) -> None:
    """What a minute of waiting would do: the pending supersession of SERIAL ends now."""
    with profile.lock():
        pending = grace.read(profile)
        pending[serial] = replace(pending[serial], until=datetime.now(UTC) - timedelta(seconds=1))
        grace.write(profile, pending)


def test_a_one_day_certificate_renews_and_the_old_one_dies_after_the_grace(loop: Loop) -> None:
    bundle = loop.device("bot")
    old = _open(bundle)
    assert old.cert is not None and old.key is not None
    stale = loop.work / "bot-old.p12"
    stale.write_bytes(bundle.read_bytes())
    assert loop.get(bundle).status == 200
    owner = (65534, 65534)  # the bot's user (nobody); the agent runs as root, from systemd
    if os.geteuid() == 0:
        os.chown(bundle, *owner)

    # --before 1: due as soon as any of the lifetime is gone
    result = loop.agent(*loop.renew_argv(bundle, "--before", "1"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["renewed"] is True

    new = _open(bundle)  # the same (empty) password
    assert new.cert is not None and new.key is not None
    cert, old_cert = new.cert.certificate, old.cert.certificate
    assert cert.serial_number != old_cert.serial_number
    assert f"{cert.serial_number:X}".zfill(len(report["serial"])) == report["serial"]
    assert cert.subject == old_cert.subject
    assert _public(cert) == _public(new.key) != _public(old.key)  # a new key, and it matches
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(loop.ca.read_bytes()))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == old_cert.not_valid_after_utc - old_cert.not_valid_before_utc
    assert p12_format_of(bundle) == p12_format_of(stale) == "compat"  # its format kept
    assert bundle.stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        assert (bundle.stat().st_uid, bundle.stat().st_gid) == owner  # still the bot's
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["bot.p12"]  # no leftovers
    valid = [e for e in loop.entries("bot") if e.flag == "V"]
    assert sorted(e.serial_int for e in valid) == sorted(
        [cert.serial_number, old_cert.serial_number]
    )  # the old one lives on for the grace

    assert loop.get(bundle).status == 200
    assert loop.get(stale).status == 200  # within the grace
    # a stale copy of the bundle cannot renew again: refused (5), not "try again" (1)
    copy = stale.read_bytes()
    result = loop.agent(*loop.renew_argv(stale, "--before", "1"))
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith(f"certwiz: error: simplereenroll: refused by {loop.url} (4")
    assert len(result.stderr.splitlines()) == 1
    assert stale.read_bytes() == copy
    assert len(loop.entries("bot")) == 2
    old_serial = next(e.serial for e in valid if e.serial_int == old_cert.serial_number)
    assert old_serial in grace.read(loop.profile)

    _end_grace(loop.profile, old_serial)
    loop.certwiz("crl", "gen", "-p", "app", "--reload", "--nginx-cmd", loop.nginx.command)
    revoked = load_crl(loop.profile.dir / "crl.pem").get_revoked_certificate_by_serial_number(
        old_cert.serial_number
    )
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.superseded
    )
    assert loop.get(stale).status == 400
    assert loop.get(bundle).status == 200


def test_a_certificate_with_more_than_a_cn_is_refused_before_anything_is_signed(
    loop: Loop,
) -> None:
    """Attack round 12, F4: a hand-signed /O=Acme/CN=hand-01 bundle. The service signed
    CN=hand-01, the agent (rightly) refused a certificate for another subject, and the
    old one, put in its grace, was revoked later: the device locked out. Now the service
    refuses with 403 before signing: nothing signed, no grace, the bundle unchanged and
    still admitted, the agent's one line says why (exit 5: re-enroll)."""
    where = loop.work / "dev-hand-01"
    where.mkdir(mode=0o700)
    crt = hand_sign(loop.profile.cnf, where / "made", "hand-01", "-extensions", "client_ext",
                    subj="/O=Acme/CN=hand-01")  # fmt: skip
    bundle = where / "hand-01.p12"
    openssl("pkcs12", "-export", "-in", str(crt), "-inkey", str(where / "made" / "hand-01.key"),
            "-passout", "pass:", "-out", str(bundle))  # fmt: skip
    shutil.rmtree(where / "made")
    assert loop.get(bundle).status == 200
    before, index = bundle.read_bytes(), (loop.profile.dir / "index.txt").read_bytes()
    pending = dict(grace.read(loop.profile))
    result = loop.agent(*loop.renew_argv(bundle, "--before", "1"))
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith(f"certwiz: error: simplereenroll: refused by {loop.url} (403")
    assert "more in its subject than CN=hand-01" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert bundle.read_bytes() == before
    assert (loop.profile.dir / "index.txt").read_bytes() == index  # nothing signed
    assert grace.read(loop.profile) == pending  # and nothing superseded
    assert loop.get(bundle).status == 200


def test_not_due_does_nothing(loop: Loop) -> None:
    bundle = loop.device("idle")
    before, index = bundle.read_bytes(), (loop.profile.dir / "index.txt").read_bytes()
    result = loop.agent(*loop.renew_argv(bundle))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["renewed"], report["reason"]) == (False, "not due")
    cert = x509.load_pem_x509_certificate((loop.profile.dir / "issued" / "idle.crt").read_bytes())
    due = cert.not_valid_after_utc - (cert.not_valid_after_utc - cert.not_valid_before_utc) / 3
    assert report["renew_at"] == f"{due:%Y-%m-%dT%H:%M:%SZ}"
    assert bundle.read_bytes() == before
    assert (loop.profile.dir / "index.txt").read_bytes() == index


# An agent that starts when told: both racers have loaded certwiz and wait for one file, so
# they check the bundle at the same moment (with --before 1 a racer that started after the
# other had finished would find the renewed bundle due again, and rightly renew it).
AT_THE_SIGNAL = """
import os, sys, time
from certwiz.cli import app
go = sys.argv.pop(1)
open(f"{go}.ready-{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
app(sys.argv[1:], prog_name="certwiz")
"""


def test_two_agents_racing_on_one_bundle_make_one_certificate(loop: Loop) -> None:
    bundle = loop.device("racer")
    env = clean_env()
    go = loop.work / "racers-go"
    argv = [sys.executable, "-c", AT_THE_SIGNAL, str(go), "agent",
            *loop.renew_argv(bundle, "--before", "1"), "--json"]  # fmt: skip
    racers = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    wait_for(lambda: len(list(loop.work.glob("racers-go.ready-*"))) == 2, "both racers")
    go.touch()
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in racers]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    reports = [json.loads(out) for _, out, _ in outcomes]
    assert sorted(r["reason"] for r in reports) == ["renewed", "renewed by another run"], reports
    assert len(loop.entries("racer")) == 2  # the first one and exactly one renewal
    got = _open(bundle)
    assert got.cert is not None and got.key is not None
    assert _public(got.cert.certificate) == _public(got.key)
    assert f"{got.cert.certificate.serial_number:X}".zfill(len(reports[0]["serial"])) == (
        reports[0]["serial"]
    ) == reports[1]["serial"]  # fmt: skip
    assert loop.get(bundle).status == 200


# The agent as a killed device runs it: renew (forced), its bundle install replaced by a
# SIGKILL of itself, i.e. killed after the service signed and answered, before the install.
KILLED_AFTER_ANSWER = """
import os, signal, sys
from pathlib import Path
from certwiz.est import agent
agent.install = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
agent.renew(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), password=None, force=True)
"""


def test_a_renewal_killed_after_the_answer_is_completed_by_the_next_run(loop: Loop) -> None:
    bundle = loop.device("crasher")
    before = bundle.read_bytes()
    old = _open(bundle).cert
    assert old is not None
    env = clean_env()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_ANSWER, loop.url, str(bundle), str(loop.ca)],
        capture_output=True, env=env, cwd=loop.work, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert bundle.read_bytes() == before  # killed before the install: the old bundle
    assert [p.name for p in bundle.parent.glob(".crasher.p12.work-*")]  # its scratch stays
    signed = [e for e in loop.entries("crasher") if e.serial_int != old.certificate.serial_number]
    assert len(signed) == 1  # the service signed; the device never stored it

    # the next run (a timer; not due by --before: a pending renewal is finished anyway)
    result = loop.agent(*loop.renew_argv(bundle))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["renewed"], report["reason"], report["resumed"]) == (True, "resumed", True)
    assert report["serial"] == signed[0].serial  # the certificate already signed, again
    got = _open(bundle)
    assert got.cert is not None and got.key is not None
    assert got.cert.certificate.serial_number == signed[0].serial_int
    assert _public(got.cert.certificate) == _public(got.key)
    assert len(loop.entries("crasher")) == 2  # nothing issued twice
    assert loop.get(bundle).status == 200
    assert [p.name for p in bundle.parent.iterdir()] == ["crasher.p12"]  # nothing pending,
    # and the killed run's scratch directory (.crasher.p12.work-XXXX) went with it

    # and the one after that: not due, nothing pending
    result = loop.agent(*loop.renew_argv(bundle))
    assert json.loads(result.stdout)["reason"] == "not due", result.stdout


def test_enroll_with_a_token_works_once(loop: Loop) -> None:
    invite = loop.certwiz("client", "invite", "-p", "app", "-n", "newbot", "--json")
    token = json.loads(invite.stdout)["token"]
    out = loop.work / "newbot.p12"
    argv = ["enroll", "--url", loop.url, "--ca", str(loop.ca), "--out", str(out),
            "-n", "newbot", "-u"]  # fmt: skip
    # the token from the environment; every openssl the agent starts is recorded
    log, wrapper = loop.work / "openssl.log", loop.work / "openssl-wrapper"
    wrapper.write_text(WRAPPER.format(log=log, real=shutil.which("openssl")))
    wrapper.chmod(0o700)
    result = loop.agent(*argv, env={"CERTWIZ_EST_TOKEN": token, "CERTWIZ_OPENSSL": str(wrapper)})
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    got = _open(out)
    assert got.cert is not None and got.key is not None
    cert = got.cert.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "newbot"
    assert _public(cert) == _public(got.key)
    assert json.loads(result.stdout)["serial"] == next(
        e.serial for e in loop.entries("newbot") if e.flag == "V"
    )
    assert loop.get(out).status == 200
    # the token is in no child's argv or environment, no output, no log, no audit record
    seen = log.read_text()
    assert "arg genpkey" in seen and "arg req" in seen and "arg pkcs12" in seen
    for text in (seen, result.stdout, result.stderr, loop.serve_log.read_text(),
                 (loop.profile.dir / "audit.log").read_text()):  # fmt: skip
        assert token not in text

    # the same token again (now from a file): refused, nothing written, nothing issued
    token_file = secret_file(loop.work / "newbot.token", token + "\n")
    again = loop.work / "again.p12"
    argv[argv.index(str(out))] = str(again)
    result = loop.agent(*argv, "--token-file", str(token_file))
    assert result.returncode == 5, result.stderr  # refused: the token is spent
    assert result.stderr.startswith("certwiz: error: simpleenroll: refused by")
    assert len(result.stderr.splitlines()) == 1
    assert not again.exists()
    assert len(loop.entries("newbot")) == 1


def test_the_service_down_is_exit_1_and_the_certificate_keeps_working(loop: Loop) -> None:
    """A CA outage: the agent fails (1, try again), the bundle stays and keeps working; the
    first run after the service is back renews. A modern bundle with a password, kept so."""
    pw = secret_file(loop.work / "pw", "pw-of-the-bot-9\n")
    loop.certwiz("client", "issue", "-p", "app", "-n", "modern", "-d", "1", "--p12-format",
                 "modern", "--p12-passphrase-file", str(pw))  # fmt: skip
    bundle = loop.work / "modern.p12"
    bundle.write_bytes((loop.profile.dir / "private" / "modern.p12").read_bytes())
    before = bundle.read_bytes()
    argv = ["renew", "--url", loop.url, "--p12", str(bundle), "--ca", str(loop.ca),
            "--p12-passphrase-file", str(pw), "--before", "1"]  # fmt: skip

    stop_serve(loop.serve)
    result = loop.agent(*argv)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"certwiz: error: simplereenroll: {loop.url} answered 5")
    assert len(result.stderr.splitlines()) == 1
    assert bundle.read_bytes() == before
    assert loop.get(bundle, "pw-of-the-bot-9").status == 200

    loop.serve = start_serve(loop.home, loop.serve_port, loop.serve_log)
    result = loop.agent(*argv)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["renewed"] is True
    assert p12_format_of(bundle) == "modern"
    got = pkcs12.load_pkcs12(bundle.read_bytes(), b"pw-of-the-bot-9")
    assert got.cert is not None and got.key is not None
    assert _public(got.cert.certificate) == _public(got.key)
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(bundle.read_bytes(), None)  # the password stayed
    assert loop.get(bundle, "pw-of-the-bot-9").status == 200


def test_the_server_is_checked_against_server_ca_when_given(loop: Loop) -> None:
    """--server-ca is what NGINX's certificate must chain to (a public CA's, say); the
    answer is still checked against --ca. A server of another CA: exit 1, nothing done."""
    bundle = loop.device("tls")
    before = bundle.read_bytes()
    foreign = loop.work / "foreign.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(loop.work / "foreign.key"), "-subj", "/CN=Some Public CA",
            "-days", "2", "-out", str(foreign))  # fmt: skip
    result = loop.agent(*loop.renew_argv(bundle, "--force", "--server-ca", str(foreign)))
    assert result.returncode == 1, result.stderr
    assert "the server certificate does not verify against" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert bundle.read_bytes() == before
    result = loop.agent(*loop.renew_argv(bundle, "--force", "--server-ca", str(loop.ca)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["reason"], report["resumed"]) == ("forced", True)  # the failed run's key
