"""Where a value nginx sends comes from: can the client choose any part of it?

An identity header is trustworthy only when every value it can take is fixed by the TLS
handshake: literals, nginx's built-in `$ssl_*` variables (_HANDSHAKE; not
`$ssl_server_name`, the client's SNI), and `map`/`set` variables built only from those.
A name the configuration defines itself is traced through its definitions, never trusted
for its spelling: `$ssl_client_user` from a regex named capture
`(?<ssl_client_user>...)`, a `geo`, a `split_clients`... is the client's (attack round
14), and a variable a `map` and a `set` both define is trusted only when all are.
Everything else is the client's to write: `$http_*`, `$arg_*`, `$cookie_*`,
`$remote_user` (read from the Authorization header), `$args`, `$uri`, `$request_uri`, a
regex capture of the URI, and any variable doctor cannot trace (geo, split_clients,
perl_set, js_set, auth_request_set...). An allow-list, so a spelling doctor does not
know is forgeable rather than clean.

nginx reads `$name` and `${name}`, and variable names without regard to case
(`$HTTP_X_FP` is `$http_x_fp`: checked through a real nginx in
tests/security/test_doctor_header_values.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .conf import Directive

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))")
_CAPTURE = re.compile(r"[0-9]+")
# ngx_http_ssl_module's variables (nginx 1.22 documentation), less $ssl_server_name:
# the SNI the client sends
_HANDSHAKE = frozenset(
    {
        "ssl_alpn_protocol", "ssl_cipher", "ssl_ciphers", "ssl_client_cert",
        "ssl_client_escaped_cert", "ssl_client_fingerprint", "ssl_client_i_dn",
        "ssl_client_i_dn_legacy", "ssl_client_raw_cert", "ssl_client_s_dn",
        "ssl_client_s_dn_legacy", "ssl_client_serial", "ssl_client_v_end",
        "ssl_client_v_remain", "ssl_client_v_start", "ssl_client_verify", "ssl_curve",
        "ssl_curves", "ssl_early_data", "ssl_protocol", "ssl_session_id",
        "ssl_session_reused",
    }
)  # fmt: skip
# PCRE's named groups: (?<name>...), (?'name'...), (?P<name>...); each is a variable
_NAMED_CAPTURE = re.compile(r"\(\?(?:P?<|')([A-Za-z_][A-Za-z0-9_]*)[>']")
# directives that define a variable doctor does not trace: the argument index it is at
_OTHER_DEFINITIONS = {
    "geo": -1, "split_clients": -1, "auth_request_set": 0, "js_set": 0, "js_var": 0,
    "perl_set": 0,
}  # fmt: skip
_MAP_KEYWORDS = ("hostnames", "volatile")


def variables(value: str) -> list[str]:
    """The variable names in VALUE, lower case, in order (`$a`, `${b}`)."""
    return [(braced or bare).lower() for braced, bare in _VARIABLE.findall(value)]


@dataclass
class Sources:
    """The map and set definitions of a whole configuration."""

    maps: dict[str, Directive] = field(default_factory=dict)
    sets: dict[str, list[Directive]] = field(default_factory=dict)
    others: dict[str, Directive] = field(default_factory=dict)
    _memo: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Directive) -> Sources:
        out = cls()
        for directive in root.walk():
            if directive.name == "map" and directive.block is not None and len(directive.args) == 2:
                for name in variables(directive.args[1]):
                    out.maps[name] = directive
            elif directive.name == "set" and len(directive.args) == 2:
                for name in variables(directive.args[0]):
                    out.sets.setdefault(name, []).append(directive)
            elif directive.name in _OTHER_DEFINITIONS and directive.args:
                for name in variables(directive.args[_OTHER_DEFINITIONS[directive.name]]):
                    out.others.setdefault(name, directive)
            for arg in [directive.name, *directive.args]:  # a map's key is its name
                for name in _NAMED_CAPTURE.findall(arg):
                    out.others.setdefault(name.lower(), directive)
        return out

    def forgeable(self, value: str, captures: bool = False) -> str | None:
        """Why the client can choose (part of) VALUE, or None when it cannot.

        CAPTURES: `$1`... come from a regex over a trusted value (a map's source)."""
        for name in variables(value):
            if _CAPTURE.fullmatch(name) and captures:
                continue
            why = self._variable(name)
            if why is not None:
                return why
        return None

    def _variable(self, name: str) -> str | None:
        if name in self._memo:
            return self._memo[name]
        self._memo[name] = f"${name}"  # a loop of definitions counts as forgeable
        why = self._trace(name)
        self._memo[name] = why
        return why

    def _trace(self, name: str) -> str | None:
        if name in self.others:
            return f"${name} (defined by {self.others[name].name})"
        if name not in self.maps and name not in self.sets:
            return None if name in _HANDSHAKE else f"${name}"
        if name in self.maps:
            block = self.maps[name]
            source = self.forgeable(block.args[0])
            if source is not None:
                return f"${name} (a map of {block.args[0]}: {source})"
            for entry in block.block or []:
                if entry.name in _MAP_KEYWORDS or not entry.args:
                    continue
                why = self.forgeable(entry.args[-1], captures=True)
                if why is not None:
                    return f"${name} (a map value {entry.args[-1]}: {why})"
        for directive in self.sets.get(name, []):
            why = self.forgeable(directive.args[1], captures=_in_trusted_if(directive, self))
            if why is not None:
                return f"${name} (set to {directive.args[1]}: {why})"
            condition = _conditions(directive, self)
            if condition is not None:
                return f"${name} (set under if {condition})"
        return None


def _ifs(directive: Directive) -> list[Directive]:
    return [block for block in directive.chain()[1:] if block.name == "if"]


def _conditions(directive: Directive, sources: Sources) -> str | None:
    """The first `if` around DIRECTIVE whose condition the client can steer."""
    for block in _ifs(directive):
        condition = " ".join(block.args)
        if sources.forgeable(condition) is not None:
            return condition
    return None


def _in_trusted_if(directive: Directive, sources: Sources) -> bool:
    """`$1` in a set inside `if ($ssl_client_s_dn ~ ...)` is a capture of that trusted
    value; anywhere else it may be the URI's (a location regex)."""
    ifs = _ifs(directive)
    return bool(ifs) and _conditions(directive, sources) is None
