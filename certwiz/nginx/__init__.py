"""NGINX: render the mTLS proxy configs of a profile, and test + reload a running nginx.

`inputs` checks render's values, `site` renders the files from the `nginx/`
templates (package certwiz.nginx_templates), `control` runs nginx -t / -s reload
and waits, with `workers`, until the new workers serve.
The names below are the package's public interface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time __getattr__ below imports a submodule on first use
    from .control import (
        DEFAULT_NGINX_CMD,
        NGINX_CMD_ENV,
        RELOAD_TIMEOUT_ENV,
        NginxError,
        Reloaded,
        command_words,
        find_binary,
        reload,
        reload_hint,
        resolve,
        test_config,
    )
    from .inputs import check_listen, check_upstream, server_files, verify_depth
    from .site import (
        APPS,
        PROXY_CONF,
        SITE_CONF,
        SSL_CONF,
        TLS_PROFILES,
        Rendered,
        SiteOptions,
        render,
        render_standalone,
    )

__all__ = [
    "APPS",
    "DEFAULT_NGINX_CMD",
    "NGINX_CMD_ENV",
    "PROXY_CONF",
    "RELOAD_TIMEOUT_ENV",
    "SITE_CONF",
    "SSL_CONF",
    "TLS_PROFILES",
    "NginxError",
    "Reloaded",
    "Rendered",
    "SiteOptions",
    "check_listen",
    "check_upstream",
    "command_words",
    "find_binary",
    "reload",
    "reload_hint",
    "render",
    "render_standalone",
    "resolve",
    "server_files",
    "test_config",
    "verify_depth",
]


_PARTS = ("control", "inputs", "site")


def __getattr__(name: str) -> Any:
    """A public name, importing its submodule on first use.

    So `certwiz list`, which needs only the env variable's name for its help, and
    `revoke`, which needs only `control`, do not import the renderer.
    """
    if name in __all__:
        for part in _PARTS:
            module = importlib.import_module(f".{part}", __name__)
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
