"""Who gets in: client-certificate verification, paths around it, the trusted CAs,
revocation (CRL/OCSP) and verify depth of one server, against the profile.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cryptography import x509

from ..profile import Profile
from . import pki
from .conf import Directive, ssl_crl
from .facts import Level, ProfileFacts, crl_age_findings
from .findings import Finding, make
from .view import (
    ServerView,
    enclosing_location,
    first_arg,
    is_guarded,
    passes_in,
    route,
    where_of,
    within,
)

# The EST locations that admit a request without a client certificate (`nginx render
# --enroll`): the CA chain, and a first enrollment the service authenticates with a
# one-time token. Exact matches only, and only under `optional` (a presented
# certificate that fails is still refused by nginx); every other location must check.
EST_OPEN = frozenset({"/.well-known/est/cacerts", "/.well-known/est/simpleenroll"})


def _est_open(passing: Directive) -> bool:
    """Does PASSING sit in `location = /.well-known/est/{cacerts,simpleenroll}`?"""
    block = enclosing_location(passing)
    return (
        block is not None
        and block.name == "location"
        and len(block.args) == 2
        and block.args[0] == "="
        and block.args[1] in EST_OPEN
    )


def verify_findings(view: ServerView) -> list[Finding]:
    server = view.block
    if view.mode == "off":
        detail = (
            "ssl_verify_client is off"
            if view.mode_at is not None
            else "this server does not set ssl_verify_client (nginx's default is off)"
        )
        return [make("verify-client-off", where_of(view.mode_at, server), detail)]
    if view.mode in ("optional", "optional_no_ca"):
        return [
            make(
                "verify-optional-unchecked",
                passing.where,
                f"ssl_verify_client {view.mode} and this {passing.name} runs without a "
                "check of $ssl_client_verify",
            )
            for passing in passes_in(server)
            if not is_guarded(passing) and not (view.mode == "optional" and _est_open(passing))
        ]
    return []


# Statuses nginx answers before, or instead of, the client certificate check: a
# malformed request line or header (400, 414, 494: read before the check), SNI and Host
# naming different servers (421), a bad or no certificate (495, 496), plain http on the
# TLS port (497). An error page for one of them, or for what a certificate guard
# returns, that leads to a location that proxies hands that request to the application.
REFUSED = frozenset({"400", "414", "421", "494", "495", "496", "497"})


def refused_pages(server: Directive) -> list[tuple[Directive, set[str]]]:
    """Each error page in force where SERVER refuses a request, with the statuses it
    refuses there: nginx's own (REFUSED, answered with the server's pages: no location
    is chosen yet) and what an `if` on a `$ssl_...` variable returns (the pages in force
    in that `if`)."""
    found: dict[int, tuple[Directive, set[str]]] = {}

    def add(pages: list[Directive], codes: set[str]) -> None:
        for page in pages:
            found.setdefault(id(page), (page, set()))[1].update(codes)

    add(server.inherited_all("error_page"), set(REFUSED))
    for check in within(server, "if"):
        if "$ssl_" in " ".join(check.args):
            codes = {first_arg(r) for r in check.children("return") if first_arg(r).isdigit()}
            add(check.inherited_all("error_page"), codes)
    return list(found.values())


def _reached_passes(server: Directive, target: str) -> list[Directive]:
    """The passes an error page's TARGET runs unguarded: a named location runs only its
    own rewrite directives (its server's guard is skipped); a URI is routed again, past
    the server's guards, to the location nginx picks."""
    if target.startswith("@"):
        named = [d for d in within(server, "location") if d.args[:1] == [target]]
        return [p for n in named for p in passes_in(n) if not is_guarded(p, top=n)]
    if target.startswith("/") and "$" not in target:
        location = route(server, target.split("?", 1)[0])
        if location is not None:
            return [p for p in passes_in(location) if not is_guarded(p)]
    return []


def bypass_findings(view: ServerView) -> list[Finding]:
    """Ways around the client certificate check: an error page that proxies."""
    server = view.block
    out = []
    for page, codes in refused_pages(server):
        refused = sorted(codes & {a for a in page.args if a.isdigit()})
        target = page.args[-1] if page.args else ""
        if refused and _reached_passes(server, target):
            out.append(
                make(
                    "error-page-passes",
                    page.where,
                    f"error_page {' '.join(page.args)} sends a request this server refused "
                    f"({', '.join(refused)}) to {target}, which proxies it",
                )
            )
    return out


def trust_findings(view: ServerView, facts: ProfileFacts) -> list[Finding]:
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


def revocation_findings(
    view: ServerView, facts: ProfileFacts, unreadable: list[Finding]
) -> list[Finding]:
    server = view.block
    crl_at = ssl_crl(server)
    ocsp_at = server.inherited("ssl_ocsp")
    ocsp = first_arg(ocsp_at, "off") in ("on", "leaf")
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
        if ocsp_at is not None and first_arg(ocsp_at) == "leaf" and len(facts.levels) > 1:
            out.append(make("ocsp-leaf-only", ocsp_at.where, "the profile has an intermediate"))
        if ocsp:
            return out
        empty = server.inherited("ssl_crl")  # `ssl_crl "";`: nginx loads no CRL
        why = 'ssl_crl "" names no CRL' if empty is not None else "this server has no ssl_crl"
        return [make("revocation-off", server.where, f"{why} and no ssl_ocsp")]
    path = Path(first_arg(crl_at))
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
            _current_crl_fix(path, facts.profile),
        )
    ]


def _current_crl_fix(path: Path, profile: Profile) -> str:
    """The profile's own CRL file left behind (crl-chain.pem after a killed run): certwiz
    rebuilds it; another file: point nginx at the profile's (a two-level profile's holds
    both CRLs: its crl.pem alone would make nginx refuse every client)."""
    wanted = profile.nginx_crl
    reload = "then nginx -t && nginx -s reload"
    with contextlib.suppress(OSError):
        if path.samefile(wanted):
            return f"certwiz crl gen -p {profile.cli_name} (it rebuilds {wanted}), {reload}"
    return f"point ssl_crl at {wanted} (or copy it there), {reload}"


def depth_findings(view: ServerView, facts: ProfileFacts) -> list[Finding]:
    at = view.block.inherited("ssl_verify_depth")
    try:
        depth = int(first_arg(at, "1"))
    except ValueError:
        return []
    if depth >= facts.depth:
        return []
    return [
        make(
            "verify-depth-too-small",
            where_of(at, view.block),
            f"ssl_verify_depth is {depth} but client certificates of profile "
            f"{facts.profile.name} have {facts.depth} CA certificate(s) above them",
            f"ssl_verify_depth {facts.depth};",
        )
    ]
