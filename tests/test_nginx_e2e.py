"""End to end: real nginx on 127.0.0.1 with the rendered configs, certs made by certwiz,
real curl, requests-pkcs12 and httpx, in front of an echo backend that shows what got through.

One nginx and one backend serve the whole module; tests that change the CRL reload it
(and wait until only new workers serve). nginx answers every client-certificate failure
with HTTP 400 after the handshake, so "rejected" means: 400, and the backend saw nothing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests_pkcs12
from cryptography.hazmat.primitives import hashes

from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import REPO, invoke, load_cert, load_crl, openssl
from tests.nginx_support import CurlResult, curl, killed_at_reload, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "myserver.local"
PASSWORD = "correct horse battery staple"


@dataclass
class Stack:
    home: Path
    site: Path  # the profile directory of "site"
    other: Path  # the profile directory of "other" (a foreign CA)
    work: Path
    port: int
    backend: EchoBackend
    nginx: LocalNginx

    @property
    def ca(self) -> Path:
        return self.site / "ca.crt"

    @property
    def url(self) -> str:
        return f"https://{SERVER}:{self.port}/hello"

    @property
    def ip_url(self) -> str:
        """For the Python clients (no --resolve): the server certificate has IP SAN 127.0.0.1."""
        return f"https://127.0.0.1:{self.port}/hello"

    def certwiz(self, *args: str, **kwargs: Any) -> Any:
        result = invoke(self.home, *args, **kwargs)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def curl(self, **kwargs: Any) -> CurlResult:
        result = curl(
            self.url, self.work, ca=self.ca, resolve=f"{SERVER}:{self.port}:127.0.0.1", **kwargs
        )
        assert result.returncode == 0, result.stderr  # the handshake itself always completes
        return result

    def p12(self, name: str, profile: Path | None = None) -> Path:
        return (profile or self.site) / "private" / f"{name}.p12"

    def seen(self) -> int:
        return len(self.backend.requests)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("e2e")
    home = root / "certs"
    pw = root / "p12pass"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)  # a secret file: only ours
    pw.chmod(0o600)

    def cw(*args: str) -> None:
        result = invoke(home, *args)
        assert result.returncode == 0, (args, result.stderr)

    cw("ca", "init", "-p", "site")
    cw("server", "issue", "-p", "site", "-n", SERVER, "--san", "127.0.0.1")
    cw("client", "issue", "-p", "site", "-n", "alice", "--p12-passphrase-file", str(pw))
    for name in ("bob", "carol"):
        cw("client", "issue", "-p", "site", "-n", name, "-u")
    cw("ca", "init", "-p", "other")
    cw("client", "issue", "-p", "other", "-n", "mallory", "-u")
    backend = EchoBackend().start()
    port = free_port()
    cw(
        "nginx",
        "render",
        "-p",
        "site",
        "--server",
        SERVER,
        "--upstream",
        f"http://127.0.0.1:{backend.port}",
        "--listen",
        f"127.0.0.1:{port}",
        "--out",
        str(root / "conf"),
    )
    server = LocalNginx(root / "nginx", root / "conf" / "mtls_proxy.conf")
    try:
        server.start()
        yield Stack(home, home / "site", home / "other", root, port, backend, server)
    finally:
        server.stop()
        backend.stop()


def backend_headers(body: str) -> dict[str, str]:
    """The headers the backend received, from its JSON answer, with lower-case names."""
    return {k.lower(): v for k, v in json.loads(body)["headers"].items()}


def subject_cn(dn: str) -> list[str]:
    return re.findall(r"(?:^|,)CN=([^,]+)", dn)


# ---- curl -------------------------------------------------------------------------------


def test_valid_p12_gets_through_with_its_identity(stack: Stack) -> None:
    before = stack.seen()
    r = stack.curl(p12=stack.p12("alice"), password=PASSWORD)
    assert r.status == 200, r.body
    assert stack.seen() == before + 1
    got = backend_headers(r.body)
    assert got["x-client-verify"] == "SUCCESS"
    assert subject_cn(got["x-client-cert-subject"]) == ["alice"]
    cert = load_cert(stack.site / "issued" / "alice.crt")
    assert int(got["x-client-cert-serial"], 16) == cert.serial_number
    assert got["x-client-cert-fingerprint"].lower() == cert.fingerprint(hashes.SHA1()).hex()
    not_after = datetime.strptime(got["x-client-cert-not-after"], "%b %d %H:%M:%S %Y GMT")
    assert not_after.replace(tzinfo=UTC) == cert.not_valid_after_utc
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-for"] == "127.0.0.1"
    assert got["host"] == SERVER
    assert json.loads(r.body)["path"] == "/hello"


def test_pem_client_certificate_works_too(stack: Stack) -> None:
    r = stack.curl(cert=stack.site / "issued" / "bob.crt", key=stack.site / "private" / "bob.key")
    assert r.status == 200
    assert subject_cn(backend_headers(r.body)["x-client-cert-subject"]) == ["bob"]


def test_no_client_certificate_is_400_and_never_reaches_the_backend(stack: Stack) -> None:
    before = stack.seen()
    r = stack.curl()
    assert r.status == 400
    assert r.body == "client certificate required\n"
    assert stack.seen() == before


def test_certificate_of_another_ca_is_400(stack: Stack) -> None:
    before = stack.seen()
    r = stack.curl(p12=stack.p12("mallory", stack.other))
    assert r.status == 400
    assert r.body.startswith("client certificate rejected")
    assert stack.seen() == before


def test_forged_identity_headers_without_a_certificate_do_not_get_through(stack: Stack) -> None:
    before = stack.seen()
    r = stack.curl(headers={"X-Client-Cert-Subject": "CN=admin", "X-Client-Verify": "SUCCESS"})
    assert r.status == 400
    assert stack.seen() == before


def test_forged_identity_headers_are_overwritten_for_a_valid_client(stack: Stack) -> None:
    forged = {
        "X-Client-Cert-Subject": "CN=admin",
        "x-client-verify": "FORGED",
        "X-CLIENT-CERT-SERIAL": "01",
        "X_Client_Verify": "SUCCESS",  # underscore variant: nginx drops it
        "X-Forwarded-For": "10.6.6.6",
    }
    r = stack.curl(p12=stack.p12("bob"), headers=forged)
    assert r.status == 200
    answer = json.loads(r.body)
    assert answer["repeated"] == {}, answer
    names = [name.lower() for name in answer["headers"]]
    assert "x_client_verify" not in names
    got = backend_headers(r.body)
    assert subject_cn(got["x-client-cert-subject"]) == ["bob"]
    assert got["x-client-verify"] == "SUCCESS"
    assert (
        int(got["x-client-cert-serial"], 16)
        == load_cert(stack.site / "issued" / "bob.crt").serial_number
    )
    assert got["x-forwarded-for"] == "127.0.0.1"


def test_expired_client_certificate_is_rejected(stack: Stack) -> None:
    """A certificate signed by the profile's CA whose validity ended in 2021, made by hand."""
    work = stack.work / "expired"
    work.mkdir()
    key, csr, cert = work / "key.pem", work / "req.csr", work / "cert.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    openssl(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/CN=expired-bot",
        "-out",
        str(csr),
        "-config",
        str(stack.site / "openssl.cnf"),
    )
    openssl(
        "ca",
        "-batch",
        "-config",
        str(stack.site / "openssl.cnf"),
        "-in",
        str(csr),
        "-out",
        str(cert),
        "-notext",
        "-extensions",
        "client_ext",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20210101000000Z",
    )
    parsed = load_cert(cert)
    assert parsed.not_valid_after_utc < datetime.now(UTC)
    assert parsed.issuer == load_cert(stack.ca).subject
    before = stack.seen()
    r = stack.curl(cert=cert, key=key)
    assert r.status == 400
    assert r.body.startswith("client certificate rejected")
    assert stack.seen() == before
    assert "certificate has expired" in stack.nginx.log_tail(50)


