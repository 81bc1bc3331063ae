"""doctor: an identity header is trustworthy only when the TLS layer fixes its value
(attack round 12, F3).

The attacker's server verified client certificates (`ssl_verify_client on`) but set the
X-Client-* headers from what the client writes: `$arg_`, `$cookie_`, `$remote_user`,
`${http_...}`, `$HTTP_...` in capitals, a `map` of `$http_...`, a `map` of `$http_...`
onto literals, a `set` from `$http_...`. A verified client's forged values reached the
echo backend through a real nginx, and doctor said "no findings" (it looked for the text
"$http_" only). Round 14: doctor trusted any name starting ssl_ (a regex named capture
`(?<ssl_client_name>...)`, a `geo $http_x_fwd $ssl_geo`) and a map of `$ssl_client_s_dn`
that a `set` from `$http_...` overrides. Now the value must come from nginx's own
`$ssl_*` variables or literals, or maps and sets built from those; anything else is
`header-forgeable`. The clean site (the same real nginx) sets them from `$ssl_client_*`,
`${SSL_CLIENT_I_DN}`, a map of `$ssl_client_verify` and a map capturing the CN of
`$ssl_client_s_dn`: the backend gets the real values whatever the client sends, and
doctor has no finding.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz import ca, doctor, issue
from certwiz.doctor import values
from certwiz.doctor.conf import load
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.nginx_support import curl_as, require_curl, require_nginx

pytestmark = pytest.mark.nginx

APP = "app.test"

FORGED = """
map $http_x_who $who { default $http_x_who; }
map $http_x_role $role { default NONE; admin SUCCESS; }
geo $http_x_fwd $ssl_geo { default NONE; 10.0.0.1 SUCCESS; }
map $ssl_client_s_dn $whom { default $ssl_client_s_dn; }
"""
FORGED_HEADERS = {
    "X-Client-Cert-Subject": "$arg_subject",
    "X-Client-Cert": "$cookie_cert",
    "X-Client-Cert-Serial": "$remote_user",
    "X-Client-Cert-Issuer": "$who",
    "X-Client-Cert-Fingerprint": '"${http_x_fp}"',
    "X-Client-Cert-Not-After": "$HTTP_X_NA",
    "X-Client-Verify": "$role",
    "X-Client-Cert-Dn": "$dn",
    # attack round 14: ssl_-named variables the configuration defines, and a set over a map
    "X-Client-Name": "$ssl_client_name",
    "X-Client-Geo": "$ssl_geo",
    "X-Client-Whom": "$whom",
    "X-Client-Verified": "$ssl_client_verify",
}
FORGED_BODY = """
        set $dn $http_x_dn;
        set $whom $http_x_whom;
        if ($http_x_user ~ (?<ssl_client_name>.+)) {}
        if ($http_x_v ~ (?<ssl_client_verify>.+)) {}
"""

CLEAN = """
map $ssl_client_verify $verified { default no; SUCCESS yes; }
map $ssl_client_s_dn $cn { default ""; "~CN=([^,]+)" $1; }
"""
CLEAN_HEADERS = {
    "X-Client-Verify": "$ssl_client_verify",
    "X-Client-Cert-Subject": "$ssl_client_s_dn",
    "X-Client-Cert-Issuer": '"${SSL_CLIENT_I_DN}"',
    "X-Client-Verified": "$verified",
    "X-Client-Cn": "$cn",
    "X-Client-Cert": '""',
}


def site(profile: Profile, port: int, http: str, headers: dict[str, str], body: str) -> str:
    lines = "\n".join(f"        proxy_set_header {k} {v};" for k, v in headers.items())
    return f"""{http}
