"""`--reload` returns only once the new configuration serves (issue 13 item 10).

`nginx -s reload` only signals the master. With a configuration that takes a while to
load (here 60 more TLS server blocks, each loading a key, a CA and a CRL), the old
workers keep accepting connections with the old CRL after the signal: a client
revoked with `revoke --reload` still got 200 right after certwiz returned. certwiz now
waits until nginx's old workers have stopped accepting (they close their listening
sockets and call themselves "shutting down") and new ones run, bounded by
$CERTWIZ_RELOAD_TIMEOUT. The tests below do NOT wait for nginx themselves.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz.nginx import workers
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import Result, invoke, openssl
from tests.nginx_support import curl_as, render_argv, require_curl, require_nginx

SERVER = "myserver.local"
BULK = 60


@dataclass
class Rig:
    home: Path
    work: Path
    port: int
    nginx: LocalNginx

    def cw(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        result = invoke(self.home, *args, **kwargs)  # type: ignore[arg-type]
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result  # type: ignore[return-value]

    def status(self, client: str) -> int:
        result = curl_as(self.home / "site", client, SERVER, self.port, self.work, "/")
        assert result.returncode == 0, result.stderr
        return result.status


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("reload")
    home = root / "certs"
    for args in (
        ("ca", "init", "-p", "site"),
        ("server", "issue", "-p", "site", "-n", SERVER),
    ):
        assert invoke(home, *args).returncode == 0, args
    backend = EchoBackend().start()
    port = free_port()
    out = root / "conf"
    upstream = f"http://127.0.0.1:{backend.port}"
    result = invoke(home, *render_argv("site", SERVER, upstream, f"127.0.0.1:{port}", out))
    assert result.returncode == 0, result.stderr
    site = home / "site"
    bulk = root / "bulk.conf"
    bulk.write_text(
        "".join(
            f"server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name bulk{i}.test;\n"
            f'    ssl_certificate "{site}/issued/{SERVER}.fullchain.pem";\n'
            f'    ssl_certificate_key "{site}/private/{SERVER}.key";\n'
            f'    ssl_client_certificate "{site}/ca.crt";\n'
            f'    ssl_crl "{site}/crl.pem";\n'
            "    ssl_verify_client on;\n    return 404;\n}\n"
            for i in range(BULK)
        )
    )
    server = LocalNginx(root / "nginx", [out / "mtls_proxy.conf", bulk])
    try:
        yield Rig(home, root, port, server.start())
    finally:
        server.stop()
        backend.stop()


@pytest.mark.nginx
@pytest.mark.parametrize("how", ["revoke", "crl gen"])
def test_reload_returns_once_the_revocation_is_enforced(rig: Rig, how: str) -> None:
    for round_ in range(3):
        name = f"bot-{how.replace(' ', '')}-{round_}"
        rig.cw("client", "issue", "-p", "site", "-n", name, "-u")
        rig.nginx.reload()  # the new client's certificate is fine either way; warm state
        assert rig.status(name) == 200
        old = rig.nginx.workers()
        cmd = ["--reload", "--nginx-cmd", rig.nginx.command]
        if how == "revoke":
            result = rig.cw("revoke", "-p", "site", "-n", name, *cmd)
        else:  # revoked by hand, published by crl gen --reload
            cnf = rig.home / "site" / "openssl.cnf"
            crt = rig.home / "site" / "issued" / f"{name}.crt"
            openssl("ca", "-config", str(cnf), "-revoke", str(crt))
            result = rig.cw("crl", "gen", "-p", "site", *cmd)
        # No waiting here: the very next connection must meet the new CRL.
        assert rig.status(name) == 400, f"round {round_}: revoked client still served"
        assert "only new workers accept connections after" in result.stdout
        assert not [
            pid
            for pid in old
            if pid in rig.nginx.workers() and workers.SHUTTING_DOWN not in workers.title(pid)
        ]


@pytest.mark.nginx
def test_render_reload_serves_the_new_config(rig: Rig) -> None:
    """render --reload too: re-rendered with --tls modern, TLS 1.2 is refused at once."""
    args = [
        *render_argv(
            "site", SERVER, "http://127.0.0.1:9/", f"127.0.0.1:{rig.port}", rig.work / "conf"
        ),
        "--reload",
        "--nginx-cmd",
        rig.nginx.command,
        "--json",
    ]
    try:
        data = json.loads(rig.cw(*args, "--tls", "modern").stdout)
        assert data["reloaded"] is True and data["reload_wait"]["master"] == rig.nginx.pid
        tls12 = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{rig.port}",
                "-servername",
                SERVER,
                "-tls1_2",
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert tls12.returncode != 0 and "alert protocol version" in tls12.stderr
    finally:
        rig.cw(*args, "--tls", "intermediate")


FAKE_NGINX = """#!/bin/sh
# nginx whose master never replaces its workers: -T names the pid file, reload does nothing.
case "$*" in
  *-T*) echo 'pid "{pid_file}";' ;;
