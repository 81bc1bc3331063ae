"""doctor reads a configuration as nginx runs it (attack round 10, F3-F5).

Each config here let a client in through a real nginx (curl, or a raw TLS or plain
socket, gets the echo backend's 200) while `certwiz doctor` said "no findings". One
nginx for the module, one server group per case on its own 127.0.0.1 port, each in its
own site file that doctor reads alone:

- F5 `deep`: `ssl_verify_client optional` with no guard, the proxy_pass inside an `if`,
  a `limit_except` and a nested location (doctor looked only at a location's direct
  children; the header check shared that blind spot).
- F4 `guard-page`: a `$ssl_client_verify` guard that returns 403 and `error_page 403 =
  @app`, a named location that proxies (doctor looked at 495/496 only);
  `early-page`: `ssl_verify_client on` and `error_page 400 497 = @app`: a malformed
  request, or plain http on the TLS port, reaches @app before any certificate check.
- F3 `spelled`: two profiles' servers on one socket written `127.0.0.1:P` (no ssl) and
  `"127.000.000.001:P" ssl default_server`: nginx merges them into one TLS socket, so a
  client of the other profile connects without SNI, names this server in Host and gets
  in (doctor grouped listens by their text and ignored the one without ssl).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz import ca, doctor, issue
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.nginx_support import curl, require_curl, require_nginx

pytestmark = pytest.mark.nginx

APP, OTHER = "app.test", "other.test"
# what the `$ssl_client_verify` guard runs before its `return 403` (attack round 13, F3)
GUARDS = {
    "guard-break": "break;",
    "guard-rewrite": "rewrite ^ /denied last;",
    "guard-first": "",
    "guard-set": "set $refused 1;",
}


@dataclass
class Edge:
    site: Profile
    other: Profile
    work: Path
    ports: dict[str, int]
    sites: dict[str, Path]
    backend: EchoBackend

    def found(self, case: str) -> list[doctor.Finding]:
        return doctor.diagnose(self.site, self.sites[case]).findings

    def line(self, case: str, text: str, nth: int = 0) -> int:
        lines = self.sites[case].read_text().splitlines()
        return [n for n, line in enumerate(lines, 1) if text in line][nth]


def tls_server(profile: Profile, name: str, listen: str, body: str, verify: str = "on") -> str:
    return f"""
server {{
    listen {listen};
    server_name {name};
    ssl_certificate "{profile.fullchain_path(name)}";
    ssl_certificate_key "{profile.key_path(name)}";
    ssl_client_certificate "{profile.ca_cert}";
    ssl_crl "{profile.crl}";
    ssl_verify_client {verify};
    ssl_verify_depth 1;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
{body}
}}
"""


def cases(site: Profile, other: Profile, ports: dict[str, int], upstream: str) -> dict[str, str]:
    app = f"proxy_pass {upstream};"
    verify = "proxy_set_header X-Client-Verify $ssl_client_verify;"
    plain = f"    location / {{ {verify} {app} }}"
    deep = f"""
    location / {{
        {verify}
        if ($request_method = GET) {{ {app} }}
    }}
    location /le/ {{
        limit_except POST {{ {app} }}
    }}
    location /outer/ {{
        {verify}
        location /outer/inner/ {{ {app} }}
    }}"""
    guard_page = f"""
    if ($ssl_client_verify != SUCCESS) {{ return 403; }}
    error_page 403 = @app;
    location @app {{ {verify} {app} }}
{plain}"""
    early_page = f"""
    error_page 400 497 = @app;
    location @app {{ {verify} {app} }}
{plain}"""

    def guard(first: str) -> str:
        return f"""
    if ($ssl_client_verify != SUCCESS) {{ {first} return 403; }}
    location /denied {{ {verify} {app} }}
{plain}"""

    listen = {name: f"127.0.0.1:{port} ssl" for name, port in ports.items()}
    spelled = f'"127.000.000.001:{ports["spelled"]}" ssl default_server'
    return {
        "deep": tls_server(site, APP, listen["deep"], deep, "optional"),
        "guard-page": tls_server(site, APP, listen["guard-page"], guard_page, "optional"),
        "early-page": tls_server(site, APP, listen["early-page"], early_page),
        **{
            name: tls_server(site, APP, listen[name], guard(first), "optional")
            for name, first in GUARDS.items()
        },
        # this one's listen has no ssl: the other server's makes the socket TLS
        "spelled": tls_server(site, APP, f"127.0.0.1:{ports['spelled']}", plain)
        + tls_server(other, OTHER, spelled, plain),
    }


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("doctor-nginx")
    home = root / "certs"
    site, other = ca.init("site", home), ca.init("other", home)
    issue.issue_server(site, APP)
    issue.issue_server(other, OTHER)
    issue.issue_client(other, "eve")
    backend = EchoBackend().start()
    ports = {name: free_port() for name in ("deep", "guard-page", "early-page", "spelled", *GUARDS)}
    sites = {}
    for name, text in cases(site, other, ports, f"http://127.0.0.1:{backend.port}").items():
        sites[name] = root / f"{name}.conf"
        sites[name].write_text(text)
    nginx = LocalNginx(root / "nginx", list(sites.values()))
    try:
        nginx.start()
        yield Edge(site, other, root, ports, sites, backend)
    finally:
        nginx.stop()
        backend.stop()


def get(edge: Edge, case: str, path: str, **kw: object) -> tuple[int, str]:
    """curl https://app.test:PORT/PATH with no client certificate."""
    port = edge.ports[case]
    r = curl(f"https://{APP}:{port}{path}", edge.work, ca=edge.site.ca_cert,
             resolve=f"{APP}:{port}:127.0.0.1", **kw)  # type: ignore[arg-type]  # fmt: skip
    return r.status, r.body


