"""Render the mTLS proxy configs of a profile from the `nginx/` templates.

The config text lives in the templates; this module only picks the files and
fills in absolute paths, after `inputs` has checked every value, so a bad input
leaves the output directory as it was.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from ..check import NGINX_DIR, SITE_HEADER, misplaced_nginx
from ..errors import InputError, StateError
from ..fsutil import make_dirs, not_plain_dir, require_outside, require_safe_target, write_atomic
from ..profile import Profile
from ..render import nginx_escape, render_nginx
from ..transaction import transaction
from .forwarding import REMOVED_HEADERS
from .inputs import (
    check_enroll,
    check_error_log,
    check_listen,
    check_revocation,
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
# Include-only files end in .inc, so that `include conf.d/*.conf` (Debian's nginx.conf)
# does not load them in http { } when --out is such a directory.
SSL_CONF, PROXY_CONF, SITE_CONF = "ssl.inc", "proxy.inc", "mtls_proxy.conf"
EST_PROXY_CONF = "est_proxy.inc"  # --enroll: the secret certwiz serve requires (0600)
# Their names before, with the first line that shows certwiz wrote them.
LEGACY_FILES = {
    "ssl.conf": "# TLS hardening for the certwiz mTLS proxy",
    "proxy.conf": "# Forward the verified client identity to the upstream. Rendered by certwiz.",
}


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
    error_log: str | None = None
    removed: list[str] = field(default_factory=list)
    revocation: str = "crl"
    ocsp_responder: str | None = None
    enroll: str | None = None  # the EST service /.well-known/est/ is proxied to


def _site_owner(path: Path) -> tuple[str, str] | None:
    """(server, profile) named by the first line of a rendered mtls_proxy.conf."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return None
    found = SITE_HEADER.fullmatch(first.rstrip("\n"))
    return (found.group(1), found.group(2)) if found else None


def _is_copy(profile: Profile, site: Path) -> bool:
    """SITE is what `nginx render` wrote for the profile this one was copied or moved from
    (the lock's recovery re-renders it for this one before render replaces it)."""
    return any(path == site for path, _ in misplaced_nginx(profile))


def check_out_dir(out_dir: Path, profile: Profile, server: str, *, default: bool) -> None:
    """OUT may take this site: a directory, not one nginx includes wholesale, and not
    holding another server's site (which rendering would silently replace)."""
    # The default lives in the profile, which certwiz never writes out of; an --out
    # the user names is theirs to point anywhere. The files themselves are renamed
    # into place, which replaces a planted link at any of them.
    if default and (out_dir.exists() or out_dir.is_symlink()):
        problem = not_plain_dir(out_dir)
        if problem:
            raise InputError("out", problem)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("out", f"{out_dir} exists and is not a directory")
    if out_dir.name == "sites-enabled":
        raise InputError(
            "out",
            f"nginx includes every file in {out_dir} (include sites-enabled/*), so the "
            f"include-only files would load in http {{ }}: render into "
            f"{out_dir.parent / 'sites-available' / profile.name} (or the default, "
            f"PROFILE/nginx) and link only its {SITE_CONF} into sites-enabled",
        )
    owner = _site_owner(out_dir / SITE_CONF)
    if (
        owner is not None
        and owner != (server, profile.name)
        and not (owner[0] == server and _is_copy(profile, out_dir / SITE_CONF))
    ):
        raise InputError(
            "out",
            f"{out_dir} already holds the site of {owner[0]} (profile {owner[1]}); "
            f"render each server into a directory of its own",
        )


def _render_files(
    profile: Profile, out: Path, chain: Path, key: Path, site: dict[str, object]
) -> dict[str, str]:
    """The three file texts; a path nginx cannot quote is an InputError naming its field."""
    paths: dict[str, object] = {"out": out, "home": profile.dir}
    paths |= {k: site[k] for k in ("upstream_ca", "error_log") if site[k] is not None}
    for name, path in paths.items():
        try:
            nginx_escape(path)
        except ValueError as exc:
            raise InputError(
                name.replace("_", "-"), f"cannot go into an nginx config: {exc}"
            ) from None
    text = render_nginx(
        "mtls_proxy.conf.j2",
        profile=profile.name,
        fullchain=chain,
        key=key,
        ca_cert=profile.chain,  # two-level: intermediate + root
        crl=profile.nginx_crl,  # two-level: both CRLs (nginx checks every CA's)
        ssl_conf=out / SSL_CONF,
        proxy_conf=out / PROXY_CONF,
        est_proxy_conf=out / EST_PROXY_CONF,
        verify_depth=verify_depth(profile),
        upstream_host=upstream_host(str(site["upstream"])),
        **site,
    )
    return {
        SSL_CONF: render_nginx("ssl.conf.j2", modern=site["tls"] == "modern"),
        PROXY_CONF: render_nginx("proxy.conf.j2", app=site["app"], removed_headers=REMOVED_HEADERS),
        SITE_CONF: text,
    }


def _remove_stale(out_dir: Path) -> list[str]:
    """Delete certwiz's include-only files of old renders (ssl.conf, proxy.conf): under
    their old names a `*.conf` glob loaded them in http { } (nginx: duplicate directive)."""
    removed = []
    for name, header in LEGACY_FILES.items():
        path = out_dir / name
        try:
            first = path.read_text(errors="replace").split("\n", 1)[0]
        except OSError:
            continue
        if first.startswith(header) and not path.is_symlink():
            path.unlink()
            removed.append(str(path))
    return removed


