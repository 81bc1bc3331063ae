"""One profile's client never reaches another profile's app on a shared listen address.

Real nginx, real curl and `openssl s_client`. Four profiles whose CAs all carry the
same CN (so issuer DNs tell nothing) each render a server onto ONE address:port,
in front of one echo backend (each profile's upstream has its own path prefix, so
the backend shows whose app a request reached). For two, three and four servers on
the port, in both include orders, every client is sent to every server:

- by name with SNI (curl --resolve),
- with the SNI of its own server but the Host of another (curl --connect-to),
- by IP address, so without SNI, with the other server's name in Host (curl),
- by name without SNI (`openssl s_client -noservername`).

A request is served only by its own profile's server and only when that server made
the handshake: with SNI naming it, or without SNI when it is its listen's default
server. Everything else is refused (400 by the CA check, 421 by the handshake
guard or nginx's own SNI check) and never reaches the backend.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz import nginx as certwiz_nginx
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke
from tests.nginx_support import curl, render_argv, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SHARED_CN = "Shared Root CA"  # every CA has this CN: only the keys differ
SERVERS = {"alpha": "a.test", "beta": "b.test", "gamma": "c.test", "ipsite": "127.0.0.1"}


@dataclass
class Lab:
    home: Path
    work: Path
    port: int
    backend: EchoBackend
    ca_bundle: Path
    nginx: LocalNginx | None = None

    def cert(self, profile: str) -> tuple[Path, Path]:
        d = self.home / profile
        return d / "issued" / f"{profile}-bot.crt", d / "private" / f"{profile}-bot.key"

    def site(self, profile: str, default: bool) -> Path:
        """The rendered mtls_proxy.conf of PROFILE, as default server or --sni-only."""
        out = self.work / "conf" / f"{profile}-{'default' if default else 'sni'}"
        if not out.is_dir():
            args = render_argv(
                profile,
                SERVERS[profile],
                f"http://127.0.0.1:{self.backend.port}/{profile}/",
                f"127.0.0.1:{self.port}",
                out,
            )
            result = invoke(self.home, *args, *([] if default else ["--sni-only"]))
            assert result.returncode == 0, result.stderr
        return out / "mtls_proxy.conf"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("isolation")
    home = root / "certs"
    for profile, server in SERVERS.items():
        for args in (
            ("ca", "init", "-p", profile, "--cn", SHARED_CN),
            ("server", "issue", "-p", profile, "-n", server, "--san", "127.0.0.1"),
            ("client", "issue", "-p", profile, "-n", f"{profile}-bot", "-u"),
        ):
            result = invoke(home, *args)
            assert result.returncode == 0, (args, result.stderr)
    bundle = root / "all-cas.pem"
    bundle.write_bytes(b"".join((home / p / "ca.crt").read_bytes() for p in SERVERS))
    backend = EchoBackend().start()
    port = free_port()
    lab = Lab(home, root, port, backend, bundle)
    server = LocalNginx(root / "nginx", [lab.site("alpha", True)])
    try:
        lab.nginx = server.start()
        yield lab
    finally:
        server.stop()
        backend.stop()


def reached(lab: Lab, before: int) -> list[str]:
    """The apps (profiles) that requests since BEFORE reached."""
    return [r["path"].split("/")[1] for r in lab.backend.requests[before:]]


def by_curl(lab: Lab, client: str, sni: str | None, host: str) -> int:
    """One GET as CLIENT: with SNI (connect to the name) or by IP (no SNI), Host given."""
    cert, key = lab.cert(client)
    port = lab.port
    if sni is None:
        url, extra = f"https://127.0.0.1:{port}/x", ()
    else:
        url, extra = f"https://{sni}:{port}/x", ("--connect-to", f"{sni}:{port}:127.0.0.1:{port}")
    result = curl(
        url,
        lab.work,
        ca=lab.ca_bundle,
        cert=cert,
        key=key,
        headers={"Host": host},
        extra=extra,
    )
    assert result.returncode == 0, result.stderr  # the handshake completes; HTTP decides
    return result.status


def by_s_client(lab: Lab, client: str, host: str) -> int:
    """One GET as CLIENT by name but without SNI: `openssl s_client -noservername`."""
    cert, key = lab.cert(client)
    proc = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{lab.port}",
            "-noservername",
            "-CAfile",
            str(lab.ca_bundle),
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-quiet",
        ],
        input=f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    status = re.search(r"^HTTP/1\.1 (\d{3}) ", proc.stdout, re.M)
    assert status, (proc.returncode, proc.stdout, proc.stderr)
    return int(status.group(1))


def expected(client: str, server: str, handshake_by: str, sni: bool, default: bool) -> int:
    """200 only for a server's own client on a handshake it knows it made itself.

    A handshake made by another server's CA rejects the certificate (400), unless
    that other server is the client's own: then the certificate is fine and the
    guard (or nginx's SNI check) refuses to serve another server's request (421).
    Without SNI only an explicit default server knows the handshake was its own: an
    --sni-only server that nginx made the default by include order still says 421.
    """
    if handshake_by != client:
        return 400
    return 200 if server == client and (sni or default) else 421


LAYOUTS = {
    # name: [(profile, default_server)], in include order; reversed too
    "two": [("alpha", True), ("beta", False)],
    "three": [("alpha", True), ("beta", False), ("gamma", False)],
    "ip-default": [("ipsite", True), ("alpha", False), ("beta", False)],
    "no-default": [("alpha", False), ("beta", False), ("gamma", False)],
}


@pytest.mark.parametrize("order", ["as-listed", "reversed"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_client_reaches_only_its_own_profiles_app(lab: Lab, layout: str, order: str) -> None:
    servers = LAYOUTS[layout] if order == "as-listed" else LAYOUTS[layout][::-1]
    assert lab.nginx is not None
    lab.nginx.serve([lab.site(profile, default) for profile, default in servers])
    names = [profile for profile, _ in servers]
    explicit = [profile for profile, default in servers if default]
    # Without SNI nginx makes the handshake in the default server: the one marked so,
    # else the first in include order.
    no_sni_handshake = explicit[0] if explicit else names[0]
    clients = [*names, *(p for p in SERVERS if p not in names)][:4]
    wrong: list[str] = []

    def check(what: str, client: str, server: str, status: int, want: int, before: int) -> None:
        got = reached(lab, before)
        ok = got == ([server] if want == 200 else [])
        if status != want or not ok:
            wrong.append(
                f"{what}: client of {client} -> {server}: HTTP {status} (want {want})"
                f", backend saw {got}"
            )

    for client in clients:
        for server in names:
            host = SERVERS[server]
            dns = server != "ipsite"
            cases: list[tuple[str, str | None, str]] = []
            if dns:
                cases.append(("SNI by name", host, server))
            if client in names and client not in (server, "ipsite"):
                cases.append(("SNI of its own server", SERVERS[client], client))
            cases.append(("by IP, no SNI", None, no_sni_handshake))
            for what, sni, handshake_by in cases:
                before = len(lab.backend.requests)
                status = by_curl(lab, client, sni, host)
                want = expected(client, server, handshake_by, sni is not None, server in explicit)
                check(what, client, server, status, want, before)
            before = len(lab.backend.requests)
            status = by_s_client(lab, client, host)
            want = expected(client, server, no_sni_handshake, False, server in explicit)
            check("s_client -noservername", client, server, status, want, before)
    assert not wrong, "\n".join(wrong)


def test_an_ip_address_server_cannot_be_sni_only(lab: Lab) -> None:
    """Clients send no SNI for an address, so such a server must be the default."""
    before = sorted(p.name for p in (lab.work / "conf").iterdir())
    result = invoke(
        lab.home,
        "nginx",
        "render",
        "-p",
        "ipsite",
        "--server",
        "127.0.0.1",
        "--upstream",
        "http://127.0.0.1:1/",
        "--sni-only",
        "--out",
        str(lab.work / "conf" / "refused"),
    )
    assert result.returncode == 2
    assert result.stderr.startswith("certwiz: error: sni-only: 127.0.0.1 is an IP address")
    assert len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in (lab.work / "conf").iterdir()) == before


def test_two_default_servers_on_one_address_are_refused_by_nginx_t(lab: Lab) -> None:
    """The second profile rendered without --sni-only: nginx -t names the clash."""
    prefix = lab.work / "clash"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        certwiz_nginx.render_standalone(prefix, [lab.site("alpha", True), lab.site("beta", True)])
    )
    proc = subprocess.run(
        [require_nginx(), "-p", str(prefix), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "duplicate default server" in proc.stderr
