"""The one Jinja2 environment for OpenSSL and NGINX config text.

Values are escaped for OpenSSL's config syntax by the `cnf` filter, so a
name can never add a line, a section or a `$variable` to a rendered file.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import jinja2

# In OpenSSL's config syntax `\` escapes, `$` expands a variable, `#` starts a
# comment and quotes (including the backtick) are stripped; a backslash makes
# each of them literal.
_CNF_SPECIAL = {"\\", "$", "#", '"', "'", "`"}


class UnsafeValue(InputError, ValueError):
    """A value no escaping makes safe; validation should have refused it earlier.

    An InputError (exit 2, one line) so that a gap in validation is never a traceback.
    """

    def __init__(self, rule: str) -> None:
        super().__init__("value", rule)


def _utf8(text: str) -> None:
    """Config files are UTF-8: a lone surrogate (a non-UTF-8 byte from argv) cannot go in."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeValue(f"{text!r} is not valid UTF-8 (at position {exc.start})") from None


def cnf_escape(value: object) -> str:
    """Escape a value for the right-hand side of an OpenSSL config line."""
    text = str(value)
    _utf8(text)
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\u2028\u2029\x85":
            raise UnsafeValue(f"control character U+{ord(ch):04X} cannot go into a config value")
    if text != text.strip():
        raise UnsafeValue("a config value cannot start or end with white space")
    return "".join("\\" + ch if ch in _CNF_SPECIAL else ch for ch in text)


def nginx_escape(value: object) -> str:
    """Quote a value (a path, a name) as one NGINX config argument."""
    text = str(value)
    _utf8(text)
    bad = [ch for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\"\\$'"]
    if bad:
        raise UnsafeValue(f"{text!r}: the character {bad[0]!r} cannot go into an nginx config")
    return '"' + text + '"'


def nginx_sni_regex(host: object, allow_empty: bool) -> str:
    """A quoted nginx regex for `$ssl_server_name`: HOST (a DNS name or IP address), any
    case under `~*`, with or without the root dot nginx also accepts; with ALLOW_EMPTY
    also the empty string (a handshake without SNI).

    `[.]`, not a backslash, and nothing but LDH, `.` and `:` from HOST, so no value
    can bring its own regex syntax, quote or `$` variable into the config.
    """
    text = str(host)
    if not re.fullmatch(r"[A-Za-z0-9.:-]+", text):
        raise UnsafeValue(f"{text!r} is not a host name or address for an nginx regex")
    name = text.replace(".", "[.]") + "[.]?"
    return f'"^({name})?$"' if allow_empty else f'"^{name}$"'


@cache
def _environment(package: str) -> jinja2.Environment:
    import jinja2  # here, not at import time: most commands render nothing

    root = resources.files(package)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(str(root)))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["cnf"] = cnf_escape
    env.filters["nginx"] = nginx_escape
    env.filters["sni_regex"] = nginx_sni_regex
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    return env


def render_openssl(template: str, **context: object) -> str:
    return _environment("certwiz.openssl_templates").get_template(template).render(**context)


def render_nginx(template: str, **context: object) -> str:
    return _environment("certwiz.nginx_templates").get_template(template).render(**context)


def render_client(template: str, **context: object) -> str:
    """Text handed to a client's owner (the onboarding README)."""
    return _environment("certwiz.client_templates").get_template(template).render(**context)