class SiteOptions(TypedDict, total=False):
    """`render`'s options as one type, for callers that pass them on (`api.CA.render_nginx`).

    tests/test_api_service.py fails when `render` gains an option this lacks.
    """

    listen: str
    out: Path | None
    tls: str
    sni_only: bool
    app: str
    upstream_ca: Path | None
    error_log: Path | None
    revocation: str
    ocsp_responder: str | None
    ocsp_cache: str | None
    enroll: str | None


def _est_zone(profile: Profile, server: str, listen: str) -> str:
    """The limit_req zone of one site's EST locations: a name no other site shares
    (nginx refuses a zone declared twice), from what identifies the site."""
    key = f"{profile.dir}\0{server}\0{listen}".encode("utf-8", "surrogateescape")
    return "certwiz_est_" + hashlib.sha256(key).hexdigest()[:16]


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
    error_log: Path | None = None,
    timeout: float | None = None,
    revocation: str = "crl",
    ocsp_responder: str | None = None,
    ocsp_cache: str | None = None,
    enroll: str | None = None,
) -> Rendered:
    """Write ssl.inc, proxy.inc and mtls_proxy.conf (absolute paths) into OUT.

    Default OUT is the profile's `nginx/` directory. Include mtls_proxy.conf in
    nginx's http { } block; `nginx -t` passes on the files as written, also when OUT
    is a directory nginx includes as `*.conf` (conf.d). The server is its listen's
    `default_server` unless SNI_ONLY (a second profile on the same address); either
    way it serves only requests whose handshake it made itself. REVOCATION: `crl`
    (ssl_crl), `ocsp` (ssl_ocsp, asking OCSP_RESPONDER, default the profile's OCSP
    URL, at every handshake) or `both`. ENROLL (`certwiz serve`'s http://HOST:PORT or
    unix:/path) adds /.well-known/est/: the server then verifies client certificates
    `optional`ly, and every location but EST's cacerts and simpleenroll (a token
    enrollment, checked by the service) still refuses a request without one.
    """
    if tls not in TLS_PROFILES:
        raise InputError("tls", f"{tls!r} is not one of {', '.join(TLS_PROFILES)}")
    if app not in APPS:
        raise InputError("app", f"{app!r} is not one of {', '.join(APPS)}")
    listen = check_listen(listen)
    upstream = check_upstream(upstream)
    trusted = check_upstream_ca(upstream, upstream_ca)
    log = check_error_log(error_log, profile.home)
    chain, key = server_files(profile, server)
    check_sni_only(server, sni_only)
    checked = check_revocation(profile, revocation, ocsp_responder, ocsp_cache)
    est = check_enroll(enroll) if enroll is not None else None
    if est is not None:
        from ..est import proxy

        if est.startswith("http://unix:"):
            proxy.check_listener("enroll", profile, unix=Path(est[len("http://unix:") :]))
        else:
            proxy.check_listener("enroll", profile, port=urlsplit(est).port or 80)
    if not profile.nginx_crl.is_file():
        raise StateError(
            f"profile {profile.name} has no CRL; run: certwiz crl gen -p {profile.name}"
        )
    out_dir = (out if out is not None else profile.dir / NGINX_DIR).expanduser().absolute()
    check_out_dir(out_dir, profile, server, default=out is None)
    # root's nginx loads what is written there: nobody else may be able to change it
    require_safe_target("out", out_dir / SITE_CONF)
    if log is not None:  # nginx would append its log to a file it includes: the next -t fails
        require_outside("error-log", log, out_dir, "the directory nginx render writes,")
    site: dict[str, object] = {
        "server_name": server,
        "upstream": upstream,
        "listen": listen,
        "tls": tls,
        "default_server": not sni_only,
        "app": app,
        "upstream_ca": trusted,
        "error_log": log,
        "revocation": checked,
        "enroll": est,
        "est_zone": _est_zone(profile, server, listen) if est else None,
    }
    texts = _render_files(profile, out_dir, chain, key, site)
    with transaction(profile, "nginx render", [server], timeout=timeout) as tx:  # one writer
        make_dirs(out_dir)
        for filename, text in texts.items():
            write_atomic(out_dir / filename, text, 0o644)
        if est is not None:
            from ..est import proxy

            secret = render_nginx("est_proxy.conf.j2", secret=proxy.ensure_in(tx))
            write_atomic(out_dir / EST_PROXY_CONF, secret, 0o600)
        removed = _remove_stale(out_dir)
        tx.note("out", str(out_dir))
    return Rendered(
        profile.name,
        server,
        listen,
        upstream,
        tls,
        str(out_dir),
        {
            k: str(out_dir / name)
            for k, name in (("site", SITE_CONF), ("ssl", SSL_CONF), ("proxy", PROXY_CONF))
        }
        | ({"est_proxy": str(out_dir / EST_PROXY_CONF)} if est is not None else {}),
        not sni_only,
        app,
        str(trusted) if trusted else None,
        str(log) if log else None,
        removed,
        checked.mode,
        checked.responder,
        est,
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
