"""Whom the agent trusts: the EST URL, the CA files, and the server pinned to the profile's
own signing CA.

TLS checks the server's certificate against --ca (or --server-ca); chaining to the root
is not enough when the root signs other CAs, so right after the handshake, before
anything is sent, the server's certificate must also be issued directly by the
profile's signing CA (`pin_server`, `check_server`).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import der, p12
from ..errors import CertwizError, InputError
from ..fsutil import read_head, require_safe_source

if TYPE_CHECKING:
    from cryptography import x509

    from .device import Bundle


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    trust: Path | None = None  # the CA file the server's certificate is checked against
    # The server's certificate must be issued directly by one of these (the profile's
    # signing CA), checked right after the handshake, before anything is sent; () when
    # --server-ca overrides. `signers` says what they are, for the error.
    issuers: tuple[x509.Certificate, ...] = ()
    signers: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def endpoint(url: str) -> Endpoint:
    """https://HOST[:PORT] (an optional trailing /); anything else is an input error."""
    rule = "must be https://HOST[:PORT] (the EST paths are fixed: /.well-known/est/)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = 443 if parts.port is None else parts.port
    except ValueError:
        raise InputError("url", f"{url!r} {rule}") from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or port == 0
    ):
        raise InputError("url", f"{url!r} {rule}")
    return Endpoint(parts.hostname, port)


def check_ca(path: Path, field: str = "ca") -> Path:
    """A CA file: PEM with at least one certificate (what TLS and `verify` trust), that
    no other user could change: whoever can write it chooses whom the agent trusts, the
    server it sends its token or key's proof to and the answer it installs (attack round
    12, F7; the rule of --upstream-ca)."""
    require_safe_source(field, path)
    data = read_head(path, field, p12.MAX_BYTES)
    if len(data) > p12.MAX_BYTES or not der.pem_certificates(data):
        raise InputError(field, f"{path} holds no PEM certificate (give a CA's certificate)")
    return path


def server_trust(ca: Path, server_ca: Path | None) -> Path:
    """What the server's certificate must chain to in TLS: --server-ca (e.g. a public CA's
    bundle when NGINX shows a public certificate), else the client certificates' CA."""
    check_ca(ca)
    return ca if server_ca is None else check_ca(server_ca, "server-ca")


def ca_certs(ca: Path) -> list[x509.Certificate]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(ca.read_bytes())


def pin_server(
    where: Endpoint, ca: Path, server_ca: Path | None, current: Bundle | None = None
) -> Endpoint:
    """WHERE, trusting only the profile's own signing CA for the server.

    Chaining to the root is not enough: the root may sign other CAs (`ca sign-intermediate`:
    Vault, step-ca, cert-manager), and any of them could mint a server certificate for
    this host and collect the token or hand out its own certificates. So the server's
    certificate must be issued directly by a certificate in --ca (a single-level profile's
    ca.crt, a two-level one's chain.pem or intermediate) or, for a renewal, by the CA that
    issued the current certificate (found in the bundle's chain or --ca by its signature).
    --server-ca is the explicit override: the server is then checked against it alone."""
    if server_ca is not None:
        return where
    issuers = ca_certs(ca)
    signers = f"a certificate in {ca}"
    if current is not None:
        mine = next((c for c in [*current.chain, *issuers] if der.issued_by(current.cert, c)), None)
        if mine is not None and mine not in issuers:
            issuers.append(mine)
            signers = (
                f"{mine.subject.rfc4514_string()!r} (the current certificate's CA) or {signers}"
            )
    return replace(where, issuers=tuple(issuers), signers=signers)


def check_server(where: Endpoint, server_der: bytes | None) -> None:
    """The server's certificate (DER, verified by TLS already) comes from WHERE.issuers."""
    from cryptography import x509

    if not where.issuers:
        return
    cert = x509.load_der_x509_certificate(server_der) if server_der else None
    if cert is None or not any(der.issued_by(cert, issuer) for issuer in where.issuers):
        who = "none" if cert is None else repr(cert.issuer.rfc4514_string())
        raise CertwizError(
            f"{where.url}: the server certificate is issued by {who}, not by {where.signers}: "
            "refused before sending anything (another CA under the same root? give the "
            "server's CA with --server-ca)"
        )
