"""certwiz serve: the EST enrollment service (RFC 7030) behind NGINX."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from .. import check, durations
from ..errors import CertwizError, InputError
from ..passphrase import signing_passphrase as needs_ca_passphrase
from ..profile import open_profile
from .common import (
    CAPassOpt,
    HomeOpt,
    JsonOpt,
    ProfileOpt,
    ca_passphrase_source,
    command_lock_timeout,
    reports_errors,
)
from .helptext import PROFILE_CORRUPT, help_page


@help_page(
    (
        "EST on loopback, for an NGINX on this host",
        "certwiz serve -p my-app --listen 127.0.0.1:885",
    ),
    (
        "On a unix socket NGINX's group may open, renewed certificates kept 10 minutes",
        "certwiz serve -p my-app --listen unix:/run/certwiz/est.sock --socket-mode 660 --grace 10m",
    ),
    codes={
        0: "stopped by SIGTERM or SIGINT (Ctrl-C)",
        CertwizError.exit_code: "cannot listen there (address in use, no permission)",
        InputError.exit_code: "bad input (listen, trusted proxy, socket mode, grace, no such "
        "profile); nothing was started",
        PROFILE_CORRUPT: "the profile is inconsistent, or a copy of another profile of the "
        "home (check says which); nothing was started",
    },
)
@reports_errors
def serve_cmd(
    ctx: typer.Context,
    profile: ProfileOpt,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="ADDRESS:PORT (an IP and a port below 1024, e.g. 127.0.0.1:885) or "
            "unix:/path/est.sock (in a directory no other user may write, e.g. /run/certwiz/).",
        ),
    ],
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="On TCP: the address of the NGINX that proxies to it (repeatable; "
            "default 127.0.0.1 and ::1). Every other peer gets 403.",
        ),
    ] = None,
    socket_mode: Annotated[
        str,
        typer.Option(
            "--socket-mode",
            help="On unix:PATH: the socket's mode; whoever may open it is trusted "
            "(660: give NGINX's user this user's group).",
        ),
    ] = "660",
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="A renewed certificate stays valid this long (superseded after), so a "
            "device that crashed mid-renewal is not locked out.",
        ),
    ] = "5m",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the EST enrollment service in the foreground (for systemd): NGINX proxies
    /.well-known/est/ to it (certwiz nginx render --enroll).

    GET cacerts, POST simplereenroll (renewal with the current client certificate,
    which NGINX verified and passes on), POST simpleenroll (HTTP Basic: user NAME,
    password a token from `certwiz client invite`). It answers only its trusted
    proxy. One log line per request on stderr (JSON with --json), no secrets.
    SIGTERM or Ctrl-C stops it cleanly. An encrypted CA key's passphrase is read
    once at start (--ca-passphrase-file or the environment).
    """
    from ..est import server, service

    where = server.parse_listen(listen)
    trusted = server.trusted_addresses(trusted_proxy or ["127.0.0.1", "::1"])
    mode = server.parse_socket_mode(socket_mode)
    span = durations.parse(grace, "grace")
    prof = open_profile(profile, home)
    check.refuse_live_copy(prof)  # before the passphrase and the proxy secret
    from ..est import proxy

    proxy.check_listener("listen", prof, port=where.port, unix=where.unix)
    secret = needs_ca_passphrase(prof, ca_passphrase_source(profile, ca_passphrase_file))

    settings = service.Settings(
        prof,
        unix=where.unix is not None,
        trusted=trusted,
        grace=span,
        lock_timeout=command_lock_timeout(ctx),
        ca_passphrase=secret,
        proxy_secret=proxy.ensure(prof, command_lock_timeout(ctx)),
    )

    def line(record: dict[str, Any]) -> None:
        if as_json:
            text = json.dumps(record, sort_keys=True)
        else:
            text = " ".join(f"{k}={json.dumps(v)}" for k, v in record.items())
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def ready(url: str) -> None:
        peers = "anyone who may open the socket" if where.unix else ", ".join(sorted(trusted))
        info = {"profile": prof.name, "listen": url, "trusted": peers, "grace": grace}
        text = (
            f"certwiz serve: EST for profile {prof.name} on {url} "
            f"(/.well-known/est/; answers only: {peers}; grace {grace})"
        )
        typer.echo(json.dumps(info) if as_json else text)

    server.run(settings, where, socket_mode=mode, on_request=line, on_ready=ready)
