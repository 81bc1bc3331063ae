"""Real NGINX in front of a certwiz profile whose root signed another system's intermediate
(`ca sign-intermediate`): what the README's "What changes for NGINX" says, checked.

A client certificate from that intermediate (made on its side with raw openssl) passes
with NGINX's default `ssl_verify_depth 1` (one intermediate) when the client sends the
intermediate or NGINX trusts it, and is refused with depth 0 or when NGINX cannot find
the intermediate. `ssl_crl` holds the root's CRL and the intermediate's; after `certwiz
revoke --serial` of the intermediate (and a reload) its clients are refused, while the
profile's own clients still pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certwiz import ca, issue, subordinate
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import load_cert, openssl, run_certwiz
from tests.nginx_support import CurlResult, curl, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "myserver.local"


@dataclass
class Stack:
    profile: Profile
    work: Path
    port: int
    nginx: LocalNginx
    site: Path
    rendered: str
    inter: Path  # the intermediate certwiz signed
    inter_crl: bytes  # its (empty) CRL, as its system publishes it
    leaf: Path
    leaf_key: Path
    chain: Path  # leaf + intermediate: what the client sends

    def serve(self, depth: int, trust_intermediate: bool = False) -> None:
        """The rendered site with ssl_verify_depth DEPTH and ssl_crl = both CRLs
        (`trust_intermediate`: ssl_client_certificate = the root and the intermediate)."""
        crls = self.work / "crls.pem"
        crls.write_bytes(self.profile.crl.read_bytes() + self.inter_crl)
        text = re.sub(r"ssl_verify_depth \d+;", f"ssl_verify_depth {depth};", self.rendered)
        text, count = re.subn(r'ssl_crl "[^"]*";', f'ssl_crl "{crls}";', text)
        assert count == 1
        if trust_intermediate:
            trust = self.work / "trust.pem"
            trust.write_bytes(self.profile.ca_cert.read_bytes() + self.inter.read_bytes())
            text, count = re.subn(
                r'ssl_client_certificate "[^"]*";', f'ssl_client_certificate "{trust}";', text
            )
            assert count == 1
        self.site.write_text(text)
        self.nginx.reload()

    def curl(self, cert: Path, key: Path) -> CurlResult:
        result = curl(f"https://{SERVER}:{self.port}/", self.work, ca=self.profile.ca_cert,
                      resolve=f"{SERVER}:{self.port}:127.0.0.1", cert=cert, key=key)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("grow-nginx")
    work = root / "work"
    work.mkdir()
    profile = ca.init("corp", root / "certs")
    issue.issue_server(profile, SERVER, sans=["127.0.0.1"])
    issue.issue_client(profile, "own-client", unencrypted=True)
    # The other system (Vault's default: RSA 2048, CN only) makes its key and request.
    inter_key, csr = work / "int.key", work / "int.csr"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(inter_key),
            "-subj", "/CN=example.com Intermediate Authority", "-out", str(csr))  # fmt: skip
    inter = work / "int.crt"
    subordinate.sign_intermediate(profile, csr, inter)
    # ... and issues a client certificate with it, on its side.
    leaf_key, leaf_csr, leaf = work / "dev.key", work / "dev.csr", work / "dev.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(leaf_key), "-subj", "/CN=device-1", "-out", str(leaf_csr))  # fmt: skip
    ext = work / "dev.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")  # fmt: skip
    openssl("x509", "-req", "-in", str(leaf_csr), "-CA", str(inter), "-CAkey", str(inter_key),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(leaf))  # fmt: skip
    chain = work / "dev-chain.pem"
    chain.write_bytes(leaf.read_bytes() + inter.read_bytes())
    key = serialization.load_pem_private_key(inter_key.read_bytes(), None)
    now = datetime.now(UTC)
    inter_crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(load_cert(inter).subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=7))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
        .public_bytes(serialization.Encoding.PEM)
    )
    backend = EchoBackend().start()
    port = free_port()
    done = run_certwiz(root / "certs", "nginx", "render", "-p", "corp", "--server", SERVER,
                       "--upstream", f"http://127.0.0.1:{backend.port}", "--listen",
                       f"127.0.0.1:{port}", "--out", str(root / "conf"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    site = root / "conf" / "mtls_proxy.conf"
    server = LocalNginx(root / "nginx", site)
    try:
        server.start()
        yield Stack(profile, work, port, server, site, site.read_text(), inter, inter_crl,
                    leaf, leaf_key, chain)  # fmt: skip
    finally:
        server.stop()
        backend.stop()


def own_client(stack: Stack) -> CurlResult:
    return stack.curl(stack.profile.cert_path("own-client"), stack.profile.key_path("own-client"))


def test_depth_2_and_the_sent_chain_admit_the_other_systems_client(stack: Stack) -> None:
    stack.serve(depth=0)  # no intermediate allowed
    assert stack.curl(stack.chain, stack.leaf_key).status == 400
    assert own_client(stack).status == 200
    stack.serve(depth=1)  # nginx's default: one intermediate between leaf and root
    assert stack.curl(stack.chain, stack.leaf_key).status == 200
    assert stack.curl(stack.leaf, stack.leaf_key).status == 400  # the leaf alone: no path
    assert own_client(stack).status == 200
    stack.serve(depth=1, trust_intermediate=True)  # or NGINX knows the intermediate
    assert stack.curl(stack.leaf, stack.leaf_key).status == 200


def test_revoking_the_intermediate_cuts_off_its_branch_only(stack: Stack) -> None:
    stack.serve(depth=1)
    assert stack.curl(stack.chain, stack.leaf_key).status == 200
    serial = f"{load_cert(stack.inter).serial_number:X}"
    done = run_certwiz(stack.profile.home, "revoke", "-p", "corp", "--serial", serial)
    assert done.returncode == 0, done.stderr
    stack.serve(depth=1)  # the new root CRL into the CRL file, and a reload
    rejected = stack.curl(stack.chain, stack.leaf_key)
    assert rejected.status == 400
    assert "certificate revoked" in stack.nginx.log_tail(50)
    assert own_client(stack).status == 200
