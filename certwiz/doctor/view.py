"""One NGINX server block as doctor sees it (`ServerView`), and the small readers the
checks share: a directive's first argument, where a finding points, which passes a
server has and whether a `$ssl_client_verify` guard protects one.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import pki
from .conf import Directive
from .facts import ProfileFacts
from .findings import Finding, make

PASSES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass")


VERIFY_GUARD = re.compile(r"\$ssl_client_verify\s*(?:!=|!~\*?)\s*\^?SUCCESS\$?\s*\)?\s*$")


def where_of(directive: Directive | None, fallback: Directive) -> tuple[str, int]:
    return (directive or fallback).where


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


def first_arg(directive: Directive | None, default: str = "") -> str:
    return directive.args[0] if directive is not None and directive.args else default


def has_variable(value: str) -> bool:
    return "$" in value


def view_of(server: Directive, reader_files: list[Finding]) -> ServerView:
    trust = []
    for name in ("ssl_client_certificate", "ssl_trusted_certificate"):
        directive = server.inherited(name)
        if directive is None or not directive.args or has_variable(directive.args[0]):
            continue
        try:
            trust.append((directive, pki.certificates(Path(directive.args[0]))))
        except pki.Unreadable as exc:
            reader_files.append(make("file-unreadable", directive.where, str(exc)))
    leaf = None
    certs = server.inherited_all("ssl_certificate")
    if certs and certs[0].args and not has_variable(certs[0].args[0]):
        with contextlib.suppress(pki.Unreadable):
            leaf = pki.certificates(Path(certs[0].args[0]))[0]
    mode_at = server.inherited("ssl_verify_client")
    return ServerView(server, trust, leaf, first_arg(mode_at, "off"), mode_at)


def is_related(view: ServerView, facts: ProfileFacts) -> bool:
    if any(pki.der(c) in facts.ca_ders for c in view.trusted):
        return True
    return view.leaf is not None and any(pki.signed_by(view.leaf, ca) for ca in facts.cas)


def within(block: Directive, *names: str) -> list[Directive]:
    """Every NAMES directive in BLOCK at any depth: nginx runs the ones inside an `if`,
    a `limit_except` or a nested location as it runs the ones written at the top."""
    return [d for d in block.walk() if d.name in names]


def passes_in(block: Directive) -> list[Directive]:
    """Every directive that hands a request to an upstream, anywhere in BLOCK."""
    return within(block, *PASSES)


def enclosing_location(directive: Directive) -> Directive | None:
    """The innermost location around DIRECTIVE (past `if` and `limit_except`)."""
    block = directive.parent
    while block is not None and block.name != "location":
        if block.name == "server":
            return None
        block = block.parent
    return block


def ends_rewrites(item: Directive) -> bool:
    """Does ITEM (or an `if` block holding one) stop the rewrite directives after it?

    `break` and `rewrite ... last|break` end the block's rewrite phase: an `if ...
    { return 4xx; }` written after them is never reached for the requests they take.
    """
    if item.name == "break":
        return True
    if item.name == "rewrite" and item.args[-1:] in (["last"], ["break"]):
        return True
    return item.name == "if" and any(ends_rewrites(inner) for inner in item.block or [])


def reached(block: Directive, name: str) -> list[Directive]:
    """The NAME directives of BLOCK that every request reaches: those before any `break`
    or `rewrite ... last|break` of the same block (nginx runs them in order)."""
    out: list[Directive] = []
    for item in block.block or []:
        if item.name == name:
            out.append(item)
        if ends_rewrites(item):
            break
    return out


def reached_ifs(block: Directive) -> list[Directive]:
    """The `if` blocks of BLOCK that every request reaches."""
    return reached(block, "if")


def guard_return(condition: Directive) -> Directive | None:
    """The `return` an `if` block runs when its condition holds: its first one, unless
    a `break` or `rewrite ... last|break` before it ends the block first (`if (...)
    { break; return 403; }` returns nothing, the request goes on)."""
    returns = reached(condition, "return")
    return returns[0] if returns else None


def is_guarded(directive: Directive, top: Directive | None = None) -> bool:
    """Is a `$ssl_client_verify != SUCCESS` check that returns in force before DIRECTIVE?

    TOP stops the look-up there: a named location entered from `error_page` runs its
    own rewrite directives only, not its server's.
    """
    block = directive.parent
    while block is not None and block.name != "http":
        for item in reached_ifs(block):
            condition = " ".join(item.args)
            if VERIFY_GUARD.search(condition) and guard_return(item) is not None:
                return True
        if block.name == "server" or block is top:
            break
        block = block.parent
    return False


_MODIFIERS = ("=", "^~", "~*", "~")


def location_match(location: Directive) -> tuple[str, str]:
    """(modifier, pattern) of a location, also when written together (`location =/x`)."""
    args = location.args
    if len(args) >= 2:
        return args[0], args[1]
    text = args[0] if args else ""
    for modifier in _MODIFIERS:
        if text.startswith(modifier) and len(text) > len(modifier):
            return modifier, text[len(modifier) :]
    return "", text


def route(block: Directive, uri: str) -> Directive | None:
    """The location nginx picks for URI among BLOCK's (ngx_http_core_find_location): an
    exact `=` match; else the longest prefix, whose nested locations are searched the
    same way; then, unless that prefix is `^~`, the first regex that matches, in order."""
    return _route(block, uri)[0]


def _route(block: Directive, uri: str) -> tuple[Directive | None, bool]:
    """(location, settled): settled when an exact or a regex match decided."""
    prefix: Directive | None = None
    regexes: list[tuple[Directive, str, int]] = []
    for location in block.children("location"):
        if location.block is None:
            continue
        modifier, pattern = location_match(location)
        if modifier == "=":
            if uri == pattern:
                return location, True
        elif modifier in ("~", "~*"):
            regexes.append((location, pattern, re.I if modifier == "~*" else 0))
        elif (
            not pattern.startswith("@")
            and uri.startswith(pattern)
            and (prefix is None or len(pattern) > len(location_match(prefix)[1]))
        ):
            prefix = location
    found: Directive | None = None
    if prefix is not None:
        found, settled = _route(prefix, uri)
        if settled:
            return found, True
        found = found or prefix
        if location_match(prefix)[0] == "^~":
            return found, False
    for location, pattern, flags in regexes:
        try:
            matched = re.search(pattern, uri, flags)
        except re.error:  # PCRE syntax Python does not read: not decided here
            continue
        if matched:
            return _route(location, uri)[0] or location, True
    return found, False
