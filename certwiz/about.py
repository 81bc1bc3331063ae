"""What `certwiz --version` reports: certwiz, the openssl it drives, and Python."""

from __future__ import annotations

import platform

from . import __version__, openssl
from .errors import CertwizError


def versions() -> dict[str, str]:
    """The versions a bug report needs; the OpenSSL one is the binary certwiz runs."""
    try:
        tool = openssl.run(["version"]).strip()
    except CertwizError as exc:
        tool = f"not usable ({exc})"
    return {
        "certwiz": __version__,
        "openssl": tool,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def version_lines() -> list[str]:
    found = versions()
    return [f"certwiz {found['certwiz']}", found["openssl"], found["python"]]