esac
exit 0
"""


def test_reload_that_never_takes_effect_fails_after_the_bound(home: Path, tmp_path: Path) -> None:
    """A master that keeps its old workers (e.g. a reload that failed at run time)."""
    assert invoke(home, "ca", "init", "-p", "p").returncode == 0
    master = subprocess.Popen(  # titled like nginx's master, with one child as its worker
        ["nginx: master process (fake)", "-c", "sleep 300 & wait"],
        executable="/bin/sh",
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        pid_file = tmp_path / "nginx.pid"
        pid_file.write_text(f"{master.pid}\n")
        fake = tmp_path / "nginx"
        fake.write_text(FAKE_NGINX.format(pid_file=pid_file))
        fake.chmod(0o755)
        assert workers.children(master.pid) or _wait_for_child(master.pid)
        result = crl_gen_reload(home, str(fake), "0.5")
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        master.wait()
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("certwiz: error: nginx -s reload sent, but after 0.5s nginx's old")
    assert "still accept connections with the old configuration" in line
    assert "nginx was NOT reloaded" in result.stdout


def crl_gen_reload(home: Path, nginx: str, timeout: str) -> Result:
    """`crl gen -p p --reload` with NGINX as --nginx-cmd and $CERTWIZ_RELOAD_TIMEOUT."""
    return invoke(
        home,
        *("crl", "gen", "-p", "p", "--reload", "--nginx-cmd", shlex.quote(nginx)),
        env={"CERTWIZ_RELOAD_TIMEOUT": timeout},
    )


def _wait_for_child(pid: int) -> bool:
    import time

    deadline = time.monotonic() + 10
    while not workers.children(pid):
        assert time.monotonic() < deadline, "the fake master started no child"
        time.sleep(0.02)
    return True


def test_a_stale_pid_file_is_not_taken_for_nginx(tmp_path: Path) -> None:
    """A pid file naming a process that is not an nginx master: nothing to wait for."""
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert workers.master_pid(pid_file) is None


def test_bad_reload_timeout_is_refused_before_anything_changes(home: Path) -> None:
    assert invoke(home, "ca", "init", "-p", "p").returncode == 0
    crl = (home / "p" / "crl.pem").read_bytes()
    result = crl_gen_reload(home, sys.executable, "soon")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "certwiz: error: CERTWIZ_RELOAD_TIMEOUT: 'soon' must be a number of seconds from 0 to 3600"
    ]
    assert (home / "p" / "crl.pem").read_bytes() == crl


@pytest.mark.parametrize(
    ("argv", "output", "expected"),
    [
        (["nginx"], 'user x;\npid "/run/a.pid";\n', "/run/a.pid"),
        (["nginx"], "worker_processes 1; pid /run/b.pid; # pid /no;", "/run/b.pid"),
        (
            ["nginx"],
            "# pid /no.pid;\n--prefix=/usr/share/nginx --pid-path=/run/nginx.pid",
            "/run/nginx.pid",
        ),
        (["nginx", "-p", "/srv/ng"], "pid logs/n.pid;", "/srv/ng/logs/n.pid"),
        (["nginx"], "--prefix=/usr/share/nginx x\npid n.pid;", "/usr/share/nginx/n.pid"),
        (["nginx", "-g", "pid /g.pid;"], "pid /conf.pid;", "/g.pid"),
        (["nginx"], "nothing here", None),
    ],
)
def test_pid_file_is_found_as_nginx_finds_it(
    argv: list[str], output: str, expected: str | None
) -> None:
    found = workers.pid_path(argv, output)
    assert (str(found) if found else None) == expected
