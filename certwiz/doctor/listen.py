"""Several servers on one address: a server must refuse requests whose TLS handshake
another server (another CA) made.
"""

from __future__ import annotations

import re

from .conf import Directive
from .findings import Finding, make
from .view import ServerView, first_arg, reached_ifs


def listen_key(directive: Directive) -> tuple[str, bool]:
    """(normalized ADDRESS:PORT, ssl) of a listen directive."""
    address = first_arg(directive)
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
    for cond in reached_ifs(server):
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


def shared_listen_findings(views: list[ServerView], related: list[ServerView]) -> list[Finding]:
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
