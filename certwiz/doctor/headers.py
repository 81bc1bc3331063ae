"""What reaches the upstream: identity headers a client could forge, headers with
underscores, and upstreams reached over plain http off this host.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from .conf import Directive
from .findings import Finding, make
from .values import Sources
from .view import ServerView, first_arg, passes_in, within

_IDENTITY_VALUE = re.compile(r"\$\{?ssl_client_", re.I)

# Each pass module sends the client's request headers its own way, and only its own
# directive sets or clears one: proxy_set_header does nothing for scgi_pass.
# pass -> (the directive that sets what it sends, the switch that sends no client header)
SENDERS: dict[str, tuple[str, str | None]] = {
    "proxy_pass": ("proxy_set_header", "proxy_pass_request_headers"),
    "grpc_pass": ("grpc_set_header", None),
    "fastcgi_pass": ("fastcgi_param", "fastcgi_pass_request_headers"),
    "scgi_pass": ("scgi_param", "scgi_pass_request_headers"),
    "uwsgi_pass": ("uwsgi_param", "uwsgi_pass_request_headers"),
}  # memcached_pass sends the key only, no header
_CGI_PREFIX = "HTTP_"  # a *_param named HTTP_X replaces the client's header X (nginx: exact case)


def _key(directive: Directive) -> str | None:
    """The request header DIRECTIVE sets, as a CGI app names it without HTTP_ (lower case,
    `_` for `-`: x_client_verify), or None when it sets no request header (a CGI
    parameter not named HTTP_*)."""
    name = directive.args[0] if directive.args else ""
    if directive.name.endswith("_param"):
        if not name.startswith(_CGI_PREFIX):
            return None
        name = name[len(_CGI_PREFIX) :]
    return name.lower().replace("-", "_")


def _replaces(directive: Directive) -> str | None:
    """The client header (same key form) that DIRECTIVE keeps from reaching the upstream:
    proxy_set_header X-Client-Verify replaces the client's X-Client-Verify (a client's
    X_Client_Verify is another header, dropped unless underscores_in_headers is on);
    fastcgi_param HTTP_X_CLIENT_VERIFY replaces X-Client-Verify (nginx compares the rest
    of the name lower-cased, `-` read as `_`: HTTP_X-CLIENT-VERIFY replaces nothing)."""
    name = directive.args[0] if directive.args else ""
    if directive.name.endswith("_param"):
        if not name.startswith(_CGI_PREFIX) or "-" in name:
            return None
        return name[len(_CGI_PREFIX) :].lower()
    return None if "_" in name else name.lower().replace("-", "_")


def _fix(setter: str, passing: str) -> str:
    example = (
        f"{setter} HTTP_X_CLIENT_VERIFY $ssl_client_verify;"
        if setter.endswith("_param")
        else f"{setter} X-Client-Verify $ssl_client_verify;"
    )
    return (
        f'set every X-Client-* header from $ssl_client_* (or to "") with {setter} in each '
        f"location that has {passing} (`{example}`; a {setter} in a location drops all "
        "inherited ones, an `include` of *_params too)"
    )


def header_findings(
    view: ServerView, upstreams: dict[str, Directive], sources: Sources
) -> list[Finding]:
    server = view.block
    identity: set[str] = set()
    setters = [setter for setter, _ in SENDERS.values()]
    around = [d for block in server.chain()[1:] for d in block.block or [] if d.name in setters]
    for header in [*around, *within(server, *setters)]:  # set in http { } counts too
        key = _key(header)
        if key and len(header.args) >= 2 and _IDENTITY_VALUE.search(header.args[1]):
            identity.add(key)
    out: list[Finding] = []
    for passing in passes_in(server):
        if passing.name in SENDERS:
            out += _sent_headers(passing, server, identity, sources)
        if passing.name == "proxy_pass":
            out += _upstream_findings(passing, upstreams)
    if identity:
        under = server.inherited("underscores_in_headers")
        if first_arg(under) == "on":
            out.append(make("header-underscores", under.where,  # type: ignore[union-attr]
                            "underscores_in_headers is on"))  # fmt: skip
    return out


def _sent_headers(
    passing: Directive, server: Directive, identity: set[str], sources: Sources
) -> list[Finding]:
    """What PASSING sends of the identity headers: set from anything the client can
    write (values.py: only $ssl_* and literals are not), or the client's own passed
    through because this module's directive does not replace it."""
    setter, switch = SENDERS[passing.name]
    fix = None if passing.name == "proxy_pass" else _fix(setter, passing.name)
    at = passing.parent or server
    effective = at.inherited_all(setter)
    out: list[Finding] = []
    for header in effective:
        key = _key(header)
        value = header.args[1] if len(header.args) >= 2 else ""
        if not key or not (key.startswith("x_client") or key in identity):
            continue
        why = sources.forgeable(value)
        if why is not None:
            out.append(
                make(
                    "header-forgeable",
                    header.where,
                    f"{header.args[0]} is set from {value}, and the client chooses {why}",
                    fix,
                )
            )
    if switch is not None and first_arg(at.inherited(switch)) == "off":
        return out  # no header of the client's is sent at all
    missing = sorted(identity - {_replaces(h) for h in effective})
    if missing:  # one finding per pass, naming every header it lets through
        names = ", ".join(key.replace("_", "-") for key in missing)
        out.append(
            make(
                "header-forgeable",
                passing.where,
                f"this {passing.name} does not set {names} with {setter} (set elsewhere "
                "for this server), so the client's own header passes through",
                fix,
            )
        )
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
