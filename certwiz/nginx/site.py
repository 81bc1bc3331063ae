"""Render the mTLS proxy configs of a profile from the `nginx/` templates.

The config text lives in the templates; this module only picks the files and
fills in absolute paths, after `inputs` has checked every value, so a bad input
leaves the output directory as it was.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import audit
from ..errors import InputError, StateError
from ..fsutil import not_plain_dir, write_atomic
from ..profile import Profile
from ..render import nginx_escape, render_nginx
from .inputs import (
    check_listen,
    check_sni_only,
    check_upstream,
    check_upstream_ca,
    server_files,
    upstream_host,
    verify_depth,
)

TLS_PROFILES = ("intermediate", "modern")  # Mozilla's names; one template, ssl.conf.j2
# What the upstream is: any HTTP app, or Ollama's API (only /api/, streamed, long
# timeouts, Host: localhost), with the same identity headers either way.
APPS = ("generic", "ollama")
SSL_CONF, PROXY_CONF, SITE_CONF = "ssl.conf", "proxy.conf", "mtls_proxy.conf"


@dataclass(frozen=True)
class Rendered:
    """What `render` wrote, for printing and for --json."""

    profile: str
    server: str
    listen: str
    upstream: str
    tls: str
    out_dir: str
    files: dict[str, str] = field(default_factory=dict)
    default_server: bool = True
    app: str = "generic"
    upstream_ca: str | None = None


def _render_files(
    profile: Profile,
    server: str,
    upstream: str,
    listen: str,
    out: Path,
    tls: str,
    chain: Path,
    key: Path,
    default_server: bool,
    app: str,
    upstream_ca: Path | None,
) -> dict[str, str]:
    """The three file texts; a path nginx cannot quote is an InputError naming its field."""
    for name, path in (("out", out), ("home", profile.dir), ("upstream-ca", upstream_ca)):
        if path is None:
            continue
        try:
            nginx_escape(path)
        except ValueError as exc:
            raise InputError(name, f"cannot go into an nginx config: {exc}") from None
    depth = verify_depth(profile)
    site = render_nginx(
        "mtls_proxy.conf.j2",
        profile=profile.name,
        server_name=server,
        listen=listen,
        fullchain=chain,
        key=key,
        ca_cert=profile.ca_cert,
        crl=profile.crl,
        ssl_conf=out / SSL_CONF,
        proxy_conf=out / PROXY_CONF,
        upstream=upstream,
        verify_depth=depth,
        default_server=default_server,
        app=app,
        upstream_ca=upstream_ca,
        upstream_host=upstream_host(upstream),
    )
    return {
        SSL_CONF: render_nginx("ssl.conf.j2", modern=tls == "modern"),
        PROXY_CONF: render_nginx("proxy.conf.j2", app=app),
        SITE_CONF: site,
    }


def render(
    profile: Profile,
    server: str,
    upstream: str,
    *,
    listen: str = "443",
    out: Path | None = None,
    tls: str = "intermediate",
    sni_only: bool = False,
    app: str = "generic",
    upstream_ca: Path | None = None,
) -> Rendered:
    """Write ssl.conf, proxy.conf and mtls_proxy.conf (absolute paths) into OUT.

    Default OUT is the profile's `nginx/` directory. Include mtls_proxy.conf in
    nginx's http { } block; `nginx -t` passes on the files as written. The server
    is its listen's `default_server` unless SNI_ONLY (a second profile on the same
    address); either way it serves only requests whose handshake it made itself.
    """
    if tls not in TLS_PROFILES:
        raise InputError("tls", f"{tls!r} is not one of {', '.join(TLS_PROFILES)}")
    if app not in APPS:
        raise InputError("app", f"{app!r} is not one of {', '.join(APPS)}")
    listen = check_listen(listen)
    upstream = check_upstream(upstream)
    trusted = check_upstream_ca(upstream, upstream_ca)
    chain, key = server_files(profile, server)
    check_sni_only(server, sni_only)
    if not profile.crl.is_file():
        raise StateError(
            f"profile {profile.name} has no CRL; run: certwiz crl gen -p {profile.name}"
        )
    out_dir = (out if out is not None else profile.dir / "nginx").expanduser().absolute()
    # The default lives in the profile, which certwiz never writes out of; an --out
    # the user names is theirs to point anywhere. The files themselves are renamed
    # into place, which replaces a planted link at any of them.
    if out is None and (out_dir.exists() or out_dir.is_symlink()):
        problem = not_plain_dir(out_dir)
        if problem:
            raise InputError("out", problem)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("out", f"{out_dir} exists and is not a directory")
    texts = _render_files(
        profile, server, upstream, listen, out_dir, tls, chain, key, not sni_only, app, trusted
    )
    files = {}
    with audit.changing(profile, "nginx render", [server]) as change:  # one writer at a time
        out_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in texts.items():
            write_atomic(out_dir / filename, text, 0o644)
            files[filename.removesuffix(".conf")] = str(out_dir / filename)
        change.details["out"] = str(out_dir)
    return Rendered(
        profile.name,
        server,
        listen,
        upstream,
        tls,
        str(out_dir),
        {"site": files["mtls_proxy"], "ssl": files["ssl"], "proxy": files["proxy"]},
        not sni_only,
        app,
        str(trusted) if trusted else None,
    )


def render_standalone(
    prefix: Path,
    site: Path | Sequence[Path],
    *,
    run_as_root: bool | None = None,
    http_directives: Sequence[str] = (),
) -> str:
    """A whole nginx.conf around one site (or several, in order), state under PREFIX.

    HTTP_DIRECTIVES go into http { } as written (tests: a hostile surrounding config).
    """
    if run_as_root is None:
        run_as_root = os.geteuid() == 0
    sites = [site] if isinstance(site, Path) else list(site)
    return render_nginx(
        "standalone.conf.j2",
        prefix=str(prefix),
        sites=sites,
        run_as_root=run_as_root,
        http_directives=list(http_directives),
    )
