"""What the app receives cannot be forged, misread, or changed by the surrounding http { }.

Real nginx whose http { } says `underscores_in_headers on; ignore_invalid_headers off;`
(settings a rendered server inherits unless it sets its own), real curl, an echo
backend. Two rendered servers on one port: a generic app and `--app ollama`.
Issue 13 items 7 and 8, and issue 15's Ollama recipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certwiz.nginx.forwarding import REMOVED_HEADERS
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from examples.python.client_identity import client_name
from tests.conftest import invoke, load_cert
from tests.nginx_support import curl, curl_as, render_argv, require_curl, require_nginx

pytestmark = pytest.mark.nginx

APP, OLLAMA = "app.test", "ollama.test"
TRICKY = "guest,CN=admin"  # a client name with DN syntax in it (accepted by certwiz)
# Everything a client might send to pass for someone else or somewhere else.
FORGED = {
    "X-Client-Verify": "SUCCESS-FORGED",
    "X-Client-Cert": "forged",
    "X-Client-Cert-Subject": "CN=admin",
    "X-Client-Cert-Issuer": "CN=forged CA",
    "X-Client-Cert-Serial": "01",
    "X-Client-Cert-Fingerprint": "00" * 20,
    "X-Client-Cert-Not-After": "Jan  1 00:00:00 2099 GMT",
    "X_Client_Cert_Subject": "CN=admin",
    "X_Client_Verify": "SUCCESS",
    "X_Client_Cert": "forged",
    "X-Forwarded-For": "10.6.6.6",
    "X_Forwarded_For": "10.6.6.6",
    "X-Real-IP": "10.6.6.6",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "1",
    "X-Forwarded-Proto": "http",
    "Forwarded": "for=10.6.6.6;host=evil.example;proto=http",
    "X-Forwarded-Server": "evil",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-Ssl": "off",
    "X-Forwarded-Client-Cert": 'Hash=00;Subject="CN=admin"',
    "X-Client-IP": "10.6.6.6",
    "True-Client-IP": "10.6.6.6",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
    # the names an outside attack sent through the first deny-list (and frameworks read)
    "X-SSL-Client-Verify": "forged",
    "X-SSL-Client-S-DN": "forged",
    "X-Client-Cert-DN": "forged",
    "X-Client-Cert-Chain": "forged",
    "X-Forwarded-Scheme": "forged",
    "X-Scheme": "forged",
    "X-Url-Scheme": "forged",
    "Front-End-Https": "forged",
    "X-Original-Host": "forged",
    "X-Host": "forged",
    "X-Forwarded-Uri": "forged",
    "X-Original-Forwarded-For": "forged",
    "X-Forwarded": "forged",
    "Forwarded-For": "forged",
    "X-ProxyUser-Ip": "forged",
    "X-Remote-User": "forged",
    "Remote-User": "forged",
}
# The client-certificate conventions of other TLS terminators (a backend written for
# one of them reads it): the outside attack's list, checked whatever forwarding.py says.
OTHER_CONVENTIONS = [
    "Client-Cert",
    "Client-Cert-Chain",
    "X-Forwarded-Tls-Client-Cert",
    "X-Forwarded-Tls-Client-Cert-Info",
    "X-ARR-ClientCert",
    "X-Amzn-Mtls-Clientcert",
    "X-Amzn-Mtls-Clientcert-Leaf",
    "X-Amzn-Mtls-Clientcert-Serial-Number",
    "X-Amzn-Mtls-Clientcert-Issuer",
    "X-Amzn-Mtls-Clientcert-Subject",
    "X-Amzn-Mtls-Clientcert-Validity",
    "Ssl-Client-Cert",
    "Ssl-Client-Verify",
    "Ssl-Client-S-Dn",
    "Ssl-Client-I-Dn",
    "X-SSL-Client-Cert",
    "X-SSL-Client-Verify",
    "X-SSL-Client-S-DN",
    "X-SSL-Client-I-DN",
    "X-SSL-Client-CN",
    "X-SSL-Client-Serial",
    "X-SSL-Client-Fingerprint",
    "X-Client-Cert-Chain",
    "X-Client-Cert-DN",
    "X-Client-Cert-Present",
    "X-Client-Cert-Hash",
]
# Attack round 10 (F15): identity-like names that still reached the app, checked here
# whatever forwarding.py says; and their siblings (ingress-nginx's ssl-client-*-dn, the
# auth gateways' user and e-mail headers).
ROUND_10 = [
    "X-Client-Cert-CN",
    "X-Client-Cert-Verify",
    "X-Client-Cert-Subject-CN",
    "X-Client-CN",
    "X-Client-Subject",
    "X-SSL-Client-CN",
    "X-SSL-Client-Subject",
    "X-SSL-Cert",
    "X-Original-Client-Cert",
    "X-WEBAUTH-USER",
    "X-Auth-Email",
    "X-Email",
    "Cf-Client-Cert-Sha256",
    "Ssl-Client-Subject-Dn",
    "Ssl-Client-Issuer-Dn",
    "X-SSL-Client-Subject-DN",
    "X-SSL-Client-Issuer-DN",
    "X-User",
    "X-User-Email",
    "X-Goog-Authenticated-User-Email",
    "Cf-Access-Authenticated-User-Email",
    "X-Amzn-Oidc-Identity",
    "X-MS-CLIENT-PRINCIPAL-NAME",
]
# Attack round 12 (F11): names that still reached the app, checked whatever
# forwarding.py says.
ROUND_12 = [
    "X-Remote-Group",
    "X-Remote-Extra-Scopes",
    "Impersonate-User",
    "Impersonate-Group",
    "X-Consumer-Username",
    "X-Consumer-ID",
    "X-Consumer-Custom-ID",
    "X-Authenticated-Userid",
    "X-Credential-Identifier",
    "X-Authentik-Username",
    "X-Authentik-Groups",
    "X-Authentik-Email",
    "X-Authentik-Uid",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-Access-Token",
    "Tailscale-User-Login",
    "Tailscale-User-Name",
    "X-Pomerium-Jwt-Assertion",
    "X-Goog-IAP-JWT-Assertion",
    "X-AppEngine-User-Email",
    "X-Client-Cert-Verified",
    "X-Client-Ssl-Verify",
    "X-Ssl-Verified",
    "X-Tls-Client-Cert",
    "X-Client-Cert-Sha256",
    "X-Arr-Ssl",
    "X-Groups",
    "X-Roles",
    "X-User-Id",
    "X-User-Name",
    "X-Auth-Username",
    "X-Proxy-User",
    "Proxy-User",
    "X-Webauth-Email",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Envoy-External-Address",
]
REMOVED = [
    "forwarded",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-client-cert",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-ssl-client-verify",
    "x-ssl-client-s-dn",
    "x-client-cert-dn",
    "x-client-cert-chain",
    "x-forwarded-scheme",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "x-original-host",
    "x-host",
    "x-forwarded-uri",
    "x-original-forwarded-for",
    "x-forwarded",
    "forwarded-for",
    "x-proxyuser-ip",
    "x-remote-user",
    "remote-user",
]


def both_spellings(names: list[str]) -> dict[str, str]:
    """Each NAME forged, as written and with '_' for '-' (what a WSGI app reads alike)."""
    return {n: "forged" for name in names for n in (name, name.replace("-", "_"))}


@dataclass
class Edge:
    home: Path
    work: Path
    port: int
    backend: EchoBackend

    def get(self, server: str, client: str, path: str = "/x", **kwargs: Any) -> Any:
        return curl_as(self.home / "site", client, server, self.port, self.work, path, **kwargs)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("headers")
    home = root / "certs"
    for args in (
        ("ca", "init", "-p", "site"),
        ("server", "issue", "-p", "site", "-n", APP),
        ("server", "issue", "-p", "site", "-n", OLLAMA),
        ("client", "issue", "-p", "site", "-n", "bob", "-u"),
        ("client", "issue", "-p", "site", "-n", TRICKY, "-u"),
    ):
        result = invoke(home, *args)
        assert result.returncode == 0, (args, result.stderr)
    backend = EchoBackend().start()
    port = free_port()
    upstream, listen = f"http://127.0.0.1:{backend.port}", f"127.0.0.1:{port}"
    sites = []
    for server, extra in ((APP, ()), (OLLAMA, ("--app", "ollama", "--sni-only"))):
        out = root / server
        argv = render_argv("site", server, upstream, listen, out)
        result = invoke(home, *argv, *extra)
        assert result.returncode == 0, result.stderr
        sites.append(out / "mtls_proxy.conf")
    nginx = LocalNginx(root / "nginx", sites)
    # The surrounding http { } allows what the rendered server must not inherit.
    nginx.http_directives = ["underscores_in_headers on;", "ignore_invalid_headers off;"]
    try:
        nginx.start()
        yield Edge(home, root, port, backend)
    finally:
        nginx.stop()
        backend.stop()


def received(body: str) -> dict[str, str]:
    """The headers the backend got, lower-case names (the echo backend's JSON)."""
    return {k.lower(): v for k, v in json.loads(body)["headers"].items()}


def wsgi_view(headers: dict[str, str]) -> dict[str, list[str]]:
    """HTTP_* keys as a WSGI/CGI app sees them: '-' and '_' both become '_'."""
    environ: dict[str, list[str]] = {}
    for name, value in headers.items():
        environ.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
    return environ


def assert_identity(got: dict[str, str], client: str, edge: Edge, host: str) -> None:
    cert = load_cert(edge.home / "site" / "issued" / f"{client}.crt")
    assert got["x-client-verify"] == "SUCCESS"
    sent = x509.load_pem_x509_certificate(unquote(got["x-client-cert"]).encode())
    assert sent == cert
    assert int(got["x-client-cert-serial"], 16) == cert.serial_number
    assert got["x-client-cert-issuer"] == "CN=site Root CA"
    assert "admin" not in got["x-client-cert-fingerprint"]
    assert [n for n in got if "_" in n] == []
    assert {k: v for k, v in wsgi_view(got).items() if len(v) > 1} == {}
    assert got["x-forwarded-for"] == got["x-real-ip"] == "127.0.0.1"
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-host"] == host
    assert got["x-forwarded-port"] == str(edge.port)
    assert [n for n in REMOVED if n in got] == []


def test_forged_and_underscore_headers_never_reach_the_app(edge: Edge) -> None:
    r = edge.get(APP, "bob", headers=FORGED)
    assert r.status == 200, r.body
    got = received(r.body)
    assert_identity(got, "bob", edge, APP)
    assert got["x-client-cert-subject"] == "CN=bob"
    assert got["host"] == APP
    assert wsgi_view(got)["HTTP_X_CLIENT_CERT_SUBJECT"] == ["CN=bob"]


def test_a_dn_shaped_client_name_is_read_back_exactly(edge: Edge) -> None:
    """`guest,CN=admin`: the subject text is escaped; the certificate header is exact."""
    r = edge.get(APP, TRICKY)
    assert r.status == 200, r.body
    got = received(r.body)
    assert_identity(got, TRICKY, edge, APP)
    assert got["x-client-cert-subject"] == "CN=guest\\,CN=admin"
    headers = json.loads(r.body)["headers"]
    assert client_name(headers) == TRICKY  # the README's recipe for the app
    cert = x509.load_pem_x509_certificate(unquote(got["x-client-cert"]).encode())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [TRICKY]


def test_the_recipe_refuses_a_request_without_a_verified_certificate() -> None:
    with pytest.raises(PermissionError):
        client_name({"X-Client-Verify": "NONE", "X-Client-Cert": ""})


def test_ollama_app_keeps_every_identity_header_overwritten(edge: Edge) -> None:
    before = len(edge.backend.requests)
    r = edge.get(
        OLLAMA,
        "bob",
        "/api/generate",
        headers=FORGED,
        extra=("--data", '{"model":"m","prompt":"hi","stream":false}'),
    )
    assert r.status == 200, r.body
    seen = json.loads(r.body)
    assert (seen["method"], seen["path"]) == ("POST", "/api/generate")
    got = received(r.body)
    assert_identity(got, "bob", edge, OLLAMA)
    assert got["x-client-cert-subject"] == "CN=bob"
    assert got["host"] == "localhost"  # Ollama's own host check wants a local name
    # Anything but /api/ is refused, certificate or not, and reaches nothing.
    other = edge.get(OLLAMA, "bob", "/")
    assert (other.status, other.body) == (404, "only /api/ is served here\n")
    assert len(edge.backend.requests) == before + 1


def test_every_other_proxys_client_certificate_header_is_removed(edge: Edge) -> None:
    """Each convention a backend may read a client certificate or identity from, in both
    spellings, sent by a verified client: the backend sees none of them (nor its
    WSGI/CGI name)."""
    names = sorted(
        set(OTHER_CONVENTIONS) | set(ROUND_10) | set(ROUND_12) | set(REMOVED_HEADERS) | set(REMOVED)
    )
    r = edge.get(APP, "bob", headers=both_spellings(names))
    assert r.status == 200, r.body
    got = received(r.body)
    assert_identity(got, "bob", edge, APP)
    assert [n for n in names if n.lower() in got] == []  # round 10: five names were here
    environ = wsgi_view(got)
    assert [n for n in names if "HTTP_" + n.upper().replace("-", "_") in environ] == []
    assert "forged" not in r.body


def test_x_forwarded_host_is_this_server_without_sni(edge: Edge) -> None:
    """By IP, without SNI, the default server takes any Host: X-Forwarded-Host is still
    this server's name (README: "this connection's"), not the Host the client sent."""
    site = edge.home / "site"
    r = curl(
        f"https://127.0.0.1:{edge.port}/x",
        edge.work,
        ca=site / "ca.crt",
        cert=site / "issued" / "bob.crt",
        key=site / "private" / "bob.key",
        headers={"Host": "evil.example"},
        extra=("--insecure",),  # the server's certificate names app.test, not the IP
    )
    assert r.status == 200, (r.body, r.stderr)
    got = received(r.body)
    assert got["x-forwarded-host"] == got["host"] == APP
    assert got["x-client-verify"] == "SUCCESS"
