"""The checks behind `certwiz doctor`: a profile against the NGINX servers that use it.

Each check reads the parsed configuration (conf.py) and the profile's files and
returns Findings (findings.py); none of them writes or connects anywhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from .. import database
from ..nginx import verify_depth
from ..profile import Profile
from . import pki
from .conf import Directive, locations, servers
from .findings import Finding, make

CA_WARN = timedelta(days=60)
LEAF_WARN = timedelta(days=14)
CRL_WARN = timedelta(days=7)
PASSES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass")
WEAK_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
# nginx 1.22's defaults when a directive is absent.
DEFAULT_PROTOCOLS = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
_WEAK_CIPHER = re.compile(
    r"^(?:NULL|eNULL|aNULL|EXPORT|EXP|LOW|RC4|DES|3DES|MD5|ADH|AECDH|SEED|IDEA|RC2)$"
    r"|(?:^|-)(?:NULL|RC4|EXP|DES|MD5|ADH|AECDH|RC2|IDEA|SEED)(?:-|$)"
)
_VERIFY_GUARD = re.compile(r"\$ssl_client_verify\s*(?:!=|!~\*?)\s*\^?SUCCESS\$?\s*\)?\s*$")
_IDENTITY_VALUE = re.compile(r"\$\{?ssl_client_")


@dataclass
class Level:
    """One CA of the profile's chain with its CRL and the revocations of its database."""

    ca: x509.Certificate
    crl: x509.CertificateRevocationList | None
    crl_der: bytes | None
    revoked: set[int]


@dataclass
class ProfileFacts:
    """What the profile says is true: its CAs, their CRLs, their revocations."""

    profile: Profile
    cas: list[x509.Certificate]
    ca_ders: set[bytes]
    levels: list[Level]
    now: datetime
    findings: list[Finding] = field(default_factory=list)

    @property
    def depth(self) -> int:
        """CA certificates above a client certificate: what render writes as ssl_verify_depth."""
        return verify_depth(self.profile)

    @property
    def profile_crl_ders(self) -> set[bytes]:
        return {level.crl_der for level in self.levels if level.crl_der is not None}


def _where(directive: Directive | None, fallback: Directive) -> tuple[str, int]:
    return (directive or fallback).where


def crl_threshold(crl: x509.CertificateRevocationList) -> timedelta:
    """Warn in the last quarter of a CRL's life, at most 7 days ahead."""
    nxt = crl.next_update_utc
    if nxt is None:
        return CRL_WARN
    return min(CRL_WARN, (nxt - crl.last_update_utc) / 4)


def crl_age_findings(
    crl: x509.CertificateRevocationList, where: tuple[str, int], now: datetime
) -> list[Finding]:
    nxt = crl.next_update_utc
    issuer = crl.issuer.rfc4514_string()
    if nxt is None:
        return []
    if nxt <= now:
        return [make("crl-expired", where, f"the CRL of {issuer} expired at {nxt:%Y-%m-%d %H:%M}Z")]
    if nxt - now <= crl_threshold(crl):
        return [
            make("crl-expiring", where, f"the CRL of {issuer} expires at {nxt:%Y-%m-%d %H:%M}Z")
        ]
    return []


def _level(profile: Profile, now: datetime, findings: list[Finding]) -> Level:
    """The signing CA of PROFILE (or of its root/), its CRL and its revoked serials."""
    ca = pki.certificates(profile.signing_cert)[0]
    crl = None
    try:
        crl = pki.crls(profile.crl)[0]
    except pki.Unreadable as exc:
        findings.append(make("file-unreadable", (str(profile.crl), 0), str(exc)))
    else:
        findings.extend(crl_age_findings(crl, (str(profile.crl), 0), now))
    entries = database.read(profile.index)
    revoked = {e.serial_int for e in entries if e.flag == "R"}
    return Level(ca, crl, pki.der_crl(crl) if crl is not None else None, revoked)