server {{
    listen 127.0.0.1:{port} ssl;
    server_name {APP};
    ssl_certificate "{profile.fullchain_path(APP)}";
    ssl_certificate_key "{profile.key_path(APP)}";
    ssl_client_certificate "{profile.ca_cert}";
    ssl_crl "{profile.crl}";
    ssl_verify_client on;
    ssl_verify_depth 1;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{
{body}
{lines}
        proxy_pass {{upstream}};
    }}
}}
"""


PLAIN = "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://0:{{port}}; }} }}\n"


@dataclass
class Edge:
    profile: Profile
    work: Path
    ports: dict[str, int]
    sites: dict[str, Path]

    def sent(self, case: str, path: str, headers: dict[str, str]) -> dict[str, str]:
        """What the echo backend got from bob (verified) asking for PATH with HEADERS."""
        r = curl_as(self.profile.dir, "bob", APP, self.ports[case], self.work, path,
                    headers=headers)  # fmt: skip
        assert r.status == 200, (r.body, r.stderr)
        return {k.lower(): v for k, v in json.loads(r.body)["headers"].items()}

    def found(self, case: str) -> list[tuple[str, int]]:
        return sorted(
            (f.id, f.line) for f in doctor.diagnose(self.profile, self.sites[case]).findings
        )

    def line(self, case: str, text: str) -> int:
        lines = self.sites[case].read_text().splitlines()
        return next(n for n, line in enumerate(lines, 1) if text in line)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("doctor-values")
    profile = ca.init("site", root / "certs")
    issue.issue_server(profile, APP)
    issue.issue_client(profile, "bob")
    backend = EchoBackend().start()
    upstream = f"http://127.0.0.1:{backend.port}"
    ports = {
        "forged": free_port(),
        "clean": free_port(),
        "reach": free_port(),
        "plain": free_port(),
    }
    texts = {
        "forged": site(profile, ports["forged"], FORGED, FORGED_HEADERS,
                       FORGED_BODY),
        "clean": site(profile, ports["clean"], CLEAN, CLEAN_HEADERS, ""),
        # attack round 14, F4: 0 is the local host to the resolver, and Linux connects
        # 0.0.0.0 to 127.0.0.1: a plain server beside the mTLS one serves its application
        "reach": site(profile, ports["reach"], "", {"X-Client-Verify": "$ssl_client_verify"}, "")
        + PLAIN.format(port=ports["plain"]),
    }  # fmt: skip
    sites = {}
    for name, text in texts.items():
        sites[name] = root / f"{name}.conf"
        sites[name].write_text(
            text.replace("{upstream}", upstream).replace("{port}", str(backend.port))
        )
    # one nginx each: the forged site's named capture over $ssl_client_verify empties
    # that variable in every server of its http block (the clean site's too)
    nginxes = [LocalNginx(root / f"nginx-{name}", [path]) for name, path in sites.items()]
    try:
        for nginx in nginxes:
            nginx.start()
        yield Edge(profile, root, ports, sites)
    finally:
        for nginx in nginxes:
            nginx.stop()
        backend.stop()


def test_identity_headers_from_what_the_client_writes_are_forgeable(edge: Edge) -> None:
    basic = base64.b64encode(b"CN=admin:x").decode()
    got = edge.sent("forged", "/?subject=CN=admin", {
        "Cookie": "cert=forged-pem", "Authorization": f"Basic {basic}", "X-Who": "CN=Root CA",
        "X-Fp": "forged-fp", "X-Na": "forged-na", "X-Role": "admin", "X-Dn": "CN=admin",
        "X-User": "CN=admin", "X-Fwd": "10.0.0.1", "X-Whom": "CN=admin",
        "X-V": "FORGED",
    })  # fmt: skip
    assert {k: got.get(k.lower()) for k in FORGED_HEADERS} == {
        "X-Client-Cert-Subject": "CN=admin",
        "X-Client-Cert": "forged-pem",
        "X-Client-Cert-Serial": "CN=admin",
        "X-Client-Cert-Issuer": "CN=Root CA",
        "X-Client-Cert-Fingerprint": "forged-fp",
        "X-Client-Cert-Not-After": "forged-na",  # $HTTP_X_NA is $http_x_na to nginx
        "X-Client-Verify": "SUCCESS",  # a literal, but the client picks it
        "X-Client-Cert-Dn": "CN=admin",
        "X-Client-Name": "CN=admin",  # a named capture of the client's header
        "X-Client-Geo": "SUCCESS",  # a geo of the client's header
        "X-Client-Whom": "CN=admin",  # the set overrides the map of $ssl_client_s_dn
        "X-Client-Verified": "FORGED",  # a named capture over nginx's own variable
    }
    assert edge.found("forged") == sorted(
        ("header-forgeable", edge.line("forged", f"proxy_set_header {name} "))
        for name in FORGED_HEADERS
    )


def test_a_plain_server_to_0_reaches_the_protected_application(edge: Edge) -> None:
    """proxy_pass http://0:P is the mTLS server's http://127.0.0.1:P (attack round 14)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.ports['plain']}/") as answer:
        assert "headers" in json.loads(answer.read())  # the echo backend, no certificate
    assert edge.found("reach") == [("upstream-without-mtls", edge.line("reach", "http://0:"))]


def test_identity_headers_from_the_handshake_are_clean(edge: Edge) -> None:
    forged = {name: "forged" for name in CLEAN_HEADERS}
    got = edge.sent("clean", "/", forged)
    assert got["x-client-verify"] == "SUCCESS"
    assert got["x-client-cert-subject"] == "CN=bob"
    assert got["x-client-cert-issuer"].startswith("CN=")
    assert got["x-client-cert-issuer"] != "forged"
    assert (got["x-client-verified"], got["x-client-cn"]) == ("yes", "bob")
    assert "x-client-cert" not in got
    assert edge.found("clean") == []


@pytest.mark.parametrize(
    "definition",
    [
        "server { location ~ ^/u/(?<ssl_client_verify>[^/]+) { return 204; } }",
        "server { location ~ ^/u/(?P<ssl_client_verify>[^/]+) { return 204; } }",
        "server { server_name ~^(?'ssl_client_verify'.+)$; }",
        "server { if ($http_x_v ~ (?<SSL_CLIENT_VERIFY>.+)) { return 204; } }",
        "map $http_host $y { ~^(?<ssl_client_verify>.+)$ 1; }",
        "geo $http_x_fwd $ssl_client_verify { default SUCCESS; }",
        "split_clients $http_x_a $ssl_client_verify { 50% SUCCESS; * NONE; }",
        "server { location / { auth_request_set $ssl_client_verify $upstream_http_x; } }",
        "js_set $ssl_client_verify main.f;",
        "perl_set $ssl_client_verify 'sub { 1 }';",
    ],
)
def test_a_redefined_handshake_name_is_the_clients(definition: str, tmp_path: Path) -> None:
    """nginx accepts a named capture, geo... over its own $ssl_client_verify (nginx -t
    says so); doctor traces the definitions, not the spelling (attack round 14)."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"http {{ {definition} }}\n")
    sources = values.Sources.of(load(conf))
    assert sources.forgeable("$ssl_client_verify") is not None
    assert sources.forgeable("$ssl_client_s_dn") is None


def test_an_ssl_name_nginx_does_not_define_is_no_handshake_value(tmp_path: Path) -> None:
    """Only ngx_http_ssl_module's own variables are the handshake's (attack round 14)."""
    conf = tmp_path / "nginx.conf"
    conf.write_text("http { }\n")
    sources = values.Sources.of(load(conf))
    assert sources.forgeable("$ssl_client_user") is not None
    assert sources.forgeable("$ssl_server_name") is not None
    assert sources.forgeable("$ssl_client_s_dn$ssl_client_fingerprint$ssl_protocol") is None
