"""An https:// upstream is verified: an impostor on its address gets nothing (issue 13 item 9).

Real nginx in front of two real https echo backends: the genuine one, with a server
certificate from the upstream's CA, and an impostor with a certificate for the very
same names from another CA. Before, nginx proxied to either without a check, so the
impostor received every identity header.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke, snapshot
from tests.nginx_support import curl_as, render_argv, require_curl, require_nginx

SERVERS = {"genuine.test": "localhost", "impostor.test": "localhost"}


@dataclass
class Chain:
    home: Path
    work: Path
    port: int
    genuine: EchoBackend
    impostor: EchoBackend
    nginx: LocalNginx

    def get(self, server: str) -> tuple[int, str]:
        result = curl_as(self.home / "site", "bob", server, self.port, self.work)
        assert result.returncode == 0, result.stderr
        return result.status, result.body


def tls_backend(profile: Path) -> EchoBackend:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(
        profile / "issued" / "localhost.fullchain.pem", profile / "private" / "localhost.key"
    )
    return EchoBackend(tls=ctx).start()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("upstream")
    home = root / "certs"
    steps = [("ca", "init", "-p", "site"), ("client", "issue", "-p", "site", "-n", "bob", "-u")]
    steps += [("server", "issue", "-p", "site", "-n", name) for name in SERVERS]
    for upstream_profile in ("upstream", "evil"):  # the same names, two different CAs
        steps += [
            ("ca", "init", "-p", upstream_profile, "--cn", "Upstream CA"),
            ("server", "issue", "-p", upstream_profile, "-n", "localhost", "--san", "127.0.0.1"),
        ]
    for args in steps:
        result = invoke(home, *args)
        assert result.returncode == 0, (args, result.stderr)
    genuine, impostor = tls_backend(home / "upstream"), tls_backend(home / "evil")
    port = free_port()
    sites = []
    for i, (server, host) in enumerate(SERVERS.items()):
        backend = impostor if server == "impostor.test" else genuine
        argv = render_argv(
            "site", server, f"https://{host}:{backend.port}", f"127.0.0.1:{port}", root / server
        )
        ca_file = home / "upstream" / "ca.crt"
        extra = ["--upstream-ca", str(ca_file), *(["--sni-only"] if i else [])]
        result = invoke(home, *argv, *extra)
        assert result.returncode == 0, result.stderr
        sites.append(root / server / "mtls_proxy.conf")
    server = LocalNginx(root / "nginx", sites)
    try:
        yield Chain(home, root, port, genuine, impostor, server.start())
    finally:
        server.stop()
        genuine.stop()
        impostor.stop()


@pytest.mark.nginx
def test_the_genuine_upstream_gets_the_request(chain: Chain) -> None:
    before = len(chain.genuine.requests)
    status, body = chain.get("genuine.test")
    assert status == 200, body
    assert json.loads(body)["headers"]["X-Client-Verify"] == "SUCCESS"
    assert len(chain.genuine.requests) == before + 1


@pytest.mark.nginx
def test_an_impostor_upstream_receives_nothing(chain: Chain) -> None:
    status, _ = chain.get("impostor.test")
    assert status == 502
    assert chain.impostor.requests == []
    assert "upstream SSL certificate verify error" in chain.nginx.log_tail(50)


@pytest.mark.parametrize(
    ("upstream", "ca", "rule"),
    [
        ("http://127.0.0.1:1", "site/ca.crt", "upstream-ca: is only for an https:// upstream"),
        ("https://localhost:1", "nowhere.pem", "upstream-ca: cannot read"),
        ("https://localhost:1", "site/index.txt", "upstream-ca: "),
        # nginx 1.22 checks only DNS names: "upstream SSL certificate does not match"
        ("https://127.0.0.1:8443", "site/ca.crt", "upstream: 'https://127.0.0.1:8443': nginx"),
        ("https://[::1]:8443", "site/ca.crt", "upstream: 'https://[::1]:8443': nginx"),
    ],
)
def test_bad_upstream_ca_is_refused(home: Path, upstream: str, ca: str, rule: str) -> None:
    for args in (("ca", "init", "-p", "site"), ("server", "issue", "-p", "site", "-n", "a.test")):
        assert invoke(home, *args).returncode == 0
    before = snapshot(home)
    argv = render_argv("site", "a.test", upstream, "8443", home / "out")
    result = invoke(home, *argv, "--upstream-ca", str(home / ca))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"certwiz: error: {rule}"), line
    assert snapshot(home) == before


def test_https_upstream_without_upstream_ca_uses_the_system_bundle(home: Path) -> None:
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    for args in (("ca", "init", "-p", "site"), ("server", "issue", "-p", "site", "-n", "a.test")):
        assert invoke(home, *args).returncode == 0
    argv = render_argv("site", "a.test", "https://api.example.com", "8443", home / "out")
    result = invoke(home, *argv)
    if not bundle.is_file():
        assert result.returncode == 2 and "--upstream-ca FILE" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    text = (home / "out" / "mtls_proxy.conf").read_text()
    for line in (
        "proxy_ssl_verify on;",
        f'proxy_ssl_trusted_certificate "{bundle}";',
        'proxy_ssl_name "api.example.com";',
        "proxy_ssl_server_name on;",
    ):
        assert f"    {line}\n" in text
