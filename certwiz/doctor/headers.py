"""What reaches the upstream: identity headers a client could forge, headers with
underscores, and upstreams reached over plain http off this host.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from .conf import Directive
from .findings import Finding, make
from .view import ServerView, first_arg, passes_in, within

_IDENTITY_VALUE = re.compile(r"\$\{?ssl_client_")


def _header_name(directive: Directive) -> str:
    return directive.args[0].lower() if directive.args else ""


def header_findings(view: ServerView, upstreams: dict[str, Directive]) -> list[Finding]:
    server = view.block
    identity: set[str] = set()
    for header in within(server, "proxy_set_header"):
        if len(header.args) >= 2 and _IDENTITY_VALUE.search(header.args[1]):
            identity.add(_header_name(header))
    out: list[Finding] = []
    for passing in passes_in(server):
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
        if first_arg(under) == "on":
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
    target = first_arg(passing)
    if not target.startswith("http://") or "$" in target:
        return []
    host = urlsplit(target).hostname or ""
    block = upstreams.get(host)
    if block is not None:
        members = [first_arg(s).rsplit(":", 1)[0] for s in block.children("server")]
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