def profile_facts(profile: Profile) -> ProfileFacts:
    """Read the profile (CA chain, CRLs, databases) and check it on its own.

    A two-level profile has two CAs: the intermediate (PROFILE/, signs the leaves)
    and the root (PROFILE/root/, signs the intermediate); each has its CRL.
    """
    now = pki.now()
    findings: list[Finding] = []
    cas = pki.certificates(profile.chain)
    levels = [_level(profile, now, findings)]
    if profile.two_level:
        levels.append(_level(profile.root, now, findings))
    facts = ProfileFacts(profile, cas, {pki.der(c) for c in cas}, levels, now, findings)
    for ca in cas:
        end = pki.not_after(ca)
        label = f"CA certificate {pki.subject_text(ca)}"
        if end <= now:
            findings.append(make("ca-expired", (str(profile.chain), 0),
                                 f"{label} expired at {end:%Y-%m-%d}"))  # fmt: skip
        elif end - now <= CA_WARN:
            findings.append(make("ca-expiring", (str(profile.chain), 0),
                                 f"{label} expires at {end:%Y-%m-%d}"))  # fmt: skip
    findings += _leaf_findings(profile, database.read(profile.index), now)
    return facts


def _leaf_findings(profile: Profile, entries: list[database.Entry], now: datetime) -> list[Finding]:
    out = []
    for number, entry in enumerate(entries, 1):
        if entry.status(now) != "valid":
            continue
        try:
            cert = pki.certificates(profile.newcert_path(entry.serial))[0]
        except pki.Unreadable:
            continue  # `certwiz check` reports a missing newcerts file
        where = (str(profile.index), number)
        label = f"certificate {entry.serial} ({entry.subject})"
        kinds = pki.usages(cert)
        if pki.is_ca(cert) and kinds:
            out.append(make("leaf-is-ca", where, f"{label} has CA:TRUE and an EKU of a leaf"))
        if kinds == {"server", "client"} or ("client" in kinds and "server" in kinds):
            out.append(make("client-cert-server-auth", where,
                            f"{label} carries both clientAuth and serverAuth"))  # fmt: skip
    return out


# ---- one server ---------------------------------------------------------------------


@dataclass
class ServerView:
    """A server block and what doctor learned about it."""

    block: Directive
    trust: list[tuple[Directive, list[x509.Certificate]]]
    leaf: x509.Certificate | None
    mode: str
    mode_at: Directive | None

    @property
    def trusted(self) -> list[x509.Certificate]:
        return [c for _, certs in self.trust for c in certs]


def _arg(directive: Directive | None, default: str = "") -> str:
    return directive.args[0] if directive is not None and directive.args else default


def _has_variable(value: str) -> bool:
    return "$" in value


def _view(server: Directive, reader_files: list[Finding]) -> ServerView:
    trust = []
    for name in ("ssl_client_certificate", "ssl_trusted_certificate"):
        directive = server.inherited(name)
        if directive is None or not directive.args or _has_variable(directive.args[0]):
            continue
        try:
            trust.append((directive, pki.certificates(Path(directive.args[0]))))
        except pki.Unreadable as exc:
            reader_files.append(make("file-unreadable", directive.where, str(exc)))
    leaf = None
    certs = server.inherited_all("ssl_certificate")
    if certs and certs[0].args and not _has_variable(certs[0].args[0]):
        with contextlib.suppress(pki.Unreadable):
            leaf = pki.certificates(Path(certs[0].args[0]))[0]
    mode_at = server.inherited("ssl_verify_client")
    return ServerView(server, trust, leaf, _arg(mode_at, "off"), mode_at)


def _related(view: ServerView, facts: ProfileFacts) -> bool:
    if any(pki.der(c) in facts.ca_ders for c in view.trusted):
        return True
    return view.leaf is not None and any(pki.signed_by(view.leaf, ca) for ca in facts.cas)


def _passing(server: Directive) -> list[Directive]:
    """Every directive that hands a request to an upstream, in any location."""
    out = [d for d in server.block or [] if d.name in PASSES]
    for location in locations(server):
        out += [d for d in location.block or [] if d.name in PASSES]
    return out


def _guarded(directive: Directive) -> bool:
    """Is a `$ssl_client_verify != SUCCESS` check that returns in force before DIRECTIVE?"""
    block = directive.parent
    while block is not None and block.name != "http":
        for item in block.children("if"):
            condition = " ".join(item.args)
            if _VERIFY_GUARD.search(condition) and item.first("return") is not None:
                return True
        if block.name == "server":
            break
        block = block.parent
    return False


def _verify_findings(view: ServerView) -> list[Finding]:
    server = view.block
    if view.mode == "off":
        detail = (
            "ssl_verify_client is off"
            if view.mode_at is not None
            else "this server does not set ssl_verify_client (nginx's default is off)"
        )
        return [make("verify-client-off", _where(view.mode_at, server), detail)]
    if view.mode in ("optional", "optional_no_ca"):
        return [
            make(
                "verify-optional-unchecked",
                passing.where,
                f"ssl_verify_client {view.mode} and this {passing.name} runs without a "
                "check of $ssl_client_verify",
            )
            for passing in _passing(server)
            if not _guarded(passing)
        ]
    return []


def _bypass_findings(view: ServerView) -> list[Finding]:
    """Ways around the client certificate check: a plain listen, an error page that proxies."""
    server = view.block
    out = []
    if _arg(server.inherited("ssl"), "off") != "on":  # `ssl on;` (old nginx) covers every listen
        for listen in server.children("listen"):
            if "ssl" not in listen.args[1:] and "quic" not in listen.args[1:]:
                out.append(
                    make(
                        "listen-without-ssl",
                        listen.where,
                        f"listen {_arg(listen)} has no ssl: requests on it bring no client "
                        "certificate and still reach this server's locations",
                    )
                )
    named = {_arg(loc): loc for loc in locations(server) if _arg(loc).startswith("@")}
    for block in [server, *locations(server)]:
        for page in block.children("error_page"):
            codes = {a for a in page.args if a.isdigit()}
            target = page.args[-1] if page.args else ""
            if not codes & {"495", "496"}:
                continue
            handler = named.get(target)
            if handler is not None and any(d.name in PASSES for d in handler.walk()):
                out.append(
                    make(
                        "error-page-passes",
                        page.where,
                        f"error_page {' '.join(page.args)} sends a request whose client "
                        f"certificate failed to {target}, which proxies it",
                    )
                )
    return out


