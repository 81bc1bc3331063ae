"""doctor checks the identity headers of every pass module (attack round 11, F1).

proxy_set_header applies to proxy_pass only: a location that hands requests to an SCGI
or uwsgi application sends the client's own X-Client-Cert-Subject as
HTTP_X_CLIENT_CERT_SUBJECT unless that module's *_param replaces it. One real nginx,
one server per case on its own 127.0.0.1 port (each in its own site file doctor reads
alone), a real SCGI, uwsgi and FastCGI backend here that answers with the HTTP_* parameters it
received (and nginx itself as the HTTP/2 backend of grpc_pass, answering the headers it
got), and a verified client (alice) that sends a forged subject.
"""

from __future__ import annotations

import json
import socketserver
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz import ca, doctor, issue
from certwiz.doctor.headers import SENDERS
from certwiz.profile import Profile
from examples.local_nginx import LocalNginx, free_port
from tests.nginx_support import curl_as, require_curl, require_nginx

pytestmark = pytest.mark.nginx

APP = "app.test"
FORGED = {"X-Client-Cert-Subject": "CN=admin", "X-Client-Verify": "SUCCESS"}
SUBJECT, VERIFY = "HTTP_X_CLIENT_CERT_SUBJECT", "HTTP_X_CLIENT_VERIFY"


def _scgi(stream: socketserver.StreamRequestHandler) -> dict[str, str]:
    """An SCGI request's parameters: a netstring `LEN:name\\0value\\0...,`."""
    length = b""
    while (ch := stream.rfile.read(1)) != b":":
        length += ch
    data = stream.rfile.read(int(length))
    items = data.split(b"\0")
    return {k.decode(): v.decode() for k, v in zip(items[::2], items[1::2], strict=False)}


def _uwsgi(stream: socketserver.StreamRequestHandler) -> dict[str, str]:
    """A uwsgi request's parameters: a 4-byte header, then 16-bit little-endian
    length-prefixed names and values."""
    _, size, _ = struct.unpack("<BHB", stream.rfile.read(4))
    data, out, at = stream.rfile.read(size), {}, 0
    while at < size:
        (n,) = struct.unpack_from("<H", data, at)
        name = data[at + 2 : at + 2 + n].decode()
        at += 2 + n
        (n,) = struct.unpack_from("<H", data, at)
        out[name] = data[at + 2 : at + 2 + n].decode()
        at += 2 + n
    return out


def _record(kind: int, content: bytes) -> bytes:
    """One FastCGI record of request 1 (what nginx sends)."""
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), 0, 0) + content


def _fastcgi(stream: socketserver.StreamRequestHandler) -> dict[str, str]:
    """A FastCGI request's parameters: PARAMS records (type 4) up to an empty one, each
    a run of name-value pairs whose lengths take 1 byte, or 4 with the top bit set; then
    the request body (STDIN, type 5) up to an empty record."""
    params, done = b"", False
    while not done:
        _, kind, _, size, padding, _ = struct.unpack(">BBHHBB", stream.rfile.read(8))
        content = stream.rfile.read(size + padding)[:size]
        params += content if kind == 4 else b""
        done = kind == 5 and size == 0
    out, at = {}, 0

    def length() -> int:
        nonlocal at
        if params[at] < 128:
            at += 1
            return params[at - 1]
        at += 4
        return int(struct.unpack_from(">I", params, at - 4)[0]) & 0x7FFFFFFF

    while at < len(params):
        n, v = length(), length()
        out[params[at : at + n].decode()] = params[at + n : at + n + v].decode()
        at += n + v
    return out


