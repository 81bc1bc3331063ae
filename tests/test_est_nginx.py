"""The EST service end to end: `certwiz serve` as a real process behind a real NGINX
rendered with `nginx render --enroll`, and curl + openssl as the plain EST client,
running the README's commands as written. One CA, one service and one nginx for the
module. (The agent's loop against the same service is test_est_e2e.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certwiz import audit, ca, database, grace, issue, probe, revoke
from certwiz import nginx as nginx_lib
from certwiz.est import wire
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port, free_privileged_port, wait_for
from tests.conftest import REPO, certwiz_argv, clean_env, closed_by_peer, openssl, thread_count
from tests.nginx_support import CurlResult, curl, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "est.example.test"
README = REPO / "README.md"


@dataclass
class Lab:
    root: Path
    home: Path
    site: Profile
    nginx: LocalNginx
    port: int
    service: subprocess.Popen[bytes]
    service_log: Path

    @property
    def resolve(self) -> str:
        return f"{SERVER}:{self.port}:127.0.0.1"

    @property
    def est(self) -> str:
        return f"https://{SERVER}:{self.port}/.well-known/est"


def _env(home: Path) -> dict[str, str]:
    env = clean_env(home)
    return env


def start_service(
    home: Path, log: Path, *args: str, settings: dict[str, float] | None = None
) -> subprocess.Popen[bytes]:
    """`certwiz serve -p est ARGS`; SETTINGS replace constants of est/server.py first."""
    start = certwiz_argv("certwiz.est.server", settings)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, *start, "serve", "-p", "est", *args],
            env=_env(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _connectable(family: int, address: object) -> bool:
    with socket.socket(family) as sock:
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("est-e2e")
    home = root / "certs"
    site = ca.init("est", home)
    issue.issue_server(site, SERVER, sans=["127.0.0.1"])
    sock = root / "est.sock"
    log = root / "service.log"
    service = start_service(home, log, "--listen", f"unix:{sock}", "--grace", "10m")
    backend = EchoBackend().start()
    port = free_port()
    nginx_lib.render(
        site,
        SERVER,
        f"http://127.0.0.1:{backend.port}",
        listen=f"127.0.0.1:{port}",
        out=root / "conf",
        enroll=f"unix:{sock}",
    )
    server = LocalNginx(root / "nginx", root / "conf" / nginx_lib.SITE_CONF)
    try:
        wait_for(lambda: _connectable(socket.AF_UNIX, str(sock)), "certwiz serve's socket")
        server.start()
        yield Lab(root, home, site, server, port, service, log)
    finally:
        server.stop()
        backend.stop()
        code = stop(service)
    # SIGTERM: a clean stop (exit 0) that removes its socket
    assert code == 0 and not sock.exists(), log.read_text()[-2000:]


def readme_block(name: str) -> str:
    """The shell block of README.md after `<!-- est:NAME -->`."""
    text = README.read_text()
    found = re.search(rf"<!-- est:{name} -->\s*```(?:sh|bash)?\n(.*?)```", text, re.S)
    assert found, f"README.md has no est:{name} block"
    return found.group(1)


def run_readme(lab: Lab, name: str, work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a README block with bash in WORK; curl reaches SERVER at 127.0.0.1 (--resolve)."""
    prelude = f'curl() {{ command curl --resolve "{lab.resolve}" "$@"; }}\nset -eo pipefail\n'
    return subprocess.run(
        ["bash", "-c", prelude + readme_block(name)],
        cwd=work,
        env={**_env(lab.home), "EST": lab.est, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fetch(lab: Lab, work: Path, path: str, **kwargs: Any) -> CurlResult:
    """curl https://SERVER:PORT/PATH through the lab's nginx (127.0.0.1), trusting its CA."""
    url = f"https://{SERVER}:{lab.port}{path}"
    return curl(url, work, ca=lab.site.ca_cert, resolve=lab.resolve, **kwargs)


def device_key_matches(cert: x509.Certificate, key_file: Path) -> bool:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    return bool(cert.public_key().public_numbers() == key.public_key().public_numbers())  # type: ignore[union-attr]


def csr_body(work: Path, cn: str) -> Path:
    """A base64 DER CSR for /CN=cn from a new key, made by openssl as a device would."""
    key = work / f"{cn}.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    der = subprocess.run(
        ["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    body = work / f"{cn}.csr.b64"
    body.write_bytes(wire.encode_csr(der))
    return body


def certs_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_plain_client_gets_the_ca_chain(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(lab.site.ca_cert.read_bytes())
    done = run_readme(lab, "cacerts", tmp_path)
    assert done.returncode == 0, done.stderr
    assert certs_in(tmp_path / "ca-chain.pem") == certs_in(lab.site.ca_cert)


def test_plain_client_renews_with_its_certificate(lab: Lab, tmp_path: Path) -> None:
    """README: new key, CSR with the same subject, the current p12 proves who it is."""
    issue.issue_client(lab.site, "bot-01", unencrypted=True, days="1d")
    old = x509.load_pem_x509_certificate(lab.site.cert_path("bot-01").read_bytes())
    (tmp_path / "ca.crt").write_bytes(lab.site.ca_cert.read_bytes())
    (tmp_path / "bot-01.p12").write_bytes(lab.site.p12_path("bot-01").read_bytes())
    done = run_readme(lab, "renew", tmp_path)
    assert done.returncode == 0, done.stderr
    [new] = certs_in(tmp_path / "new.crt")
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert device_key_matches(new, tmp_path / "new.key")
    assert new.not_valid_after_utc - new.not_valid_before_utc == old.not_valid_after_utc - (
        old.not_valid_before_utc
    )
    new.verify_directly_issued_by(certs_in(lab.site.ca_cert)[0])
    # the new certificate gets through nginx; the old one too, during its grace
    got = fetch(
        lab,
        tmp_path,
        "/app",
        cert=tmp_path / "new.crt",
        key=tmp_path / "new.key",
    )
    assert got.status == 200, got
    got = fetch(
        lab,
        tmp_path,
        "/app",
        p12=tmp_path / "bot-01.p12",
    )
    assert got.status == 200
    pending = {int(s, 16) for s in grace.read(lab.site)}
    assert old.serial_number in pending
    # the old p12 cannot renew a second time: one renewal per certificate
    again = run_readme(lab, "renew", tmp_path)
    assert again.returncode != 0 and "409" in again.stderr
    records = [r for r in audit.read(lab.site) if r.get("command") == "est simplereenroll"]
    assert [r["result"] for r in records[-2:]] == ["ok", "refused"]


def test_plain_client_enrolls_once_with_a_token(lab: Lab, tmp_path: Path) -> None:
    invited = subprocess.run(
        [
            sys.executable,
            "-m",
            "certwiz",
            "client",
            "invite",
            "-p",
            "est",
            "-n",
            "sensor-7",
            "--ttl",
            "10m",
            "-d",
            "2d",
            "--json",
        ],
        env=_env(lab.home),
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(invited.stdout)["token"]
    (tmp_path / "ca.crt").write_bytes(lab.site.ca_cert.read_bytes())
    done = run_readme(lab, "enroll", tmp_path, TOKEN=token)
    assert done.returncode == 0, done.stderr
    [cert] = certs_in(tmp_path / "sensor-7.crt")
    assert cert.subject.rfc4514_string() == "CN=sensor-7"
    assert device_key_matches(cert, tmp_path / "sensor-7.key")
    got = fetch(
        lab,
        tmp_path,
        "/app",
        cert=tmp_path / "sensor-7.crt",
        key=tmp_path / "sensor-7.key",
    )
    assert got.status == 200
    # the token is spent: a second enrollment is refused, and the log never shows it
    again = run_readme(lab, "enroll", tmp_path, TOKEN=token)
    assert again.returncode != 0
    log = lab.service_log.read_text()
    assert token not in log and "simpleenroll" in log
    assert token not in audit.path_of(lab.site).read_text()


def test_without_a_certificate_only_cacerts_and_simpleenroll_answer(
    lab: Lab, tmp_path: Path
) -> None:
    post = ("-X", "POST")
    assert fetch(lab, tmp_path, "/").status == 400
    assert fetch(lab, tmp_path, "/app").status == 400
    reenroll = fetch(lab, tmp_path, "/.well-known/est/simplereenroll", extra=post)
    assert reenroll.status == 400 and "client certificate required" in reenroll.body
    assert fetch(lab, tmp_path, "/.well-known/est/cacerts").status == 200
    enroll = fetch(lab, tmp_path, "/.well-known/est/simpleenroll", extra=post)
    assert enroll.status == 401  # reached the service, which wants the token


def test_a_forged_certificate_header_is_replaced_by_nginx(lab: Lab, tmp_path: Path) -> None:
    """A client with its own certificate claims another's in X-Client-Cert: nginx sets the
    header from the handshake, so the service renews (here: refuses) as the real one."""
    issue.issue_client(lab.site, "mallory", unencrypted=True)
    issue.issue_client(lab.site, "victim", unencrypted=True)
    claim = urllib.parse.quote(lab.site.cert_path("victim").read_text(), safe="")
    body = csr_body(tmp_path, "victim")
    got = fetch(
        lab,
        tmp_path,
        "/.well-known/est/simplereenroll",
        p12=lab.site.p12_path("mallory"),
        headers={"X-Client-Cert": claim, "Content-Type": wire.CSR_TYPE},
        extra=("--data-binary", f"@{body}"),
    )
    assert got.status == 403 and "CN=mallory" in got.body  # seen as mallory, not victim
    victim = x509.load_pem_x509_certificate(lab.site.cert_path("victim").read_bytes())
    assert victim.serial_number not in {int(s, 16) for s in grace.read(lab.site)}


def test_revoked_before_nginx_reloads_is_refused_by_the_service(lab: Lab, tmp_path: Path) -> None:
    """nginx still holds the old CRL (no reload yet) and lets a revoked certificate in;
    the service checks index.txt itself: 403, audited, nothing issued."""
    issue.issue_client(lab.site, "late", unencrypted=True)
    p12 = tmp_path / "late.p12"
    p12.write_bytes(lab.site.p12_path("late").read_bytes())
    revoke.revoke(lab.site, name="late")  # a new CRL on disk; nginx is not reloaded
    assert fetch(lab, tmp_path, "/app", p12=p12).status == 200  # nginx: still let in
    body = csr_body(tmp_path, "late")
    lines = len(database.read(lab.site.index))
    got = fetch(
        lab,
        tmp_path,
        "/.well-known/est/simplereenroll",
        p12=p12,
        headers={"Content-Type": wire.CSR_TYPE},
        extra=("--data-binary", f"@{body}"),
    )
    assert got.status == 403 and "is revoked" in got.body
    assert len(database.read(lab.site.index)) == lines
    record = audit.read(lab.site)[-1]
    assert record["names"] == ["late"] and record["result"] == "refused"


def test_a_huge_body_is_refused_by_nginx(lab: Lab, tmp_path: Path) -> None:
    body = tmp_path / "huge"
    body.write_bytes(b"A" * 200_000)
    got = fetch(
        lab,
        tmp_path,
        "/.well-known/est/simpleenroll",
        headers={"Content-Type": wire.CSR_TYPE},
        extra=("--data-binary", f"@{body}"),
    )
    assert got.status == 413


def test_a_body_nginx_passes_but_the_service_refuses_is_one_audited_line(
    lab: Lab, tmp_path: Path
) -> None:
    """Between the service's cap and nginx's 128k, waitress answered 413 itself: a
    multi-line page and no audit record."""
    issue.issue_client(lab.site, "bulky", unencrypted=True)
    body = tmp_path / "big"
    body.write_bytes(b"A" * (wire.MAX_REQUEST_BYTES + 1000))
    before = len(audit.read(lab.site))
    got = fetch(
        lab,
        tmp_path,
        "/.well-known/est/simplereenroll",  # authenticated: the body is what is refused
        p12=lab.site.p12_path("bulky"),
        headers={"Content-Type": wire.CSR_TYPE},
        extra=("--data-binary", f"@{body}"),
    )
    assert got.status == 413
    assert got.body.count("\n") == 1 and "body larger than" in got.body, got.body
    records = audit.read(lab.site)[before:]
    assert [r["result"] for r in records] == ["refused"] and records[0]["status"] == 413


def test_probe_passes_on_the_enroll_config(lab: Lab) -> None:
    target = probe.target(f"https://{SERVER}:{lab.port}/", lab.resolve)
    report = probe.run(lab.site, target, reload=lab.nginx.reload)
    assert {c.case: c.result for c in report.cases} == dict.fromkeys(
        ("none", "valid", "foreign", "unknown-ca", "expired", "revoked", "trust"), "PASS"
    ), report.table()
    assert report.exit_code == 0


def test_tcp_service_answers_only_its_trusted_proxy_and_stops_on_sigterm(
    lab: Lab, tmp_path: Path
) -> None:
    """A forged X-Client-Cert straight to the service from 127.0.0.1 (an address it
    trusts: any local process has it) is refused: it lacks the proxy's secret."""
    port = free_privileged_port()  # below 1024: no other local user can take it first
    log = tmp_path / "tcp.log"
    proc = start_service(lab.home, log, "--listen", f"127.0.0.1:{port}", "--json")
    try:
        wait_for(lambda: _connectable(socket.AF_INET, ("127.0.0.1", port)), "certwiz serve (TCP)")
        issue.issue_client(lab.site, "direct", unencrypted=True)
        claim = urllib.parse.quote(lab.site.cert_path("direct").read_text(), safe="")
        body = csr_body(tmp_path, "direct")  # a valid request: only the secret is missing
        before = len(audit.read(lab.site))
        got = curl(
            f"http://127.0.0.1:{port}/.well-known/est/simplereenroll",
            tmp_path,
            ca=lab.site.ca_cert,
            headers={"X-Client-Cert": claim, "Content-Type": wire.CSR_TYPE},
            extra=("--data-binary", f"@{body}"),
        )
        assert got.status == 403 and "trusted proxy" in got.body
        assert [e.common_name for e in database.read(lab.site.index)].count("direct") == 1
        records = audit.read(lab.site)
        assert len(records) == before + 1 and records[-1]["result"] == "refused"
    finally:
        code = stop(proc)
    assert code == 0
    assert not _connectable(socket.AF_INET, ("127.0.0.1", port))
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # --json: every line
    assert (
        lines[0]["listen"] == f"http://127.0.0.1:{port}" and lines[0]["trusted"] == "127.0.0.1, ::1"
    )
    [request] = lines[1:]
    assert request["status"] == 403 and request["peer"] == "127.0.0.1"
    assert request["path"] == "/.well-known/est/simplereenroll" and claim not in json.dumps(request)


def test_idle_connections_hold_no_thread_and_are_closed(lab: Lab, tmp_path: Path) -> None:
    """The OCSP responder's finding (attack round 10, F16) checked here: 150 idle
    connections to a TCP service (20 halfway through a request) hold no thread each, a
    request is answered meanwhile (waitress's default limit of 100 would have kept it
    waiting for the idle ones' timeout), and every idle one is closed after the
    (shortened) channel timeout."""
    port = free_privileged_port()
    log = tmp_path / "idle.log"
    proc = start_service(lab.home, log, "--listen", f"127.0.0.1:{port}",
                         settings={"CHANNEL_TIMEOUT": 2, "CLEANUP_INTERVAL": 1})  # fmt: skip
    idle: list[socket.socket] = []
    try:
        wait_for(lambda: _connectable(socket.AF_INET, ("127.0.0.1", port)), "certwiz serve (TCP)")
        for _ in range(150):
            idle.append(socket.create_connection(("127.0.0.1", port), 10))
        for sock in idle[-20:]:
            sock.sendall(b"POST /.well-known/est/simplereenroll HTTP/1.1\r\nHost: x\r\n")
        got = curl(f"http://127.0.0.1:{port}/.well-known/est/cacerts", tmp_path,
                   ca=lab.site.ca_cert, extra=("--max-time", "20"))  # fmt: skip
        assert got.status == 403 and "trusted proxy" in got.body  # answered: no proxy secret
        assert thread_count(proc.pid) <= 8  # waitress's 4 workers and its loop, not one each
        assert all(closed_by_peer(sock) for sock in idle)
    finally:
        for sock in idle:
            sock.close()
        assert stop(proc) == 0


def test_a_second_service_on_the_same_socket_is_refused(lab: Lab, tmp_path: Path) -> None:
    """It must not unlink the running service's socket and take its place."""
    sock = lab.root / "est.sock"
    second = subprocess.run(
        [sys.executable, "-m", "certwiz", "serve", "-p", "est", "--listen", f"unix:{sock}"],
        env=_env(lab.home), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert second.stderr.startswith("certwiz: error: cannot listen on unix:")
    assert "a service is listening there" in second.stderr
    assert fetch(lab, tmp_path, "/.well-known/est/cacerts").status == 200  # still the first


def test_zz_cert_less_requests_are_rate_limited(lab: Lab, tmp_path: Path) -> None:
    """Last in the module (it empties 127.0.0.1's bucket): a flood of cert-less EST
    requests gets 429 from nginx once the burst is spent; the service sees the rest."""
    url = f"{lab.est}/cacerts"
    got = subprocess.run(
        [require_curl(), "-s", "--cacert", str(lab.site.ca_cert), "--resolve", lab.resolve,
         "-w", "%{http_code}\n", *["-o", "/dev/null", url] * 40],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    codes = got.stdout.split()
    assert len(codes) == 40 and set(codes) == {"200", "429"}, got
    assert codes[:15] == ["200"] * 15  # the burst (20; earlier tests may have used a little)
    assert codes.count("429") >= 10
