"""certwiz nginx: NGINX configs that enforce the profile's client certificates."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import nginx as nginx_lib
from .common import (
    HomeOpt,
    JsonOpt,
    NginxCmdOpt,
    ProfileOpt,
    ReloadOpt,
    deploy_crl,
    files_text,
    open_ca,
    reports_errors,
)
from .helptext import CHANGES, help_page

nginx_app = typer.Typer(
    help="NGINX configs that enforce the profile's client certificates.", no_args_is_help=True
)


@nginx_app.command("render")
@help_page(
    (
        "A proxy that lets only the profile's clients through",
        "certwiz nginx render -p my-app --server api.example.com --upstream http://127.0.0.1:8080",
    ),
    (
        "A second site on the same address, for Ollama, written into conf.d and loaded",
        "certwiz nginx render -p ai --server ollama.example.com --app ollama "
        "--upstream http://127.0.0.1:11434 --sni-only --out /etc/nginx/conf.d "
        "--error-log /var/log/nginx/ai.mtls.log --reload",
    ),
    (
        "The same https://HOST:PORT also serves EST enrollment (certwiz serve on port 885)",
        "certwiz nginx render -p my-app --server api.example.com --upstream http://127.0.0.1:8080 "
        "--enroll http://127.0.0.1:885",
    ),
    codes=CHANGES
    | {1: "nginx -t or the reload failed (the error is printed), or the system failed"},
)
@reports_errors
def nginx_render(
    ctx: typer.Context,
    profile: ProfileOpt,
    server: Annotated[
        str,
        typer.Option(
            "--server", help="Server name: needs a valid server certificate in the profile."
        ),
    ],
    upstream: Annotated[
        str,
        typer.Option(
            "--upstream", help="Where to proxy: an http(s) URL, e.g. http://127.0.0.1:8080."
        ),
    ],
    listen: Annotated[
        str, typer.Option("--listen", metavar="[ADDRESS:]PORT", help="PORT or ADDRESS:PORT.")
    ] = "443",
    tls: Annotated[
        str,
        typer.Option(
            "--tls", metavar="LEVEL", help="intermediate (TLS 1.2 + 1.3) or modern (TLS 1.3 only)."
        ),
    ] = "intermediate",
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Output directory (default: PROFILE_DIR/nginx)."),
    ] = None,
    sni_only: Annotated[
        bool,
        typer.Option(
            "--sni-only",
            help="Not the default server of the listen: serve only clients that name this "
            "server in SNI. For every server after the first on one address:port.",
        ),
    ] = False,
    app: Annotated[
        str,
        typer.Option(
            "--app",
            metavar="KIND",
            help="generic (proxy every path) or ollama (only /api/, streamed, long timeouts, "
            "Host: localhost); the identity headers are the same.",
        ),
    ] = "generic",
    upstream_ca: Annotated[
        Path | None,
        typer.Option(
            "--upstream-ca",
            help="For an https:// upstream: the CA file its certificate is verified with "
            "(default: the system bundle, /etc/ssl/certs/ca-certificates.crt).",
        ),
    ] = None,
    error_log: Annotated[
        Path | None,
        typer.Option(
            "--error-log",
            help="This site's own nginx error log (absolute path), at level info, which "
            "records why a client certificate was refused.",
        ),
    ] = None,
    reload: ReloadOpt = False,
    nginx_cmd: NginxCmdOpt = None,
    revocation: Annotated[
        str,
        typer.Option(
            "--revocation",
            metavar="MODE",
            help="crl (ssl_crl, needs a reload per revocation), ocsp (ask the OCSP responder "
            "at every handshake: no reload) or both.",
        ),
    ] = "crl",
    ocsp_responder: Annotated[
        str | None,
        typer.Option(
            "--ocsp-responder",
            help="The responder's http:// URL [default: the profile's, ca set --ocsp-url].",
        ),
    ] = None,
    ocsp_cache: Annotated[
        str | None,
        typer.Option(
            "--ocsp-cache",
            metavar="SIZE",
            help="off (default: every handshake asks) or a shared cache size such as 1m.",
        ),
    ] = None,
    enroll: Annotated[
        str | None,
        typer.Option(
            "--enroll",
            help="Also proxy /.well-known/est/ to `certwiz serve` (http://127.0.0.1:PORT, a "
            "port below 1024, or unix:/path in a directory no other user may write): EST "
            "renewal and token enrollment on this same https://HOST:PORT.",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write mtls_proxy.conf, ssl.inc and proxy.inc for NGINX (absolute paths).

    The server is the default_server of its listen (clients without SNI, e.g. by IP
    address, reach it); give a second profile on the same address --sni-only.
    Either way it serves only requests whose TLS handshake it made with its own CA.
    """
    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    lib = open_ca(ctx, profile, home)
    done = lib.render_nginx(
        server,
        upstream,
        listen=listen,
        out=out,
        tls=tls,
        sni_only=sni_only,
        app=app,
        upstream_ca=upstream_ca,
        error_log=error_log,
        revocation=revocation,
        ocsp_responder=ocsp_responder,
        ocsp_cache=ocsp_cache,
        enroll=enroll,
    )
    role = "default server" if done.default_server else "SNI only"
    deploy_crl(
        as_json,
        asdict(done),
        f"Wrote NGINX configs for {done.server} "
        f"(TLS {done.tls}, listen {done.listen} {role}, upstream {done.upstream}"
        f"{'' if done.revocation == 'crl' else ', revocation ' + done.revocation}"
        f"{'' if done.enroll is None else ', EST to ' + done.enroll})\n"
        f"{files_text(done.files)}\n"
        + "".join(f"Removed {path} (old name; a *.conf glob loaded it)\n" for path in done.removed)
        + f"Include {done.files['site']} inside http {{ }} of nginx.conf",
        words,
        argv,
        lib.profile,
    )