class _Backend(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


# protocol -> (read a request's parameters, frame the answer)
PROTOCOLS = {
    "scgi": (_scgi, lambda answer: b"Status: 200 OK\r\n" + answer),
    "uwsgi": (_uwsgi, lambda answer: b"HTTP/1.0 200 OK\r\n" + answer),
    "fastcgi": (
        _fastcgi,
        lambda answer: (
            _record(6, b"Status: 200 OK\r\n" + answer) + _record(6, b"") + _record(3, bytes(8))
        ),  # END_REQUEST: request complete
    ),
}


def backend(protocol: str) -> _Backend:
    """An application of PROTOCOL on a free 127.0.0.1 port: it answers the HTTP_*
    parameters (the request headers, as a CGI app reads them) as JSON."""
    read, frame = PROTOCOLS[protocol]

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            params = {k: v for k, v in read(self).items() if k.startswith("HTTP_")}
            answer = b"Content-Type: application/json\r\n\r\n" + json.dumps(params).encode()
            self.wfile.write(frame(answer))

    server = _Backend(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# case -> (the location's directives before its pass, the module)
CASES = {
    # the attacker's: proxy.inc's headers at the server level, scgi_params, scgi_pass
    "scgi-open": ("include /etc/nginx/scgi_params;", "scgi"),
    "scgi-set": (
        "include /etc/nginx/scgi_params; scgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        "scgi_param HTTP_X_CLIENT_CERT_SUBJECT $ssl_client_s_dn;",
        "scgi",
    ),
    # nginx compares the name after HTTP_ with `-` read as `_`: a dash replaces nothing
    "scgi-dash": (
        "scgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        "scgi_param HTTP_X-CLIENT-CERT-SUBJECT $ssl_client_s_dn;",
        "scgi",
    ),
    # ... the prefix in capitals (http_ is another parameter), the rest in any case
    "scgi-lower-prefix": (
        "scgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        "scgi_param http_x_client_cert_subject $ssl_client_s_dn;",
        "scgi",
    ),
    "scgi-mixed-rest": (
        "scgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        "scgi_param HTTP_x_Client_Cert_SUBJECT $ssl_client_s_dn;",
        "scgi",
    ),
    "scgi-off": ("scgi_pass_request_headers off;", "scgi"),
    "uwsgi-open": ("include /etc/nginx/uwsgi_params;", "uwsgi"),
    "uwsgi-cleared": (
        "uwsgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        'uwsgi_param HTTP_X_CLIENT_CERT_SUBJECT "";',
        "uwsgi",
    ),
    "fastcgi-open": ("include /etc/nginx/fastcgi_params;", "fastcgi"),
    "fastcgi-set": (
        "include /etc/nginx/fastcgi_params; "
        "fastcgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
        "fastcgi_param HTTP_X_CLIENT_CERT_SUBJECT $ssl_client_s_dn;",
        "fastcgi",
    ),
    # gRPC: proxy_set_header does not reach grpc_pass either; the backend is nginx (h2c)
    "grpc-open": ("", "grpc"),
    "grpc-cleared": (
        "grpc_set_header X-Client-Verify $ssl_client_verify; "
        'grpc_set_header X-Client-Cert-Subject "";',
        "grpc",
    ),
}

# An HTTP/2 (h2c) application for grpc_pass: nginx itself, answering the two headers.
GRPC_BACKEND = """
server {{
    listen 127.0.0.1:{port} http2;
    location / {{
        default_type application/json;
        return 200 '{{"HTTP_X_CLIENT_VERIFY": "$http_x_client_verify",
                     "HTTP_X_CLIENT_CERT_SUBJECT": "$http_x_client_cert_subject"}}';
    }}
}}
"""


@dataclass
class Edge:
    site: Profile
    work: Path
    ports: dict[str, int]
    sites: dict[str, Path]

    def sent(self, case: str) -> dict[str, str]:
        """What the application got from alice's request with forged headers."""
        r = curl_as(self.site.dir, "alice", APP, self.ports[case], self.work, headers=FORGED)
        assert r.status == 200, (case, r.status, r.body, r.stderr)
        return dict(json.loads(r.body))

    def found(self, case: str) -> list[doctor.Finding]:
        return doctor.diagnose(self.site, self.sites[case]).findings

    def line(self, case: str, text: str) -> int:
        lines = self.sites[case].read_text().splitlines()
        return next(n for n, line in enumerate(lines, 1) if text in line)


def site_conf(site: Profile, port: int, own: str, passing: str) -> str:
    return f"""
server {{
    listen 127.0.0.1:{port} ssl;
    server_name {APP};
    ssl_certificate "{site.fullchain_path(APP)}";
    ssl_certificate_key "{site.key_path(APP)}";
    ssl_client_certificate "{site.ca_cert}";
    ssl_crl "{site.crl}";
    ssl_verify_client on;
    ssl_verify_depth 1;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    proxy_set_header X-Client-Verify $ssl_client_verify;
    proxy_set_header X-Client-Cert-Subject $ssl_client_s_dn;
    location / {{
        {own}
        {passing};
    }}
}}
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("doctor-passes")
    site = ca.init("site", root / "certs")
    issue.issue_server(site, APP)
    issue.issue_client(site, "alice")
    backends = {name: backend(name) for name in PROTOCOLS}
    grpc = root / "grpc-backend.conf"
    targets = {name: f"127.0.0.1:{server.server_address[1]}" for name, server in backends.items()}
    targets["grpc"] = f"grpc://127.0.0.1:{free_port()}"
    grpc.write_text(GRPC_BACKEND.format(port=targets["grpc"].rsplit(":", 1)[1]))
    ports, sites = {}, {}
    for case, (own, protocol) in CASES.items():
        ports[case] = free_port()
        target = f"{protocol}_pass {targets[protocol]}"
        sites[case] = root / f"{case}.conf"
        sites[case].write_text(site_conf(site, ports[case], own, target))
    nginx = LocalNginx(root / "nginx", [*sites.values(), grpc])
    try:
        nginx.start()
        yield Edge(site, root, ports, sites)
    finally:
        nginx.stop()
        for server in backends.values():
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("case", ["scgi-open", "uwsgi-open", "fastcgi-open", "grpc-open"])
def test_a_pass_without_its_own_params_hands_on_the_forged_identity(edge: Edge, case: str) -> None:
    protocol = CASES[case][1]
    setter = SENDERS[f"{protocol}_pass"][0]
    assert edge.sent(case)[SUBJECT] == "CN=admin"  # proxy_set_header did nothing here
    found = edge.found(case)
    assert [(f.id, f.line) for f in found] == [
        ("header-forgeable", edge.line(case, f"{protocol}_pass"))
    ]
    assert "x-client-cert-subject, x-client-verify with" in found[0].message
    assert all(f"`{setter} " in f.fix for f in found)
    assert "proxy_set_header" not in found[0].fix


@pytest.mark.parametrize("case", ["scgi-dash", "scgi-lower-prefix"])
def test_a_param_name_nginx_does_not_match_replaces_no_header(edge: Edge, case: str) -> None:
    sent = edge.sent(case)
    assert sent[SUBJECT] == "CN=admin" and sent[VERIFY] == "SUCCESS"  # the real one, set
    found = edge.found(case)
    assert [(f.id, f.line) for f in found] == [("header-forgeable", edge.line(case, "scgi_pass"))]
    assert "x-client-cert-subject" in found[0].message


@pytest.mark.parametrize(
    "case",
    ["scgi-set", "scgi-mixed-rest", "scgi-off", "uwsgi-cleared", "fastcgi-set", "grpc-cleared"],
)
def test_a_pass_that_sets_or_drops_them_is_clean(edge: Edge, case: str) -> None:
    sent = edge.sent(case)
    assert "admin" not in json.dumps(sent)
    if case == "scgi-mixed-rest":  # sent as written; the client's is dropped all the same
        assert sent["HTTP_x_Client_Cert_SUBJECT"] == "CN=alice" and SUBJECT not in sent
    if case in ("scgi-set", "fastcgi-set"):
        assert sent[SUBJECT] == "CN=alice" and sent[VERIFY] == "SUCCESS"
    if case == "scgi-off":
        assert not any(k.startswith("HTTP_X_CLIENT") for k in sent), sent
    if case in ("uwsgi-cleared", "grpc-cleared"):
        assert sent.get(SUBJECT, "") == "" and sent[VERIFY] == "SUCCESS"  # nginx omits it
    assert edge.found(case) == [], [f.text() for f in edge.found(case)]
