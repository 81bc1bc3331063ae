"""The checks behind `certwiz doctor`: a profile against the NGINX servers that use it.

Each check reads the parsed configuration (conf.py) and the profile's files and
returns Findings (findings.py); none of them writes or connects anywhere. By concern:
`facts` (the profile alone), `view` (one server block), `access` (who gets in),
`tls`, `headers`, `listen` (several servers on one address).
"""

from __future__ import annotations

from .access import (
    bypass_findings,
    depth_findings,
    revocation_findings,
    trust_findings,
    verify_findings,
)
from .conf import Directive, servers
from .facts import ProfileFacts
from .findings import Finding, make
from .headers import header_findings
from .listen import addresses, plain_listen_findings, shared_listen_findings
from .reach import unprotected_findings
from .tls import server_cert_findings, tls_findings
from .values import Sources
from .view import first_arg, is_related, view_of


def diagnose_servers(root: Directive, facts: ProfileFacts) -> list[Finding]:
    unreadable: list[Finding] = []
    upstreams = {
        first_arg(d): d for d in root.walk() if d.name == "upstream" and d.block is not None
    }
    sources = Sources.of(root)
    views = [view_of(server, unreadable) for server in servers(root)]
    related = [v for v in views if is_related(v, facts)]
    sockets = addresses(views)
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
        out += verify_findings(view)
        out += plain_listen_findings(view, sockets)
        out += bypass_findings(view)
        if view.mode != "off":
            out += trust_findings(view, facts)
            out += revocation_findings(view, facts, unreadable)
            out += depth_findings(view, facts)
        out += server_cert_findings(view, facts, unreadable)
        out += header_findings(view, upstreams, sources)
        out += tls_findings(view)
    out += shared_listen_findings(sockets, related)
    out += unprotected_findings(views, related, upstreams, facts.profile.name)
    seen: set[tuple[str, str, int, str]] = set()
    unique = []
    for finding in out + unreadable:
        key = (finding.id, finding.file, finding.line, finding.message)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique
