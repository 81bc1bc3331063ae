"""The agent talks only to, and takes certificates only from, the profile's own signing CA.

Chaining to the root is not enough: `ca sign-intermediate` lets the root sign other CAs
(Vault, step-ca, cert-manager; without --permitted-dns they may name any host). Such a
CA can mint a serverAuth certificate for the EST host: the agent must then send nothing
(no token, no CSR), and an answer signed by it must never replace a working bundle.

The server here is a tiny TLS server in a thread (what an attacker would run): it
records every request and signs whatever CSR it gets with the CA it is given. Real
NGINX + `certwiz serve` for the normal loop is test_est_e2e.py.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from certwiz.api import CA
from certwiz.est import wire
from tests.conftest import openssl, run_certwiz


@dataclass
class Signer:
    """A CA certificate and its key (PEM files)."""

    cert: Path
    key: Path

    def load(self) -> tuple[x509.Certificate, Any]:
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        return x509.load_pem_x509_certificate(self.cert.read_bytes()), key


def server_cert(work: Path, signer: Signer, name: str) -> tuple[Path, Path]:
    """A serverAuth certificate for 127.0.0.1 signed by SIGNER with raw openssl: WORK/NAME.crt
    (with SIGNER's certificate after it, as a server sends its chain) and NAME.key."""
    key, csr, crt, ext = (work / f"{name}.{x}" for x in ("key", "csr", "crt", "ext"))
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(signer.cert), "-CAkey", str(signer.key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    crt.write_bytes(crt.read_bytes() + signer.cert.read_bytes())
    return crt, key


@dataclass
class Est:
    """A tiny EST server: signs any CSR with `signer`; `seen` holds every request."""

    port: int
    signer: Signer
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def _sign(csr_der: bytes, signer: Signer) -> x509.Certificate:
    ca, key = signer.load()
    csr = x509.load_der_x509_csr(csr_der)
    now = datetime.now(UTC)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def est_server(tmp_path: Path) -> Iterator[Any]:
    """est_server(tls: Signer, answers: Signer) -> Est, running until the test ends."""
    started: list[http.server.ThreadingHTTPServer] = []

    def start(tls: Signer, answers: Signer) -> Est:
        crt, key = server_cert(tmp_path, tls, f"server{len(started)}")
        est = Est(0, answers)

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, certs: list[x509.Certificate]) -> None:
                body = wire.encode_certs(certs)
                self.send_response(200)
                self.send_header("Content-Type", wire.CERTS_ONLY_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                est.seen.append(("GET", self.path, dict(self.headers)))
                self.answer([est.signer.load()[0]])

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                est.seen.append(("POST", self.path, dict(self.headers)))
                leaf = _sign(wire.decode_csr(body), est.signer)
                self.answer([leaf, est.signer.load()[0]])

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(crt), str(key))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        est.port = server.server_address[1]
        return est

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@dataclass
class Pki:
    home: Path
    ca: Signer  # the single-level profile "app": the root signs its leaves
    foreign: Signer  # an intermediate the root signed with `ca sign-intermediate`
    fleet: Signer  # the two-level profile "fleet": its intermediate
    fleet_dir: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("agent-trust")
    home = base / "certs"
    CA.create("app", home, unencrypted=True)
    CA.open("app", home).issue_client("bot", days="1", unencrypted=True)
    CA.create("fleet", home, intermediate=True, unencrypted=True)
    CA.open("fleet", home).issue_client("bot", days="1", unencrypted=True)
    # the attacker's CA: an intermediate the operator signed for Vault, no --permitted-dns
    key, csr, crt = base / "vault.key", base / "vault.csr", base / "vault.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-subj", "/CN=Vault Intermediate CA",
            "-out", str(csr))  # fmt: skip
    result = run_certwiz(home, "ca", "sign-intermediate", "-p", "app", "--csr", str(csr),
                         "--out", str(crt))  # fmt: skip
    assert result.returncode == 0, result.stderr
    app, fleet = home / "app", home / "fleet"
    return Pki(
        home,
        Signer(app / "ca.crt", app / "private" / "ca.key"),
        Signer(crt, key),
        Signer(fleet / "intermediate.crt", fleet / "private" / "ca.key"),
        fleet,
    )


def device(pki: Pki, tmp_path: Path, profile: str = "app") -> Path:
    bundle = tmp_path / "bot.p12"
    bundle.write_bytes((pki.home / profile / "private" / "bot.p12").read_bytes())
    bundle.chmod(0o600)
    return bundle


