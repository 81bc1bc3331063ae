"""Another way in to the application: a server that hands requests to the upstream a
server of this profile protects, without checking this profile's client certificates.

The profile's server may be perfect, and yet `server { listen 8089; location / {
proxy_pass http://127.0.0.1:18081; } }` beside it serves the same application to
anyone (attack round 12, F12). An upstream is compared by the addresses it reaches:
a pass's host and port (or unix socket), or the members of an `upstream` block; a
target built from variables is not known here and not compared.

An address is compared in one form (attack round 14, F4): `::ffff:127.0.0.1` is
127.0.0.1 (names.canonical_ip), a numeric host as the resolver reads it (`0`, `127.1`:
inet_aton), and a destination of 0.0.0.0 or `::` is the local host, where Linux
connects them (127.0.0.1, ::1); `localhost` is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from ..names import canonical_ip
from .conf import Directive
from .findings import Finding, make
from .listen import address_key
from .view import ServerView, first_arg, is_guarded, passes_in

_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}
_LOCAL_NAMES = ("localhost", "localhost.")
_NUMERIC = re.compile(r"[0-9A-Fa-fXx.]+")  # what inet_aton may read as an IPv4 address
_UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # where Linux connects them


def _address(host: str, port: int | None) -> str:
    host = "127.0.0.1" if host.lower() in _LOCAL_NAMES else host
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
    if ip is None and _NUMERIC.fullmatch(host):
        with contextlib.suppress(OSError):
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
    if ip is not None:
        host = _UNSPECIFIED.get(canonical_ip(ip), canonical_ip(ip))
    return address_key(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")


def targets(passing: Directive, upstreams: dict[str, Directive]) -> set[str]:
    """The addresses PASSING sends requests to (empty when doctor cannot tell)."""
    target = first_arg(passing)
    if not target or "$" in target:
        return set()
    scheme, has_scheme, rest = target.partition("://")
    if not has_scheme:
        scheme, rest = "http", target
    if rest.startswith("unix:"):
        return {":".join(rest.split(":", 2)[:2])}  # unix:PATH, without a :URI after it
    split = urlsplit(f"//{rest}")
    host = split.hostname or ""
    try:
        port = split.port
    except ValueError:
        return set()
    block = upstreams.get(host) if split.port is None else None
    if block is not None:
        members: set[str] = set()
        for member in block.children("server"):
            address = first_arg(member)
            if address.startswith("unix:"):
                members.add(address)
            else:
                member_split = urlsplit(f"//{address}")
                members.add(_address(member_split.hostname or "", member_split.port or 80))
        return members
    return {_address(host, port or _DEFAULT_PORTS.get(scheme.lower(), 80))}


def _verifies(view: ServerView, passing: Directive) -> bool:
    return view.mode == "on" or (view.mode != "off" and is_guarded(passing))


def unprotected_findings(
    views: list[ServerView], related: list[ServerView], upstreams: dict[str, Directive],
    profile: str,
) -> list[Finding]:  # fmt: skip
    """Each pass in a server that is not this profile's to an address a server of the
    profile protects with client certificates."""
    protected: dict[str, Directive] = {}
    for view in related:
        for passing in passes_in(view.block):
            if _verifies(view, passing):
                for address in targets(passing, upstreams):
                    protected.setdefault(address, passing)
    out: list[Finding] = []
    ours = {id(view.block) for view in related}
    for view in views:
        if id(view.block) in ours:
            continue
        for passing in passes_in(view.block):
            shared = sorted(targets(passing, upstreams) & protected.keys())
            if shared:
                file, line = protected[shared[0]].where
                out.append(
                    make(
                        "upstream-without-mtls",
                        passing.where,
                        f"{passing.name} {first_arg(passing)} reaches {', '.join(shared)}, "
                        f"which the server at {file}:{line} admits only with profile "
                        f"{profile}'s client certificates, from a server that does not "
                        "verify them",
                    )
                )
    return out