def _trust_findings(view: ServerView, facts: ProfileFacts) -> list[Finding]:
    out = []
    for directive, certs in view.trust:
        foreign = [c for c in certs if pki.der(c) not in facts.ca_ders]
        if foreign:
            names = ", ".join(pki.subject_text(c) for c in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            out.append(
                make(
                    "trust-too-wide",
                    directive.where,
                    f"{directive.args[0]} holds {len(foreign)} certificate(s) that are not "
                    f"CAs of profile {facts.profile.name}: {names}{more}",
                )
            )
    return out


def _revocation_findings(
    view: ServerView, facts: ProfileFacts, unreadable: list[Finding]
) -> list[Finding]:
    server = view.block
    crl_at = server.inherited("ssl_crl")
    ocsp_at = server.inherited("ssl_ocsp")
    ocsp = _arg(ocsp_at, "off") in ("on", "leaf")
    out: list[Finding] = []
    if ocsp_at is not None and ocsp and server.inherited("ssl_ocsp_responder") is None:
        from .. import ocsp as ocsp_lib

        if ocsp_lib.configured_url(facts.profile) is None:
            out.append(
                make(
                    "ocsp-no-responder",
                    ocsp_at.where,
                    "ssl_ocsp is on, there is no ssl_ocsp_responder and the profile's "
                    "certificates name no OCSP responder (ca set --ocsp-url)",
                )
            )
    if crl_at is None:
        if ocsp:
            return out
        return [
            make("revocation-off", server.where, "this server has neither ssl_crl nor ssl_ocsp")
        ]
    path = Path(_arg(crl_at))
    try:
        loaded = pki.crls(path)
    except pki.Unreadable as exc:
        unreadable.append(make("file-unreadable", crl_at.where, str(exc)))
        return out
    mine = facts.profile_crl_ders
    for crl in loaded:
        if pki.der_crl(crl) not in mine:  # the profile's own CRLs are checked once, above
            out += crl_age_findings(crl, crl_at.where, facts.now)
    # nginx sets CRL_CHECK_ALL: every CA of a client's chain needs its CRL in this file.
    for ca in facts.cas:
        if not any(pki.signed_by(crl, ca) for crl in loaded):
            out.append(
                make(
                    "crl-missing-for-ca",
                    crl_at.where,
                    f"{path} has no CRL signed by {pki.subject_text(ca)}",
                )
            )
    for level in facts.levels:
        signed = [crl for crl in loaded if pki.signed_by(crl, level.ca)]
        if signed:
            out += _currency(signed, level, facts, crl_at, path)
    return out


def _currency(
    signed: list[x509.CertificateRevocationList],
    level: Level,
    facts: ProfileFacts,
    crl_at: Directive,
    path: Path,
) -> list[Finding]:
    """Is the newest CRL of LEVEL's CA in the nginx file as new as the profile's?"""
    newest = max(signed, key=lambda c: pki.crl_number(c) or -1)
    problems = []
    if level.crl is not None:
        have, want = pki.crl_number(newest), pki.crl_number(level.crl)
        if want is not None and (have is None or have < want):
            problems.append(f"its CRL Number is {have}, the profile's is {want}")
    missing = sorted(level.revoked - pki.revoked_serials(newest))
    if missing:
        shown = ", ".join(f"{s:X}" for s in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        problems.append(f"revoked serial(s) {shown}{more} are missing")
    if not problems:
        return []
    return [
        make(
            "crl-not-current",
            crl_at.where,
            f"{path} is not the current CRL of {pki.subject_text(level.ca)} in profile "
            f"{facts.profile.name} ({'; '.join(problems)})",
        )
    ]


def _depth_findings(view: ServerView, facts: ProfileFacts) -> list[Finding]:
    at = view.block.inherited("ssl_verify_depth")
    try:
        depth = int(_arg(at, "1"))
    except ValueError:
        return []
    if depth >= facts.depth:
        return []
    return [
        make(
            "verify-depth-too-small",
            _where(at, view.block),
            f"ssl_verify_depth is {depth} but client certificates of profile "
            f"{facts.profile.name} have {facts.depth} CA certificate(s) above them",
            f"ssl_verify_depth {facts.depth};",
        )
    ]


def _server_cert_findings(
    view: ServerView, facts: ProfileFacts, unreadable: list[Finding]
) -> list[Finding]:
    server = view.block
    certs = server.inherited_all("ssl_certificate")
    keys = server.inherited_all("ssl_certificate_key")
    out: list[Finding] = []
    for index, cert_at in enumerate(certs):
        if not cert_at.args or _has_variable(cert_at.args[0]):
            continue
        try:
            cert = pki.certificates(Path(cert_at.args[0]))[0]
        except pki.Unreadable as exc:
            unreadable.append(make("file-unreadable", cert_at.where, str(exc)))
            continue
        if index < len(keys) and keys[index].args and not _has_variable(keys[index].args[0]):
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


def _header_name(directive: Directive) -> str:
    return directive.args[0].lower() if directive.args else ""


def _header_findings(view: ServerView, upstreams: dict[str, Directive]) -> list[Finding]:
    server = view.block
    identity: set[str] = set()
    for directive in [server, *locations(server)]:
        for header in directive.children("proxy_set_header"):
            if len(header.args) >= 2 and _IDENTITY_VALUE.search(header.args[1]):
                identity.add(_header_name(header))
    out: list[Finding] = []
    for passing in _passing(server):
        if passing.name != "proxy_pass":
            continue
        at = passing.parent or server
        effective = at.inherited_all("proxy_set_header")
        set_here = {_header_name(h): h for h in effective}
        for header in effective:
            name = _header_name(header)
            value = header.args[1] if len(header.args) >= 2 else ""
            if (name.startswith("x-client") or name in identity) and "$http_" in value:
                out.append(
                    make(
                        "header-forgeable",
                        header.where,
                        f"{header.args[0]} is set from {value}, which the client sends",
                    )
                )
        for name in sorted(identity - set(set_here)):
            out.append(
                make(
                    "header-forgeable",
                    passing.where,
                    f"this proxy_pass does not set {name} (set elsewhere in the server), "
                    "so the client's own header passes through",
                )
            )
        out += _upstream_findings(passing, upstreams)
    if identity:
        under = server.inherited("underscores_in_headers")
        if _arg(under) == "on":
            out.append(make("header-underscores", under.where,  # type: ignore[union-attr]
                            "underscores_in_headers is on"))  # fmt: skip
    return out


def _loopback(host: str) -> bool:
    if host in ("localhost", "localhost.") or host.startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _upstream_findings(passing: Directive, upstreams: dict[str, Directive]) -> list[Finding]:
    target = _arg(passing)
    if not target.startswith("http://") or "$" in target:
        return []
    host = urlsplit(target).hostname or ""
    block = upstreams.get(host)
    if block is not None:
        members = [_arg(s).rsplit(":", 1)[0] for s in block.children("server")]
        remote = [m for m in members if not _loopback(m)]
    else:
        remote = [] if _loopback(host) or target.startswith("http://unix:") else [host]
    if not remote:
        return []
    return [
        make(
            "upstream-plain-http",
            passing.where,
            f"proxy_pass {target} sends requests to {', '.join(remote)} over plain http",
        )
    ]


def _tls_findings(view: ServerView) -> list[Finding]:
    server = view.block
    out = []
    cache = server.inherited("ssl_session_cache")
    tickets = server.inherited("ssl_session_tickets")
    reasons = []
    if cache is not None and _arg(cache) not in ("off", "none"):
        reasons.append(f"ssl_session_cache {' '.join(cache.args)}")
    if _arg(tickets, "on") != "off":
        reasons.append(
            "ssl_session_tickets on" if tickets is not None else "session tickets (nginx's default)"
        )
    if reasons:
        where = cache if cache is not None and _arg(cache) not in ("off", "none") else tickets
        out.append(make("session-resumption", _where(where, server),
                        f"{' and '.join(reasons)} resume sessions"))  # fmt: skip
    protocols_at = server.inherited("ssl_protocols")
    protocols = protocols_at.args if protocols_at is not None else DEFAULT_PROTOCOLS
    weak = [p for p in protocols if p in WEAK_PROTOCOLS]
    if weak:
        detail = "ssl_protocols allows" if protocols_at else "nginx's default ssl_protocols allow"
        out.append(make("weak-protocol", _where(protocols_at, server),
                        f"{detail} {' '.join(weak)}"))  # fmt: skip
    ciphers_at = server.inherited("ssl_ciphers")
    if ciphers_at is not None and any(p != "TLSv1.3" for p in protocols):
        tokens = re.split(r"[:, ]+", _arg(ciphers_at))
        bad = [t for t in tokens if t and t[0] not in "!-+" and _WEAK_CIPHER.search(t)]
        if bad:
            out.append(make("weak-cipher", ciphers_at.where,
                            f"ssl_ciphers admits {', '.join(bad[:4])}"))  # fmt: skip
    return out


# ---- several servers ----------------------------------------------------------------


def listen_key(directive: Directive) -> tuple[str, bool]:
    """(normalized ADDRESS:PORT, ssl) of a listen directive."""
    address = _arg(directive)
    if address.isdigit():
        address = f"*:{address}"
    elif not address.startswith("unix:") and (
        ":" not in address.replace("[", "").replace("]", "") or address.endswith("]")
    ):
        address = f"{address}:80"
    return address, "ssl" in directive.args[1:]


def has_handshake_guard(server: Directive, listen: Directive | None = None) -> bool:
    """Does the server itself refuse a request whose handshake another server made?

    Only a server-level `if ($ssl_server_name !~* "...") { return 4xx; }` whose pattern
    admits the server's own name and refuses another counts (a guard in one location
    leaves the others open; an issuer-DN check is fooled by two CAs with one CN). A
    pattern that admits an empty SNI is sound only on the listen's default_server,
    the one server that makes no-SNI handshakes.
    """
    named = server.first("server_name")
    own = [n.lower().rstrip(".") for n in (named.args if named else []) if n and n != "_"]
    for cond in server.children("if"):
        args = [a for a in cond.args if a not in ("(", ")")]
        if args and args[0].startswith("("):
            args[0] = args[0][1:]
        if args and cond.args[-1] != ")" and args[-1].endswith(")"):
            args[-1] = args[-1][:-1]  # `if ($x !~* ^a$)`: the paren sits on the pattern
        if len(args) != 3 or args[0] != "$ssl_server_name" or args[1] not in ("!~*", "!~"):
            continue
        done = cond.first("return")
        if done is None or not done.args or not re.fullmatch(r"4\d\d", done.args[0]):
            continue
        try:
            pattern = re.compile(args[2].strip("\"'"), re.I if args[1] == "!~*" else 0)
        except re.error:
            continue
        if not own or not all(pattern.search(n) for n in own):
            continue
        if pattern.search("someone-else.invalid"):
            continue
        if pattern.search("") and listen is not None and "default_server" not in listen.args:
            continue
        return True
    return False


def _shared_listen_findings(views: list[ServerView], related: list[ServerView]) -> list[Finding]:
    by_address: dict[str, list[tuple[ServerView, Directive]]] = {}
    for view in views:
        for listen in view.block.children("listen"):
            address, ssl = listen_key(listen)
            if ssl:
                by_address.setdefault(address, []).append((view, listen))
    out = []
    related_ids = {id(v.block) for v in related}
    for address, members in by_address.items():
        if len({id(v.block) for v, _ in members}) < 2:
            continue
        for view, listen in members:
            if (
                id(view.block) in related_ids
                and view.mode != "off"
                and not has_handshake_guard(view.block, listen)
            ):
                others = len(members) - 1
                out.append(
                    make(
                        "shared-listen-unguarded",
                        listen.where,
                        f"{others} other server(s) also listen on {address} and this "
                        "server does not refuse requests whose TLS handshake another "
                        "server made (no $ssl_server_name guard)",
                    )
                )
    return out


def diagnose_servers(root: Directive, facts: ProfileFacts) -> list[Finding]:
    unreadable: list[Finding] = []
    upstreams = {_arg(d): d for d in root.walk() if d.name == "upstream" and d.block is not None}
    views = [_view(server, unreadable) for server in servers(root)]
    related = [v for v in views if _related(v, facts)]
    out: list[Finding] = []
    if not related:
        out.append(
            make(
                "no-server-for-profile",
                (str(root.file), 0),
                f"none of the {len(views)} server block(s) in {root.file} and its includes "
                f"uses profile {facts.profile.name}",
            )
        )
    for view in related:
        out += _verify_findings(view)
        out += _bypass_findings(view)
        if view.mode != "off":
            out += _trust_findings(view, facts)
            out += _revocation_findings(view, facts, unreadable)
            out += _depth_findings(view, facts)
        out += _server_cert_findings(view, facts, unreadable)
        out += _header_findings(view, upstreams)
        out += _tls_findings(view)
    out += _shared_listen_findings(views, related)
    seen: set[tuple[str, str, int, str]] = set()
    unique = []
    for finding in out + unreadable:
        key = (finding.id, finding.file, finding.line, finding.message)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique
