"""Several servers on one address: a server must refuse requests whose TLS handshake
another server (another CA) made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from .conf import Directive
from .findings import Finding, make
from .view import ServerView, first_arg, guard_return, reached_ifs

# `listen` flags that mark the address's default server (`default` is nginx's old spelling).
_DEFAULT_FLAGS = ("default_server", "default")


def _ipv4(host: str) -> str | None:
    """HOST as nginx reads an IPv4 address: four decimal parts first (ngx_inet_addr, so
    `127.000.000.001` is 127.0.0.1), then the resolver's numeric forms (`127.1`, `0x7f.1`)."""
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return ".".join(str(int(p)) for p in parts)
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # numeric only: never a lookup
    except (OSError, ValueError):
        return None


def address_key(text: str) -> str:
    """The socket nginx binds for a listen address, one spelling per socket.

    A bare port, `*:P` and `0.0.0.0:P` are the same IPv4 wildcard (shown `*:P`); `[::]:P`,
    `[0::0]:P` IPv6's; an address without a port is port 80. A host name is not resolved
    (doctor connects nowhere): it is compared by name.
    """
    if text.startswith("unix:"):
        return text
    port = "80"
    if text.isdigit():
        host, port = "*", text
    elif text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
        with contextlib.suppress(ValueError):
            host = str(ipaddress.IPv6Address(host))
        return f"[{host}]:{int(port) if port.isdigit() else port}"
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    else:
        host = text
    if host != "*":
        host = _ipv4(host) or host.lower().rstrip(".")
    if host == "0.0.0.0":
        host = "*"
    return f"{host}:{int(port) if port.isdigit() else port}"


def listen_key(directive: Directive) -> str:
    """The socket of a listen directive (QUIC's is UDP, apart from TCP's)."""
    key = address_key(first_arg(directive))
    return f"quic {key}" if "quic" in directive.args[1:] else key


@dataclass
class Address:
    """One socket nginx listens on and every server on it, as nginx merges them: ssl on
    any listen of it makes it TLS for all (a `listen P;` beside another server's `listen
    P ssl;` serves TLS too); the default server makes the handshakes without SNI."""

    key: str
    members: list[tuple[ServerView, Directive | None]] = field(default_factory=list)
    default: ServerView | None = None
    ssl_flag: bool = False

    @property
    def tls(self) -> bool:
        if self.ssl_flag or self.key.startswith("quic "):
            return True
        # `ssl on;` (before nginx 1.25) in the default server makes the socket TLS
        return self.default is not None and ssl_on(self.default.block)


def ssl_on(server: Directive) -> bool:
    return first_arg(server.inherited("ssl"), "off") == "on"


def listens(view: ServerView) -> list[tuple[Directive | None, str]]:
    """(listen, socket) of a server; none written is nginx's `listen *:80` (None)."""
    written = view.block.children("listen")
    if not written:
        return [(None, "*:80")]
    return [(listen, listen_key(listen)) for listen in written]


def addresses(views: list[ServerView]) -> dict[str, Address]:
    """Every socket of the configuration, in the order nginx meets the servers."""
    out: dict[str, Address] = {}
    for view in views:
        for listen, key in listens(view):
            address = out.setdefault(key, Address(key))
            address.members.append((view, listen))
            flags = listen.args[1:] if listen is not None else []
            address.ssl_flag |= "ssl" in flags
            if address.default is None or any(f in flags for f in _DEFAULT_FLAGS):
                address.default = view  # the first server, unless one says default_server
    return out


def tls_servers(servers: list[Directive]) -> list[Directive]:
    """The SERVERS (all of a configuration's, in order) that serve TLS on a socket of
    theirs, by the rule of `Address.tls`: only those can ask for a client certificate
    (a plain-http server inheriting http-level ssl_* directives admits none)."""
    views = [ServerView(server, [], None, "off", None) for server in servers]  # blocks only
    sockets = addresses(views)
    return [v.block for v in views if any(sockets[key].tls for _, key in listens(v))]


def plain_listen_findings(view: ServerView, sockets: dict[str, Address]) -> list[Finding]:
    """A listen on a socket that is not TLS: its requests bring no client certificate."""
    out = []
    for listen, key in listens(view):
        if sockets[key].tls:
            continue
        written = f"listen {first_arg(listen)}" if listen is not None else "no listen (*:80)"
        out.append(
            make(
                "listen-without-ssl",
                (listen or view.block).where,
                f"{written}: nginx serves {key} without TLS (no listen of it has ssl): "
                "requests on it bring no client certificate and still reach this "
                "server's locations",
            )
        )
    return out


def has_handshake_guard(server: Directive, is_default: bool = False) -> bool:
    """Does the server itself refuse a request whose handshake another server made?

    Only a server-level `if ($ssl_server_name !~* "...") { return 4xx; }` whose pattern
    admits the server's own name and refuses another counts (a guard in one location
    leaves the others open; an issuer-DN check is fooled by two CAs with one CN). A
    pattern that admits an empty SNI is sound only on the address's default server,
    the one server that makes no-SNI handshakes.
    """
    named = server.first("server_name")
    own = [n.lower().rstrip(".") for n in (named.args if named else []) if n and n != "_"]
    for cond in reached_ifs(server):
        args = [a for a in cond.args if a not in ("(", ")")]
        if args and args[0].startswith("("):
            args[0] = args[0][1:]
        if args and cond.args[-1] != ")" and args[-1].endswith(")"):
            args[-1] = args[-1][:-1]  # `if ($x !~* ^a$)`: the paren sits on the pattern
        if len(args) != 3 or args[0] != "$ssl_server_name" or args[1] not in ("!~*", "!~"):
            continue
        done = guard_return(cond)
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
        if pattern.search("") and not is_default:
            continue
        return True
    return False


def shared_listen_findings(sockets: dict[str, Address], related: list[ServerView]) -> list[Finding]:
    out = []
    related_ids = {id(v.block) for v in related}
    for address in sockets.values():
        servers = {id(v.block) for v, _ in address.members}
        if len(servers) < 2 or not address.tls:
            continue
        for view, listen in address.members:
            if (
                id(view.block) in related_ids
                and view.mode != "off"
                and not has_handshake_guard(view.block, address.default is view)
            ):
                out.append(
                    make(
                        "shared-listen-unguarded",
                        (listen or view.block).where,
                        f"{len(servers) - 1} other server(s) also listen on {address.key} "
                        "and this server does not refuse requests whose TLS handshake "
                        "another server made (no $ssl_server_name guard)",
                    )
                )
    return out
