"""Rendered into /etc/nginx/conf.d under Debian's own nginx.conf (issue 15).

Debian's stock nginx.conf says `include /etc/nginx/conf.d/*.conf;` inside http { },
next to its own `ssl_prefer_server_ciphers on;`. `nginx render --out .../conf.d` used
to write ssl.conf and proxy.conf there too, which that glob loaded in http { }:
`[emerg] "ssl_prefer_server_ciphers" directive is duplicate`. The include-only files
are now *.inc. Debian's error_log is at level `error`, which leaves out why nginx
refused a client certificate; `--error-log` renders a per-site log at `info`.

The test takes the machine's real /etc/nginx/nginx.conf (the nginx package's) and only
moves its paths (conf.d, sites-enabled, logs, pid) under a temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke, missing
from tests.nginx_support import curl_as, render_argv, require_curl, require_nginx

pytestmark = pytest.mark.nginx

STOCK = Path("/etc/nginx/nginx.conf")
SERVER = "deb.test"


def debian_conf(prefix: Path, etc: Path) -> str:
    """Debian's nginx.conf with its paths moved under PREFIX and ETC, nothing else."""
    if not STOCK.is_file():
        missing(f"{STOCK} (the nginx package's nginx.conf)", "apt-get install nginx")
    text = STOCK.read_text()
    for old, new in (
        ("/etc/nginx/conf.d/", f"{etc}/conf.d/"),
        ("/etc/nginx/sites-enabled/", f"{etc}/sites-enabled/"),
        ("/var/log/nginx/error.log", f"{prefix}/error.log"),
        ("/var/log/nginx/access.log", f"{prefix}/access.log"),
        ("/run/nginx.pid", f"{prefix}/nginx.pid"),
    ):
        assert old in text, f"{STOCK} no longer has {old}"
        text = text.replace(old, new)
    # What made the old render fail is still there.
    assert f"include {etc}/conf.d/*.conf;" in text and "ssl_prefer_server_ciphers" in text
    return text


class DebianNginx(LocalNginx):
    """LocalNginx running Debian's own nginx.conf instead of certwiz's standalone one."""

    def __init__(self, prefix: Path, etc: Path) -> None:
        super().__init__(prefix, [])
        self.etc = etc

    def _main_conf(self) -> str:
        return debian_conf(self.prefix, self.etc)


@dataclass
class Deb:
    home: Path
    etc: Path
    port: int
    nginx: DebianNginx
    site_log: Path
    work: Path

    def status(self, client: str) -> int:
        result = curl_as(self.home / "site", client, SERVER, self.port, self.work)
        assert result.returncode == 0, result.stderr
        return result.status


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deb]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("debian")
    home, etc, prefix = root / "certs", root / "etc", root / "run"
    for args in (
        ("ca", "init", "-p", "site"),
        ("server", "issue", "-p", "site", "-n", SERVER),
        ("client", "issue", "-p", "site", "-n", "bob", "-u"),
        ("client", "issue", "-p", "site", "-n", "carol", "-u"),
    ):
        assert invoke(home, *args).returncode == 0, args
    (etc / "sites-enabled").mkdir(parents=True)
    conf_d = etc / "conf.d"
    conf_d.mkdir()
    (prefix / "tmp").mkdir(parents=True)
    if os.geteuid() != 0:  # Debian's temp paths under /var/lib/nginx are root's
        conf_d.joinpath("zz-tmp-paths.conf").write_text(
            "".join(
                f"{kind}_temp_path {prefix}/tmp/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
        )
    # An earlier certwiz left its include-only files here under their old names.
    conf_d.joinpath("ssl.conf").write_text(
        "# TLS hardening for the certwiz mTLS proxy: Mozilla\nssl_prefer_server_ciphers off;\n"
    )
    conf_d.joinpath("proxy.conf").write_text(
        "# Forward the verified client identity to the upstream. Rendered by certwiz.\n"
    )
    backend = EchoBackend().start()
    port = free_port()
    site_log = prefix / "deb.test.mtls.log"
    argv = render_argv(
        "site", SERVER, f"http://127.0.0.1:{backend.port}", f"127.0.0.1:{port}", conf_d
    )
    result = invoke(home, *argv, "--error-log", str(site_log))
    assert result.returncode == 0, result.stderr
    assert "Removed" in result.stdout
    server = DebianNginx(prefix, etc)
    try:
        yield Deb(home, etc, port, server.start(), site_log, root)
    finally:
        server.stop()
        backend.stop()


def test_render_into_conf_d_keeps_debian_nginx_working(deb: Deb) -> None:
    names = sorted(p.name for p in (deb.etc / "conf.d").iterdir())
    ours = ["mtls_proxy.conf", "proxy.inc", "ssl.inc"]  # the old ssl.conf, proxy.conf: gone
    assert names == ours + (["zz-tmp-paths.conf"] if os.geteuid() != 0 else [])
    assert deb.status("bob") == 200


def test_rejection_reason_lands_in_the_site_log(deb: Deb) -> None:
    result = invoke(
        deb.home,
        "revoke",
        "-p",
        "site",
        "-n",
        "carol",
        "--reload",
        "--nginx-cmd",
        deb.nginx.command,
    )
    assert result.returncode == 0, result.stderr
    assert deb.status("carol") == 400
    line = next(
        (x for x in deb.site_log.read_text().splitlines() if "certificate revoked" in x), None
    )
    assert line is not None, deb.site_log.read_text()[-2000:]
    assert "client SSL certificate verify error: (23:certificate revoked)" in line
    main_log = (deb.nginx.prefix / "error.log").read_text()
    assert "certificate revoked" not in main_log  # Debian's own log stays at `error`


def test_sites_enabled_is_refused_with_the_fix(deb: Deb) -> None:
    argv = render_argv("site", SERVER, "http://127.0.0.1:9", "8443", deb.etc / "sites-enabled")
    result = invoke(deb.home, *argv)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("certwiz: error: out: nginx includes every file in")
    assert "sites-available" in line
    assert list((deb.etc / "sites-enabled").iterdir()) == []


def test_another_servers_site_is_not_overwritten(deb: Deb) -> None:
    other = deb.work / "other-site"
    other.mkdir()
    site = other / "mtls_proxy.conf"
    site.write_text("# mTLS reverse proxy for api.test (certwiz profile api).\nserver {}\n")
    result = invoke(deb.home, *render_argv("site", SERVER, "http://127.0.0.1:9", "8443", other))
    assert result.returncode == 2
    assert "already holds the site of api.test (profile api)" in result.stderr
    assert site.read_text().startswith("# mTLS reverse proxy for api.test")