# ---- Python clients ---------------------------------------------------------------------


def test_requests_pkcs12(stack: Stack) -> None:
    ok = requests_pkcs12.get(
        stack.ip_url,
        pkcs12_filename=str(stack.p12("alice")),
        pkcs12_password=PASSWORD,
        verify=str(stack.ca),
        timeout=10,
    )
    assert ok.status_code == 200
    assert ok.json()["headers"]["X-Client-Verify"] == "SUCCESS"
    assert subject_cn(ok.json()["headers"]["X-Client-Cert-Subject"]) == ["alice"]
    foreign = requests_pkcs12.get(
        stack.ip_url,
        pkcs12_filename=str(stack.p12("mallory", stack.other)),
        pkcs12_password="",
        verify=str(stack.ca),
        timeout=10,
    )
    assert foreign.status_code == 400


def test_httpx_with_ssl_context(stack: Stack) -> None:
    ctx = ssl.create_default_context(cafile=str(stack.ca))
    ctx.load_cert_chain(
        stack.site / "issued" / "alice.crt", stack.site / "private" / "alice.key", password=PASSWORD
    )
    with httpx.Client(verify=ctx, timeout=10) as client:
        r = client.get(stack.ip_url)
    assert r.status_code == 200
    assert r.json()["headers"]["X-Client-Verify"] == "SUCCESS"
    assert subject_cn(r.json()["headers"]["X-Client-Cert-Subject"]) == ["alice"]
    bare = ssl.create_default_context(cafile=str(stack.ca))
    with httpx.Client(verify=bare, timeout=10) as client:
        assert client.get(stack.ip_url).status_code == 400


