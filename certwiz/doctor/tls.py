"""The server side of TLS: the server certificate and key nginx presents (expiry,
names, pairing), session resumption, protocols and ciphers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from . import pki
from .conf import Directive
from .facts import ProfileFacts
from .findings import Finding, make
from .view import ServerView, first_arg, has_variable, where_of

LEAF_WARN = timedelta(days=14)


WEAK_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")


# nginx 1.22's defaults when a directive is absent.
DEFAULT_PROTOCOLS = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]


_WEAK_CIPHER = re.compile(
    r"^(?:NULL|eNULL|aNULL|EXPORT|EXP|LOW|RC4|DES|3DES|MD5|ADH|AECDH|SEED|IDEA|RC2)$"
    r"|(?:^|-)(?:NULL|RC4|EXP|DES|MD5|ADH|AECDH|RC2|IDEA|SEED)(?:-|$)"
)


def server_cert_findings(
    view: ServerView, facts: ProfileFacts, unreadable: list[Finding]
) -> list[Finding]:
    server = view.block
    certs = server.inherited_all("ssl_certificate")
    keys = server.inherited_all("ssl_certificate_key")
    out: list[Finding] = []
    for index, cert_at in enumerate(certs):
        if not cert_at.args or has_variable(cert_at.args[0]):
            continue
        try:
            cert = pki.certificates(Path(cert_at.args[0]))[0]
        except pki.Unreadable as exc:
            unreadable.append(make("file-unreadable", cert_at.where, str(exc)))
            continue
        if index < len(keys) and keys[index].args and not has_variable(keys[index].args[0]):
            key_at = keys[index]
            try:
                key: Any = pki.private_key(Path(key_at.args[0]))
            except pki.Unreadable as exc:
                unreadable.append(make("file-unreadable", key_at.where, str(exc)))
                key = None
            if key is not None and pki.public_bytes(key.public_key()) != pki.public_bytes(
                cert.public_key()
            ):
                out.append(
                    make(
                        "server-cert-key-mismatch",
                        key_at.where,
                        f"{key_at.args[0]} is not the key of {cert_at.args[0]}",
                    )
                )
        end = pki.not_after(cert)
        label = f"server certificate {cert_at.args[0]}"
        if end <= facts.now:
            out.append(make("server-cert-expired", cert_at.where,
                            f"{label} expired at {end:%Y-%m-%d %H:%M}Z"))  # fmt: skip
        elif end - facts.now <= LEAF_WARN:
            out.append(make("server-cert-expiring", cert_at.where,
                            f"{label} expires at {end:%Y-%m-%d %H:%M}Z"))  # fmt: skip
        out += _name_findings(server, cert, cert_at)
    return out


def _name_findings(server: Directive, cert: x509.Certificate, cert_at: Directive) -> list[Finding]:
    names_at = server.first("server_name")
    if names_at is None:
        return []
    sans = pki.san_names(cert)
    out = []
    for name in names_at.args:
        if not name or name == "_" or name.startswith("~") or "$" in name:
            continue
        host = name[1:] if name.startswith(".") else name
        if sans is None or not pki.covers(sans, host):
            out.append(
                make(
                    "server-cert-name-missing",
                    names_at.where,
                    f"server_name {name} is not in the subjectAltName of {cert_at.args[0]}",
                    f"certwiz server issue -n {host} (or --san {host}), then re-render",
                )
            )
    return out


def tls_findings(view: ServerView) -> list[Finding]:
    server = view.block
    out = []
    cache = server.inherited("ssl_session_cache")
    tickets = server.inherited("ssl_session_tickets")
    reasons = []
    if cache is not None and first_arg(cache) not in ("off", "none"):
        reasons.append(f"ssl_session_cache {' '.join(cache.args)}")
    if first_arg(tickets, "on") != "off":
        reasons.append(
            "ssl_session_tickets on" if tickets is not None else "session tickets (nginx's default)"
        )
    if reasons:
        where = cache if cache is not None and first_arg(cache) not in ("off", "none") else tickets
        out.append(make("session-resumption", where_of(where, server),
                        f"{' and '.join(reasons)} resume sessions"))  # fmt: skip
    protocols_at = server.inherited("ssl_protocols")
    protocols = protocols_at.args if protocols_at is not None else DEFAULT_PROTOCOLS
    weak = [p for p in protocols if p in WEAK_PROTOCOLS]
    if weak:
        detail = "ssl_protocols allows" if protocols_at else "nginx's default ssl_protocols allow"
        out.append(make("weak-protocol", where_of(protocols_at, server),
                        f"{detail} {' '.join(weak)}"))  # fmt: skip
    ciphers_at = server.inherited("ssl_ciphers")
    if ciphers_at is not None and any(p != "TLSv1.3" for p in protocols):
        tokens = re.split(r"[:, ]+", first_arg(ciphers_at))
        bad = [t for t in tokens if t and t[0] not in "!-+" and _WEAK_CIPHER.search(t)]
        if bad:
            out.append(make("weak-cipher", ciphers_at.where,
                            f"ssl_ciphers admits {', '.join(bad[:4])}"))  # fmt: skip
    return out
