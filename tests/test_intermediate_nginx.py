"""End to end with a two-level profile: real nginx trusts the chain and checks BOTH CRLs.

A good client gets 200, a revoked one 400; once the root revokes the intermediate,
every client gets 400 (the root's CRL in crl-chain.pem lists it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke, killed_at, load_cert
from tests.nginx_support import CurlResult, curl, killed_at_reload, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "myserver.local"


@dataclass
class Stack:
    home: Path
    fleet: Path
    work: Path
    port: int
    backend: EchoBackend
    nginx: LocalNginx
    site: Path

    def certwiz(self, *args: str) -> str:
        result = invoke(self.home, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def curl(self, **kwargs: object) -> CurlResult:
        result = curl(
            f"https://{SERVER}:{self.port}/",
            self.work,
            ca=self.fleet / "ca.crt",
            resolve=f"{SERVER}:{self.port}:127.0.0.1",
            **kwargs,
        )  # type: ignore[arg-type]
        assert result.returncode == 0, result.stderr
        return result

    def p12(self, name: str) -> Path:
        return self.fleet / "private" / f"{name}.p12"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("two-level")
    home = root / "certs"

    def cw(*args: str) -> None:
        result = invoke(home, *args)
        assert result.returncode == 0, (args, result.stderr)

    cw("ca", "init", "-p", "fleet", "--intermediate")
    cw("server", "issue", "-p", "fleet", "-n", SERVER, "--san", "127.0.0.1")
    for name in ("good", "bad"):
        cw("client", "issue", "-p", "fleet", "-n", name, "-u")
    backend = EchoBackend().start()
    port = free_port()
    cw(
        "nginx",
        "render",
        "-p",
        "fleet",
        "--server",
        SERVER,
        "--upstream",
        f"http://127.0.0.1:{backend.port}",
        "--listen",
        f"127.0.0.1:{port}",
        "--out",
        str(root / "conf"),
    )
    site = root / "conf" / "mtls_proxy.conf"
    server = LocalNginx(root / "nginx", site)
    try:
        server.start()
        yield Stack(home, home / "fleet", root, port, backend, server, site)
    finally:
        server.stop()
        backend.stop()


def test_rendered_config_trusts_the_chain_and_both_crls(stack: Stack) -> None:
    text = stack.site.read_text()
    assert re.search(r"ssl_verify_depth 2;", text)
    assert f'ssl_client_certificate "{stack.fleet / "chain.pem"}";' in text
    assert f'ssl_crl "{stack.fleet / "crl-chain.pem"}";' in text


def test_a_revoke_killed_before_crl_chain_is_enforced_by_its_rerun(stack: Stack) -> None:
    """Attack round 10, F1: `revoke --reload` killed after crl.pem and before crl-chain.pem
    (the file nginx reads): a reload by hand left the client admitted and check said
    consistent. check says which file is behind; the rerun rebuilds it and reloads."""
    stack.certwiz("client", "issue", "-p", "fleet", "-n", "v1", "-u")
    assert stack.curl(p12=stack.p12("v1")).status == 200
    revoke = ("revoke", "-p", "fleet", "-n", "v1", "--reload", "--nginx-cmd", stack.nginx.command)
    killed_at("certwiz.intermediate.write_crl_chain", lambda: invoke(stack.home, *revoke))
    stack.nginx.reload()  # by hand: nginx reads crl-chain.pem, which lacks v1
    assert stack.curl(p12=stack.p12("v1")).status == 200  # the hole
    found = invoke(stack.home, "check", "-p", "fleet")
    assert found.returncode == 4 and f"{stack.fleet / 'crl-chain.pem'}: is not" in found.stdout
    with stack.nginx.reloading():
        rerun = invoke(stack.home, *revoke)
    assert rerun.returncode == 0, rerun.stderr
    seen = len(stack.backend.requests)
    assert stack.curl(p12=stack.p12("v1")).status == 400
    assert len(stack.backend.requests) == seen
    assert stack.curl(p12=stack.p12("good")).status == 200


def test_good_client_200_revoked_400_then_intermediate_revoked_everyone_400(stack: Stack) -> None:
    assert stack.curl(p12=stack.p12("good")).status == 200
    assert stack.curl(p12=stack.p12("bad")).status == 200
    # A PEM client that sends only its leaf: nginx finds the intermediate in its trust.
    leaf_only = stack.curl(
        cert=stack.fleet / "issued" / "good.crt", key=stack.fleet / "private" / "good.key"
    )
    assert leaf_only.status == 200
    with stack.nginx.reloading():
        stack.certwiz(
            "revoke", "-p", "fleet", "-n", "bad", "--reload", "--nginx-cmd", stack.nginx.command
        )
    rejected = stack.curl(p12=stack.p12("bad"))
    assert rejected.status == 400 and rejected.body.startswith("client certificate rejected")
    assert stack.curl(p12=stack.p12("good")).status == 200
    # The root revokes the intermediate: every client it signed is refused. Killed where
    # it would reload nginx, its rerun reloads (it said "not valid" and reloaded nothing).
    argv = ("ca", "revoke-intermediate", "-p", "fleet", "--reason", "keyCompromise",
            "--reload", "--nginx-cmd", stack.nginx.command)  # fmt: skip
    killed_at_reload(stack.home, *argv)
    assert stack.curl(p12=stack.p12("good")).status == 200  # nginx has the old CRLs
    with stack.nginx.reloading():
        again = invoke(stack.home, *argv, "--json")
    assert again.returncode == 0, again.stderr
    done = json.loads(again.stdout)
    assert done["reloaded"] is True and done["serials"] == []
    assert [int(s, 16) for s in done["already_revoked"]] == [
        load_cert(stack.fleet / "intermediate.crt").serial_number
    ]
    seen = len(stack.backend.requests)
    for name in ("good", "bad"):
        assert stack.curl(p12=stack.p12(name)).status == 400
    assert len(stack.backend.requests) == seen
    assert "certificate revoked" in stack.nginx.log_tail(50)
