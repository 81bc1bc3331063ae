"""`--reload` refuses a configuration in which a server admitting the profile's clients
checks them against an older CRL, however it trusts them; and it never crashes on what
nginx prints.

Attack round 12, F1: a second server trusting the two-level profile's root only
(ca.crt, as README's "Growing out" shows) with a snapshot of crl-chain.pem was not
looked at (only a CA file holding the intermediate's key was), so `revoke --reload`
reloaded "successfully" and that server kept answering the revoked client with 200.
F2: one non-UTF-8 byte in an included file crashed every --reload with a traceback
after the CRL was written. Real nginx, real curl, one of each for the module.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certwiz import nginx as nginx_lib
from certwiz.nginx import enforce
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke
from tests.nginx_support import certwiz_ok, curl, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "tri.test"


@dataclass
class Stack:
    home: Path
    tri: Profile
    work: Path
    nginx: LocalNginx
    site: Path
    port: int  # the rendered site
    snap_port: int  # root only, a snapshot of crl-chain.pem
    other_port: int  # root only, another CA's CRL: nginx refuses every client
    snap_conf: Path

    def status(self, client: str, port: int) -> int:
        """HTTP status for CLIENT, who sends its chain (leaf + intermediate)."""
        chain = self.work / f"{client}.chain.pem"
        chain.write_bytes(
            self.tri.cert_path(client).read_bytes() + self.tri.intermediate_cert.read_bytes()
        )
        done = curl(
            f"https://{SERVER}:{port}/",
            self.work,
            ca=self.tri.ca_cert,
            resolve=f"{SERVER}:{port}:127.0.0.1",
            cert=chain,
            key=self.tri.key_path(client),
        )
        return done.status

    def reload(self, *args: str) -> tuple[int, str, str]:
        done = invoke(self.home, *args, "-p", "tri", "--reload", "--nginx-cmd", self.nginx.command)
        return done.returncode, done.stdout, done.stderr


def _server(tri: Profile, port: int, ca: str, crl: Path, upstream: str) -> str:
    return (
        f"server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name {SERVER};\n"
        f'    ssl_certificate "{tri.dir}/issued/{SERVER}.fullchain.pem";\n'
        f'    ssl_certificate_key "{tri.key_path(SERVER)}";\n'
        f"    {ca}\n    ssl_verify_client on;\n    ssl_verify_depth 2;\n"
        f'    ssl_crl "{crl}";\n    location / {{ proxy_pass {upstream}; }}\n}}\n'
    )


def _line_of(conf: Path, directive: str) -> int:
    lines = conf.read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.strip().startswith(directive + " "))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nginx()
    require_curl()
    base = tmp_path_factory.mktemp("reload-check")
    home = base / "certs"
    cw = certwiz_ok(home)
    cw("ca", "init", "-p", "tri", "--intermediate")
    cw("ca", "init", "-p", "other")
    cw("server", "issue", "-p", "tri", "-n", SERVER, "--san", "127.0.0.1")
    for name in ("c1", "c2", "c3"):
        cw("client", "issue", "-p", "tri", "-n", name, "-u")
    tri = Profile("tri", home)
    backend = EchoBackend().start()
    upstream = f"http://127.0.0.1:{backend.port}"
    port, snap_port, other_port = free_port(), free_port(), free_port()
    cw("nginx", "render", "-p", "tri", "--server", SERVER, "--upstream", upstream,
       "--listen", f"127.0.0.1:{port}")  # fmt: skip
    snapshot = base / "crl-snapshot.pem"
    shutil.copy(tri.nginx_crl, snapshot)
    root_only = f'ssl_client_certificate "{tri.ca_cert}";'
    snap_conf = base / "snap.conf"
    snap_conf.write_text(_server(tri, snap_port, root_only, snapshot, upstream))
    other_conf = base / "other.conf"
    other_crl = Profile("other", home).crl
    other_conf.write_text(_server(tri, other_port, root_only, other_crl, upstream))
    site = tri.dir / "nginx" / "mtls_proxy.conf"
    nginx = LocalNginx(base / "nginx", [site, snap_conf, other_conf])
    work = base / "work"
    work.mkdir()
    try:
        nginx.start()
        yield Stack(home, tri, work, nginx, site, port, snap_port, other_port, snap_conf)
    finally:
        nginx.stop()
        backend.stop()


def test_a_root_only_server_with_a_crl_snapshot_stops_the_reload(stack: Stack) -> None:
    """The attacker's second server: refused (exit 1) naming its ssl_crl line, nothing
    reloaded, and the output says the CRL is published and what to run; once that
    server checks the current crl-chain.pem, `crl gen --reload` reloads and the revoked
    client is refused everywhere. A server whose CRL file holds none of the profile's
    CRLs is no reason to refuse: nginx refuses every client of the profile there."""
    assert stack.status("c1", stack.snap_port) == 200
    workers = stack.nginx.workers()
    code, out, err = stack.reload("revoke", "-n", "c1")
    assert code == 1, (out, err)
    (line,) = err.splitlines()
    assert line.startswith("certwiz: error: nginx NOT reloaded: "), line
    assert f"{stack.snap_conf}:{_line_of(stack.snap_conf, 'ssl_crl')}: ssl_crl " in line
    assert "is not profile tri's current CRL" in line
    assert (
        f"The CRL {stack.tri.nginx_crl} is published, but nginx does not enforce it yet: "
        "nginx was NOT reloaded; fix the error below, then run: "
        f"{stack.nginx.command} -t && {stack.nginx.command} -s reload"
    ) in out
    assert stack.nginx.workers() == workers
    assert stack.status("c1", stack.snap_port) == 200  # what the refusal is about

    text = stack.snap_conf.read_text()
    stack.snap_conf.write_text(text.replace(str(stack.work.parent / "crl-snapshot.pem"),
                                            str(stack.tri.nginx_crl)))  # fmt: skip
    with stack.nginx.reloading():
        code, out, err = stack.reload("crl", "gen")
    assert code == 0, (out, err)
    for port in (stack.port, stack.snap_port):
        assert stack.status("c1", port) == 400
        assert stack.status("c2", port) == 200
    assert stack.status("c2", stack.other_port) == 400  # no CRL of tri's: fails closed


def test_trust_through_any_ca_file_counts(stack: Stack, tmp_path: Path) -> None:
    """ssl_trusted_certificate admits clients as ssl_client_certificate does; the
    intermediate alone counts as the root does; no ssl_crl (and no OCSP) is refused
    naming the CA line; the current crl-chain.pem passes."""
    tri = stack.tri
    old = tmp_path / "old.pem"
    old.write_bytes(stack.tri.nginx_crl.read_bytes())
    assert invoke(stack.home, "revoke", "-p", "tri", "-n", "c3").returncode == 0
    cases = {
        f'ssl_client_certificate "{Profile("other", stack.home).ca_cert}";\n'
        f'    ssl_trusted_certificate "{tri.ca_cert}";': (old, "ssl_trusted_certificate"),
        f'ssl_client_certificate "{tri.intermediate_cert}";': (old, "ssl_client_certificate"),
        f'ssl_client_certificate "{tri.chain}";': (tri.nginx_crl, "ssl_client_certificate"),
    }
    for n, (ca, (crl, admits)) in enumerate(cases.items()):
        conf = tmp_path / f"main{n}.conf"
        conf.write_text("http {\n" + _server(tri, 1, ca, crl, "http://127.0.0.1:1") + "}\n")
        found = enforce.stale_servers(tri, f"# configuration file {conf}:\n")
        if crl == tri.nginx_crl:
            assert found == [], (ca, found)
        else:
            where = f"{conf}:{_line_of(conf, 'ssl_crl')}: ssl_crl {crl} is not"
            assert len(found) == 1 and found[0].startswith(where), (ca, found)
        conf.write_text(conf.read_text().replace(f'    ssl_crl "{crl}";\n', ""))
        (found,) = enforce.stale_servers(tri, f"# configuration file {conf}:\n")
        assert found.startswith(f"{conf}:{_line_of(conf, admits)}: this server admits"), found
        assert "checks no CRL" in found, found


def test_a_plain_http_server_inheriting_the_trust_admits_no_client(
    stack: Stack, tmp_path: Path
) -> None:
    """Attack round 13, minor: http-level ssl_client_certificate and an old ssl_crl are
    inherited by a plain-http server too, which asks for no certificate: not a reason to
    refuse the reload. A listen without ssl on a socket another server's `listen ... ssl`
    makes TLS does admit clients (nginx merges them): flagged."""
    tri = stack.tri
    old = tmp_path / "old.pem"
    old.write_bytes(tri.nginx_crl.read_bytes())
    assert invoke(stack.home, "crl", "gen", "-p", "tri").returncode == 0  # old.pem is stale
    port = free_port()
    plain = f"server {{\n    listen 127.0.0.1:{port};\n    location / {{ return 200; }}\n}}\n"
    mine = f'ssl_client_certificate "{tri.chain}";'
    tls = _server(tri, port, mine, tri.nginx_crl, "http://127.0.0.1:1")
    http = (  # what every server of the http block inherits, the plain one too
        f'ssl_certificate "{tri.dir}/issued/{SERVER}.fullchain.pem";\n'
        f'ssl_certificate_key "{tri.key_path(SERVER)}";\n'
        f'ssl_client_certificate "{tri.chain}";\nssl_crl "{old}";\nssl_verify_client optional;\n'
    )
    for n, (servers, flagged) in enumerate([(plain, False), (plain + tls, True)]):
        conf = tmp_path / f"plain{n}.conf"
        top = f"error_log stderr;\npid {tmp_path}/nginx{n}.pid;\nevents {{}}\n"
        conf.write_text(f"{top}http {{\n{http}{servers}}}\n")
        checked = subprocess.run([require_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf)],
                                 capture_output=True, text=True)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        found = enforce.stale_servers(tri, f"# configuration file {conf}:\n")
        if not flagged:
            assert found == [], found
        else:
            (line,) = found  # the plain listen's server, through the http-level ssl_crl
            assert line.startswith(f"{conf}:{_line_of(conf, 'ssl_crl')}: ssl_crl {old} is not")


def _spelled(pem: bytes, label: bytes) -> bytes:
    """PEM in another spelling OpenSSL reads as a certificate (a TRUSTED CERTIFICATE
    carries trust settings after the certificate: an empty X509_CERT_AUX here)."""
    from certwiz import der

    body = der.pem_to_der(pem) + (b"\x30\x00" if label == b"TRUSTED CERTIFICATE" else b"")
    text = base64.encodebytes(body)
    return b"-----BEGIN %s-----\n%s-----END %s-----\n" % (label, text, label)


def test_an_empty_ssl_crl_checks_no_crl_whatever_the_ca_spelling(
    stack: Stack, tmp_path: Path
) -> None:
    """Attack round 14, F3: `ssl_crl "";` is nginx's "no CRL" (it clears the http-level
    one): the revoked c1 gets 200 there, so a reload is refused; and a CA file in the old
    PEM spellings (X509 CERTIFICATE, TRUSTED CERTIFICATE) trusts the profile's CA as
    nginx reads it, so that server counts too."""
    tri = stack.tri
    port = free_port()
    cases = [b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"]
    for label in cases:
        ca = tmp_path / f"{label.decode().replace(' ', '-')}.pem"
        ca.write_bytes(_spelled(tri.ca_cert.read_bytes(), label))
        conf = tmp_path / f"empty-{ca.name}.conf"
        # nginx sends the names of ssl_client_certificate's CAs: it reads no TRUSTED one there
        trust = "ssl_client_certificate"
        lines = f'{trust} "{ca}";'
        if label == b"TRUSTED CERTIFICATE":
            trust = "ssl_trusted_certificate"
            other = Profile("other", stack.home).ca_cert
            lines = f'ssl_client_certificate "{other}";\n    {trust} "{ca}";'
        text = _server(tri, port, lines, tri.nginx_crl, "http://127.0.0.1:1")
        conf.write_text(f'ssl_crl "{tri.nginx_crl}";\n' + text.replace(f'"{tri.nginx_crl}"', '""'))
        stack.nginx.serve([stack.site, conf])
        assert stack.status("c1", port) == 502, label  # revoked, let in: the upstream is down
        code, out, err = stack.reload("crl", "gen")
        assert code == 1, (label, out, err)
        where = f"{conf}:{_line_of(conf, trust)}: this server admits"
        assert where in err and "checks no CRL" in err, (label, err)
    stack.nginx.serve([stack.site, stack.snap_conf])


def test_a_non_utf8_byte_in_the_config_never_breaks_a_reload(stack: Stack) -> None:
    """`printf '# caf\\xe9\\n'` in an included file: revoke --reload and crl gen --reload
    reload (the revoked client gets 400), no traceback; a check that fails is one line."""
    latin1 = stack.work / "latin1.conf"
    latin1.write_bytes(b"# caf\xe9 (Latin-1)\n")
    sites = [stack.site, stack.snap_conf, latin1]
    stack.nginx.serve(sites)
    assert stack.status("c2", stack.port) == 200
    with stack.nginx.reloading():
        code, out, err = stack.reload("revoke", "-n", "c2")
    assert code == 0, (out, err)
    assert "reloaded" in out and err == ""
    assert stack.status("c2", stack.port) == 400
    with stack.nginx.reloading():
        code, out, err = stack.reload("crl", "gen")
    assert code == 0 and err == "", (out, err)

    def broken(dump: str) -> list[str]:
        raise ValueError("no such thing")

    with pytest.raises(nginx_lib.NginxError) as failed:
        nginx_lib.reload(stack.nginx.words, refuse=broken)
    assert str(failed.value) == (
        "nginx NOT reloaded: cannot check the configuration it would load "
        "(ValueError: no such thing)"
    )