def reached_app(body: str) -> dict[str, str]:
    """The headers the echo backend got (it answers only what reached it)."""
    return {k.lower(): v for k, v in json.loads(body)["headers"].items()}


def ids(found: list[doctor.Finding]) -> list[tuple[str, int]]:
    return sorted((f.id, f.line) for f in found)


def test_a_pass_at_any_depth_is_checked(edge: Edge) -> None:
    """F5: no client certificate, and the app answers through each of the three."""
    for path in ("/", "/le/", "/outer/inner/"):
        status, body = get(edge, "deep", path)
        assert status == 200, (path, body)
        assert reached_app(body).get("x-client-verify") in ("NONE", None)
    # the header check walks the same tree: /le/ sets no X-Client-Verify of its own
    status, body = get(edge, "deep", "/le/", headers={"X-Client-Verify": "SUCCESS"})
    assert (status, reached_app(body)["x-client-verify"]) == (200, "SUCCESS")
    passes = [edge.line("deep", "proxy_pass", n) for n in range(3)]
    assert ids(edge.found("deep")) == sorted(
        [("verify-optional-unchecked", line) for line in passes] + [("header-forgeable", passes[1])]
    )


def test_one_socket_however_spelled_and_ssl_on_any_listen_of_it(edge: Edge) -> None:
    """F3: the other profile's client, by IP (no SNI), names this server in Host: the
    other server (default) made the handshake with its CA and this server answers."""
    port = edge.ports["spelled"]
    other = edge.other.dir
    r = curl(f"https://127.0.0.1:{port}/x", edge.work, ca=edge.other.ca_cert,
             cert=other / "issued" / "eve.crt", key=other / "private" / "eve.key",
             headers={"Host": APP}, extra=("--insecure",))  # fmt: skip
    assert r.status == 200, (r.body, r.stderr)
    assert reached_app(r.body)["x-client-verify"] == "SUCCESS"  # eve, verified by OTHER's CA
    listen = edge.line("spelled", f"listen 127.0.0.1:{port};")
    found = edge.found("spelled")
    # not listen-without-ssl; and the other profile's server proxies to this one's app
    # (attack round 12, F12): eve gets in by its own name too
    other_pass = ("upstream-without-mtls", edge.line("spelled", "proxy_pass", 1))
    assert ids(found) == sorted([("shared-listen-unguarded", listen), other_pass])
    shared = next(f for f in found if f.id == "shared-listen-unguarded")
    assert f"listen on 127.0.0.1:{port}" in shared.message


def raw(port: int, request: bytes, tls: bool = True) -> bytes:
    """REQUEST as sent, over TLS without a client certificate (or plain), the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        conn: socket.socket = plain
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            conn = context.wrap_socket(plain, server_hostname=APP)
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def test_an_error_page_for_what_a_guard_returns_is_a_bypass(edge: Edge) -> None:
    """F4: the guard refuses with 403, error_page 403 = @app proxies it anyway."""
    status, body = get(edge, "guard-page", "/secret")
    assert status == 200, body
    assert json.loads(body)["path"] == "/secret"
    assert reached_app(body)["x-client-verify"] == "NONE"
    assert ids(edge.found("guard-page")) == [
        ("error-page-passes", edge.line("guard-page", "error_page 403"))
    ]


def test_an_error_page_for_what_nginx_refuses_first_is_a_bypass(edge: Edge) -> None:
    """F4: `ssl_verify_client on`, yet a malformed header (400, read before the
    certificate check) and plain http on the TLS port (497) reach @app, no certificate."""
    port = edge.ports["early-page"]
    bad = b"GET /secret HTTP/1.1\r\nHost: app.test\r\nBad Header\r\nConnection: close\r\n\r\n"
    plain = b"GET /secret HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    for answer in (raw(port, bad), raw(port, plain, tls=False)):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer[:300]
        assert json.loads(body)["path"] == "/secret"
    assert get(edge, "early-page", "/secret")[0] == 400  # a well-formed request is refused
    assert ids(edge.found("early-page")) == [
        ("error-page-passes", edge.line("early-page", "error_page 400 497"))
    ]


@pytest.mark.parametrize(
    ("case", "path"), [("guard-break", "/admin"), ("guard-rewrite", "/denied")]
)
def test_a_guard_that_stops_before_its_return_is_no_guard(edge: Edge, case: str, path: str) -> None:
    """F3 (round 13): `if ($ssl_client_verify != SUCCESS) { break; return 403; }` (or
    `rewrite ... last` first): the if block's rewrite directives run in order, the
    return never does, a client without a certificate reaches the app."""
    status, body = get(edge, case, "/admin")
    assert status == 200, body
    assert json.loads(body)["path"] == path
    assert reached_app(body)["x-client-verify"] == "NONE"
    found = ids(edge.found(case))
    assert found and {id for id, _ in found} == {"verify-optional-unchecked"}


@pytest.mark.parametrize("case", ["guard-first", "guard-set"])
def test_a_guard_whose_return_runs_is_clean(edge: Edge, case: str) -> None:
    """The same guard with its `return` first, or after a `set`: refused, and clean."""
    assert get(edge, case, "/admin")[0] == 403
    assert edge.found(case) == []
