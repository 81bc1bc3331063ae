"""Does the configuration nginx is about to load enforce this profile's CRL?

A server that admits the profile's clients (its `ssl_client_certificate` or
`ssl_trusted_certificate` holds one of the profile's CAs, root or intermediate: the same
key, a renewed certificate too) but checks them against a CRL file holding an older CRL
of those CAs (a copied or moved profile's site rendered with --out elsewhere, a snapshot,
a hand-made config) would keep admitting a client certwiz just revoked. `--reload`
refuses to reload such a configuration silently: `revoke --reload` and `crl gen --reload`
exist to make a revocation count. A CRL file that holds the profile's current CRLs (a
deploy step copied them, or bundled several CAs') is fine; one that holds no CRL of a CA
makes nginx refuse every chain through that CA; a server on OCSP alone (`ssl_ocsp`, no
`ssl_crl`) asks the responder instead.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

from .. import check, der
from ..doctor import conf
from ..doctor.listen import tls_servers
from ..errors import InputError
from ..profile import Profile

_MAIN = re.compile(r"^# configuration file (.+):$", re.M)
_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.+?)-----END X509 CRL-----", re.S)


def _crls(path: Path) -> set[bytes]:
    """The DER of every CRL in a PEM file (nginx's ssl_crl may hold several)."""
    try:
        blocks = _CRL.findall(path.read_bytes())
        return {base64.b64decode(b"".join(block.split())) for block in blocks}
    except (OSError, ValueError):
        return set()


def _path(directive: conf.Directive, prefix: Path) -> Path:
    value = Path(directive.args[0]) if directive.args else Path()
    return value if value.is_absolute() else prefix / value


def _arg(directive: conf.Directive | None) -> str | None:
    return directive.args[0] if directive is not None and directive.args else None


def _render_command(profile: Profile, server: conf.Directive, site: Path) -> str:
    """`certwiz nginx render` for SERVER with the options it shows it was rendered with,
    into the directory of SITE (the file it is in)."""
    listen = server.first("listen")
    where = {str(d.args[0]): d for d in conf.locations(server) if d.args}
    passes = [d for d in server.walk() if d.name == "proxy_pass" and d.args]
    words = ["certwiz", "nginx", "render", "-p", profile.cli_name]
    words += ["--server", _arg(server.first("server_name")) or "SERVER"]
    words += ["--upstream", passes[0].args[0] if passes else "URL"]
    words += ["--listen", _arg(listen) or "443"]
    if listen is not None and "default_server" not in listen.args:
        words.append("--sni-only")
    if "/api/" in where:
        words += ["--app", "ollama"]
    protocols = server.first("ssl_protocols")
    if protocols is not None and "TLSv1.2" not in protocols.args:
        words += ["--tls", "modern"]
    for option, directive in (
        ("--error-log", server.first("error_log")),
        ("--upstream-ca", server.first("proxy_ssl_trusted_certificate")),
        ("--enroll", _est(where)),
    ):
        if _arg(directive):
            words += [option, str(_arg(directive))]
    if _arg(server.first("ssl_ocsp")) not in (None, "off"):
        words += ["--revocation", "both"]
        responder = _arg(server.first("ssl_ocsp_responder"))
        words += ["--ocsp-responder", responder] if responder else []
    if site.parent != profile.dir / "nginx":
        words += ["--out", str(site.parent)]
    return shlex.join(words)


def _est(where: dict[str, conf.Directive]) -> conf.Directive | None:
    """The proxy_pass of the EST location (`--enroll`), if the site has one."""
    est = where.get("/.well-known/est/")
    return est.first("proxy_pass") if est is not None else None


def _issuer(crl_der: bytes) -> bytes | None:
    """The issuer Name (DER) of a CRL; None if it does not parse."""
    try:
        return der.crl(crl_der).issuer.public_bytes()
    except (ValueError, TypeError):
        return None


def _admitting(server: conf.Directive, ours: set[bytes], prefix: Path) -> conf.Directive | None:
    """The CA file directive through which SERVER admits a client chain of one of OURS
    (keys: root or intermediate, a renewed certificate too), or None. nginx trusts what
    ssl_client_certificate and ssl_trusted_certificate both hold."""
    verify = server.inherited("ssl_verify_client")
    if verify is None or verify.args[:1] == ["off"]:
        return None
    for name in ("ssl_client_certificate", "ssl_trusted_certificate"):
        directive = server.inherited(name)
        if directive is not None and ours & set(check.ca_keys(_path(directive, prefix)) or ()):
            return directive
    return None


def stale_servers(profile: Profile, dump: str) -> list[str]:
    """One line per server block in DUMP (`nginx -T` output) that admits PROFILE's clients
    but does not enforce its current CRL; [] when every such server does. Only a server
    nginx serves TLS for admits a client certificate (listen ... ssl, as doctor reads it).

    A server admits them when one of its CA files holds any CA of the profile (root or
    intermediate: a client sends its chain up to the root). nginx's ssl_crl checks every
    certificate of the chain against a CRL of its issuer and refuses a chain when one is
    missing; so what lets a revoked client in is a CRL file that holds an older CRL of one
    of the profile's CAs (a snapshot, a copy's), or no ssl_crl at all (and no OCSP)."""
    main = _MAIN.search(dump)
    if main is None:
        return []
    try:
        root = conf.load(Path(main.group(1)))
    except (InputError, OSError, ValueError):
        # nginx -t passed; doctor reports what its reader cannot follow (or nginx runs
        # elsewhere, --nginx-cmd 'docker exec ...', and its paths are not this host's)
        return []
    prefix = Path(main.group(1)).parent
    ours = set(check.ca_keys(profile.chain) or ()) | set(check.ca_keys(profile.ca_cert) or ())
    current = _crls(profile.nginx_crl)
    issuers = {_issuer(crl) for crl in current} - {None}
    if not ours or not current:
        return []  # the profile's own files are checked under its lock
    found = []
    for server in tls_servers(conf.servers(root)):  # a plain-http one admits no client
        admits = _admitting(server, ours, prefix)
        if admits is None:
            continue  # a server that does not admit this profile's clients
        ssl_crl = conf.ssl_crl(server)
        ocsp = server.inherited("ssl_ocsp")
        if ssl_crl is None:
            if ocsp is None or ocsp.args[:1] == ["off"]:
                found.append(
                    f"{admits.file}:{admits.line}: this server admits the clients of "
                    f"profile {profile.name} and checks no CRL; render it: "
                    + _render_command(profile, server, admits.file)
                )
            continue
        named = _path(ssl_crl, prefix)
        stale = {c for c in _crls(named) - current if _issuer(c) in issuers}
        if stale:  # a file holding the current CRLs (and other CAs') is fine
            found.append(
                f"{ssl_crl.file}:{ssl_crl.line}: ssl_crl {named} is not profile "
                f"{profile.name}'s current CRL {profile.nginx_crl}: it holds an older CRL "
                "of the profile's CA (a snapshot, or a copied or moved profile's site?), "
                "so a revocation would not count there; re-render it: "
                + _render_command(profile, server, ssl_crl.file)
            )
    return found