def test_python_by_name_without_dns_as_the_readme_says(stack: Stack) -> None:
    """Connect to 127.0.0.1 with the server's name as SNI and Host (README recipe)."""
    ctx = ssl.create_default_context(cafile=str(stack.ca))
    ctx.load_cert_chain(stack.site / "issued" / "bob.crt", stack.site / "private" / "bob.key")
    with httpx.Client(verify=ctx, timeout=10) as client:
        r = client.get(
            f"https://127.0.0.1:{stack.port}/hello",
            headers={"Host": SERVER},
            extensions={"sni_hostname": SERVER},
        )
    assert r.status_code == 200
    assert subject_cn(r.json()["headers"]["X-Client-Cert-Subject"]) == ["bob"]


def test_server_certificate_is_checked_by_the_client(stack: Stack) -> None:
    """The client's trust in the server is real: another CA's bundle does not verify it."""
    ctx = ssl.create_default_context(cafile=str(stack.other / "ca.crt"))
    with (
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        httpx.Client(verify=ctx, timeout=10) as client,
    ):
        client.get(stack.ip_url)


# ---- protocol versions ------------------------------------------------------------------


def handshake(stack: Stack, low: ssl.TLSVersion, high: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=str(stack.ca))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions at all
    ctx.minimum_version, ctx.maximum_version = low, high
    with (
        socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVER) as tls,
    ):
        return str(tls.version())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_and_lower_refused_by_the_server(stack: Stack) -> None:
    # The alert comes from nginx: the client offered TLS 1.0-1.1 and the server said no.
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
        handshake(stack, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    assert "unsupported protocol" in stack.nginx.log_tail(50)
    r = curl(
        stack.url,
        stack.work,
        ca=stack.ca,
        resolve=f"{SERVER}:{stack.port}:127.0.0.1",
        p12=stack.p12("bob"),
        extra=("--tls-max", "1.1"),
    )
    assert r.returncode != 0 and r.status == 0


@pytest.mark.parametrize(
    ("flags", "version"),
    [
        (("--tlsv1.2", "--tls-max", "1.2"), ssl.TLSVersion.TLSv1_2),
        (("--tlsv1.3",), ssl.TLSVersion.TLSv1_3),
    ],
)
def test_tls_1_2_and_1_3_work(
    stack: Stack, flags: tuple[str, ...], version: ssl.TLSVersion
) -> None:
    r = stack.curl(p12=stack.p12("bob"), extra=(*flags, "-v"))
    assert r.status == 200
    name = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert f"SSL connection using {name} / " in r.stderr
    assert handshake(stack, version, version) == name


def test_tls_modern_variant_refuses_tls_1_2(stack: Stack) -> None:
    """Re-render with --tls modern into the live config dir, reload, then put it back."""
    conf = stack.work / "conf"
    args = [
        "nginx",
        "render",
        "-p",
        "site",
        "--server",
        SERVER,
        "--upstream",
        f"http://127.0.0.1:{stack.backend.port}",
        "--listen",
        f"127.0.0.1:{stack.port}",
        "--out",
        str(conf),
    ]
    stack.certwiz(*args, "--tls", "modern")
    try:
        stack.nginx.reload()
        with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
            handshake(stack, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        assert handshake(stack, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    finally:
        stack.certwiz(*args, "--tls", "intermediate")
        stack.nginx.reload()
    assert handshake(stack, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


# ---- revocation reaches the server ------------------------------------------------------


def test_revoke_with_reload_blocks_that_client_only(stack: Stack) -> None:
    assert stack.curl(p12=stack.p12("carol")).status == 200
    with stack.nginx.reloading():
        r = stack.certwiz(
            "revoke",
            "-p",
            "site",
            "-n",
            "carol",
            "--reason",
            "keyCompromise",
            "--reload",
            "--nginx-cmd",
            stack.nginx.command,
        )
    assert "reloaded" in r.stdout
    serial = load_cert(stack.site / "issued" / "carol.crt").serial_number
    crl = load_crl(stack.site / "crl.pem")
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    before = stack.seen()
    rejected = stack.curl(p12=stack.p12("carol"))
    assert rejected.status == 400
    assert rejected.body.startswith("client certificate rejected")
    assert stack.seen() == before
    assert "certificate revoked" in stack.nginx.log_tail(50)
    assert stack.curl(p12=stack.p12("alice"), password=PASSWORD).status == 200
    assert stack.curl(p12=stack.p12("bob")).status == 200


def test_a_revoke_killed_before_its_crl_is_finished_by_running_it_again(stack: Stack) -> None:
    """Issue 13 item 2: a revoke killed after `openssl ca -revoke` and before the CRL
    left index.txt saying R and crl.pem without the serial; the retry said "no valid
    certificate", published nothing, and NGINX kept admitting the client. The state is
    made by running that first step by hand (it is all a SIGKILL there leaves)."""
    stack.certwiz("client", "issue", "-p", "site", "-n", "dave", "-u")
    assert stack.curl(p12=stack.p12("dave")).status == 200
    cert = stack.site / "issued" / "dave.crt"
    openssl("ca", "-config", str(stack.site / "openssl.cnf"), "-revoke", str(cert))
    assert stack.curl(p12=stack.p12("dave")).status == 200  # the hole being closed
    with stack.nginx.reloading():
        r = invoke(stack.home, "revoke", "-p", "site", "-n", "dave", "--reload",
                        "--nginx-cmd", stack.nginx.command, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    serial = f"{load_cert(cert).serial_number:X}"
    serial = "0" * (len(serial) % 2) + serial  # as openssl writes it
    assert done["finished"] == [serial] and done["reloaded"] is True
    assert load_crl(stack.site / "crl.pem").get_revoked_certificate_by_serial_number(
        load_cert(cert).serial_number
    )
    assert stack.curl(p12=stack.p12("dave")).status == 400
    again = invoke(stack.home, "revoke", "-p", "site", "-n", "dave")
    assert again.returncode == 0, again.stderr  # nothing left to do, and it says so
    assert f"dave was already revoked ({serial})" in again.stdout


def test_a_revoke_killed_before_the_reload_is_finished_by_running_it_again(stack: Stack) -> None:
    """Attack round on issue 13, D5: `revoke -n X --reload` killed after the CRL was
    published and before nginx reloaded. The rerun said "no valid certificate", reloaded
    nothing, and nginx kept admitting X. It reloads now, and says X was already revoked."""
    stack.certwiz("client", "issue", "-p", "site", "-n", "erin", "-u")
    assert stack.curl(p12=stack.p12("erin")).status == 200
    revoke = ("revoke", "-p", "site", "-n", "erin", "--reload", "--nginx-cmd", stack.nginx.command)
    killed_at_reload(stack.home, *revoke)
    number = load_cert(stack.site / "issued" / "erin.crt").serial_number
    assert load_crl(stack.site / "crl.pem").get_revoked_certificate_by_serial_number(number)
    assert stack.curl(p12=stack.p12("erin")).status == 200  # the hole: nginx never reloaded
    quiet = invoke(stack.home, *revoke[:5])  # without --reload: what is left, and how
    assert quiet.returncode == 0, quiet.stderr
    assert "the CRL is current" in quiet.stdout
    assert "nginx enforces it only after a reload; run:" in quiet.stdout
    with stack.nginx.reloading():
        r = invoke(stack.home, *revoke, "--json")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert [int(s, 16) for s in done["already_revoked"]] == [number]
    assert done["serials"] == [] and done["reloaded"] is True
    before = stack.seen()
    assert stack.curl(p12=stack.p12("erin")).status == 400
    assert stack.seen() == before
    assert stack.curl(p12=stack.p12("bob")).status == 200


def s_client(
    stack: Stack, name: str, flag: str, sess_out: Path | None = None, sess_in: Path | None = None
) -> tuple[str, int, str]:
    """One GET with openssl s_client as client NAME: (New|Reused, HTTP status, output)."""
    argv = [
        "s_client",
        "-connect",
        f"127.0.0.1:{stack.port}",
        "-servername",
        SERVER,
        "-CAfile",
        str(stack.ca),
        "-cert",
        str(stack.site / "issued" / f"{name}.crt"),
        "-key",
        str(stack.site / "private" / f"{name}.key"),
        flag,
        "-ign_eof",
    ]
    if sess_out is not None:
        argv += ["-sess_out", str(sess_out)]
    if sess_in is not None:
        argv += ["-sess_in", str(sess_in)]
    request = f"GET /hello HTTP/1.1\r\nHost: {SERVER}\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(
        ["openssl", *argv], input=request, capture_output=True, text=True, timeout=30, check=False
    )
    out = proc.stdout
    handshake_kind = re.search(r"^(New|Reused), TLSv1\.[23]", out, re.M)
    status = re.search(r"^HTTP/1\.1 (\d{3}) ", out, re.M)
    assert handshake_kind and status, (proc.returncode, out, proc.stderr)
    return handshake_kind.group(1), int(status.group(1)), out


def test_saved_tls_session_does_not_outlive_revocation(stack: Stack) -> None:
    """A session saved before revoke --reload must not resume: no cached verify result.

    With a session cache, a resumed TLS 1.2 or 1.3 session brings back the stored
    peer certificate and its old verify result, and the new CRL is never checked.
    With `ssl_session_cache off` nginx 1.22 gives TLS 1.2 clients no session ID (s_client
    then saves nothing) and still sends TLS 1.3 tickets that never resume; either way
    the next connection is a full handshake.
    """
    stack.certwiz("client", "issue", "-p", "site", "-n", "erin", "-u")
    sessions = {"-tls1_2": stack.work / "erin.s12", "-tls1_3": stack.work / "erin.s13"}
    for flag, saved in sessions.items():
        kind, status, _ = s_client(stack, "erin", flag, sess_out=saved)
        assert (kind, status) == ("New", 200), flag
    with stack.nginx.reloading():
        stack.certwiz(
            "revoke", "-p", "site", "-n", "erin", "--reload", "--nginx-cmd", stack.nginx.command
        )
    before = stack.seen()
    resumed = {
        flag: s_client(stack, "erin", flag, sess_in=saved if saved.is_file() else None)
        for flag, saved in sessions.items()
    }
    assert {flag: got[:2] for flag, got in resumed.items()} == {
        "-tls1_2": ("New", 400),
        "-tls1_3": ("New", 400),
    }
    assert all("client certificate rejected" in got[2] for got in resumed.values())
    assert stack.seen() == before
    assert "certificate revoked" in stack.nginx.log_tail(50)


def test_expired_crl_fails_every_client_until_crl_gen_reload(stack: Stack) -> None:
    """The outage certwiz's timer prevents: a CRL past nextUpdate rejects everyone."""
    crl = stack.site / "crl.pem"
    stale = stack.work / "stale-crl.pem"
    openssl(
        "ca",
        "-gencrl",
        "-batch",
        "-config",
        str(stack.site / "openssl.cnf"),
        "-crl_lastupdate",
        "20200101000000Z",
        "-crl_nextupdate",
        "20200201000000Z",
        "-out",
        str(stale),
    )
    assert load_crl(stale).next_update_utc < datetime.now(UTC)
    stale.replace(crl)
    try:
        stack.nginx.reload()  # nginx -t still passes on an expired CRL
        for kwargs in (
            {"p12": stack.p12("alice"), "password": PASSWORD},
            {"p12": stack.p12("bob")},
        ):
            r = stack.curl(**kwargs)
            assert r.status == 400, kwargs
        assert "CRL has expired" in stack.nginx.log_tail(50)
    finally:
        with stack.nginx.reloading():
            stack.certwiz(
                "crl",
                "gen",
                "-p",
                "site",
                "--reload",
                env={"CERTWIZ_NGINX_CMD": stack.nginx.command},
            )
    assert load_crl(crl).next_update_utc > datetime.now(UTC)
    assert stack.curl(p12=stack.p12("bob")).status == 200


def test_everything_bound_to_loopback(stack: Stack) -> None:
    """What the tests start listens on 127.0.0.1 only."""
    out = Path(f"/proc/{stack.nginx.pid}/net/tcp").read_text()
    port_hex = f"{stack.port:04X}"
    listening = [
        line.split()[1]
        for line in out.splitlines()[1:]
        if line.split()[3] == "0A" and line.split()[1].endswith(":" + port_hex)
    ]
    assert listening == ["0100007F:" + port_hex]


# ---- the client examples work as documented ---------------------------------------------


def run_example(stack: Stack, *argv: str, env: dict[str, str] | None = None) -> str:
    full_env = {"PATH": os.environ["PATH"], **(env or {})}
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=full_env, timeout=60, cwd=REPO, check=False
    )
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.mark.parametrize("script", ["requests_p12.py", "httpx_p12.py"])
def test_python_examples(stack: Stack, script: str) -> None:
    out = run_example(
        stack,
        sys.executable,
        f"examples/python/{script}",
        stack.ip_url,
        str(stack.p12("alice")),
        str(stack.ca),
        env={"CERTWIZ_P12_PASSPHRASE": PASSWORD},
    )
    status, body = out.split("\n", 1)
    assert status == "200"
    assert subject_cn(json.loads(body)["headers"]["X-Client-Cert-Subject"]) == ["alice"]


def test_curl_examples(stack: Stack) -> None:
    resolve = ("--resolve", f"{SERVER}:{stack.port}:127.0.0.1")
    out = run_example(
        stack,
        "bash",
        "examples/curl/p12.sh",
        stack.url,
        str(stack.p12("alice")),
        str(stack.ca),
        *resolve,
        env={"P12_PASSWORD": PASSWORD},
    )
    assert json.loads(out)["headers"]["X-Client-Verify"] == "SUCCESS"
    out = run_example(
        stack,
        "bash",
        "examples/curl/pem.sh",
        stack.url,
        str(stack.site / "issued" / "bob.crt"),
        str(stack.site / "private" / "bob.key"),
        str(stack.ca),
        *resolve,
    )
    assert subject_cn(json.loads(out)["headers"]["X-Client-Cert-Subject"]) == ["bob"]


def test_ollama_example_posts_generate_through_the_proxy(stack: Stack) -> None:
    """The echo backend stands in for Ollama: it shows the request the script made."""
    out = run_example(
        stack,
        "bash",
        "examples/ollama/generate.sh",
        f"https://127.0.0.1:{stack.port}",
        str(stack.p12("bob")),
        str(stack.ca),
        "tinyllama",
        'say "hi"',
    )
    seen = json.loads(out)
    assert (seen["method"], seen["path"]) == ("POST", "/api/generate")
    assert json.loads(seen["body"]) == {"model": "tinyllama", "prompt": 'say "hi"', "stream": False}
    assert seen["headers"]["X-Client-Verify"] == "SUCCESS"