def agent(pki: Pki, *args: str) -> Any:
    return run_certwiz(pki.home, "agent", *args, "-u")


def test_renew_talks_to_no_server_of_another_ca_under_the_root(
    pki: Pki, est_server: Any, tmp_path: Path
) -> None:
    impostor = est_server(tls=pki.foreign, answers=pki.foreign)
    bundle = device(pki, tmp_path)
    before = bundle.read_bytes()
    result = agent(pki, "renew", "--url", impostor.url, "--p12", str(bundle),
                   "--ca", str(pki.ca.cert), "--force")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(
        f"certwiz: error: {impostor.url}: the server certificate is issued by "
        "'CN=Vault Intermediate CA', not by"
    ), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert impostor.seen == []  # no CSR sent: nothing but the handshake
    assert bundle.read_bytes() == before


def test_enroll_sends_the_token_to_no_server_of_another_ca(
    pki: Pki, est_server: Any, tmp_path: Path
) -> None:
    impostor = est_server(tls=pki.foreign, answers=pki.foreign)
    out = tmp_path / "new.p12"
    result = agent(pki, "enroll", "--url", impostor.url, "--ca", str(pki.ca.cert), "-n", "bot9",
                   "--out", str(out), "--token", "tok-123")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the server certificate is issued by 'CN=Vault Intermediate CA'" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not any("Authorization" in headers for _, _, headers in impostor.seen)
    assert impostor.seen == []
    assert not out.exists()


def test_an_answer_of_another_ca_never_replaces_the_bundle(
    pki: Pki, est_server: Any, tmp_path: Path
) -> None:
    """--server-ca lets the server through (the explicit override); the answer is still
    the profile's CA's or nothing, even with the foreign CA in the answer and in cacerts."""
    server = est_server(tls=pki.foreign, answers=pki.foreign)
    bundle = device(pki, tmp_path)
    before = bundle.read_bytes()
    result = agent(pki, "renew", "--url", server.url, "--p12", str(bundle), "--ca",
                   str(pki.ca.cert), "--server-ca", str(pki.ca.cert), "--force")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(
        "certwiz: error: the new certificate is issued by 'CN=Vault Intermediate CA'"
    ), result.stderr
    assert "not by the current certificate's CA 'CN=app Root CA'" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert [(m, p) for m, p, _ in server.seen] == [("POST", wire.SIMPLEREENROLL)]
    assert bundle.read_bytes() == before


def test_the_profiles_own_ca_still_renews_and_enrolls_on_two_levels(
    pki: Pki, est_server: Any, tmp_path: Path
) -> None:
    """A two-level profile: renew trusting the root alone (the bundle's chain holds the
    intermediate); enroll with chain.pem or the intermediate, not the root alone."""
    server = est_server(tls=pki.fleet, answers=pki.fleet)
    root, chain = pki.fleet_dir / "ca.crt", pki.fleet_dir / "chain.pem"
    bundle = device(pki, tmp_path, "fleet")
    old = pkcs12.load_pkcs12(bundle.read_bytes(), None).cert
    result = agent(pki, "renew", "--url", server.url, "--p12", str(bundle), "--ca", str(root),
                   "--force")  # fmt: skip
    assert result.returncode == 0, result.stderr
    new = pkcs12.load_pkcs12(bundle.read_bytes(), None).cert
    assert old is not None and new is not None
    assert new.certificate.serial_number != old.certificate.serial_number
    new.certificate.verify_directly_issued_by(pki.fleet.load()[0])

    for n, ca in enumerate((chain, pki.fleet.cert)):
        out = tmp_path / f"enrolled{n}.p12"
        result = agent(pki, "enroll", "--url", server.url, "--ca", str(ca), "-n", f"dev{n}",
                       "--out", str(out), "--token", "t0k")  # fmt: skip
        assert result.returncode == 0, (ca, result.stderr)
        got = pkcs12.load_pkcs12(out.read_bytes(), None).cert
        assert got is not None
        got.certificate.verify_directly_issued_by(pki.fleet.load()[0])
    asked = len(server.seen)
    result = agent(pki, "enroll", "--url", server.url, "--ca", str(root), "-n", "dev9",
                   "--out", str(tmp_path / "root-only.p12"), "--token", "t0k")  # fmt: skip
    assert result.returncode == 1 and "not by a certificate in" in result.stderr, result.stderr
    assert len(server.seen) == asked  # the root alone: refused before the token went out
