"""certwiz ocsp: an OCSP responder for the profile (revocation without an NGINX reload)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import ocsp
from ..errors import LockTimeout
from .common import CAPassOpt, HomeOpt, JsonOpt, ProfileOpt, open_ca, reports_errors
from .helptext import CHANGES, PROFILE_CORRUPT, help_page

ocsp_app = typer.Typer(
    help="An OCSP responder: NGINX asks it about every client certificate.",
    no_args_is_help=True,
)


@ocsp_app.command("serve")
@help_page(
    ("Answer on one address until SIGTERM", "certwiz ocsp serve -p my-app --listen 127.0.0.1:8888"),
    (
        "Under a supervisor that reads the pid",
        "certwiz ocsp serve -p my-app --listen 127.0.0.1:8888 --pid-file /run/certwiz-ocsp.pid",
    ),
    codes={
        0: "stopped by SIGTERM or SIGINT",
        1: "cannot bind, or openssl failed",
        2: "bad input, or another responder runs (its pid file)",
        LockTimeout.exit_code: CHANGES[LockTimeout.exit_code],
        PROFILE_CORRUPT: CHANGES[PROFILE_CORRUPT],
    },
)
@reports_errors
def ocsp_serve(
    ctx: typer.Context,
    profile: ProfileOpt,
    listen: Annotated[
        str,
        typer.Option(
            "--listen", metavar="IP:PORT", help="IP:PORT to bind, e.g. 127.0.0.1:8888 (only there)."
        ),
    ],
    pid_file: Annotated[
        Path | None,
        typer.Option("--pid-file", help="Where to write the pid [default: PROFILE/ocsp.pid]."),
    ] = None,
    next_update: Annotated[
        str,
        typer.Option(
            "--next-update-minutes",
            help="nextUpdate of each answer: how long a cache (ssl_ocsp_cache) may keep it.",
        ),
    ] = str(ocsp.NEXT_UPDATE_MINUTES),
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the profile's OCSP responder in the foreground until SIGTERM.

    Every answer reads index.txt as it is at that moment, so the query right after
    `certwiz revoke` already says revoked. Answers are signed by the responder's own
    certificate (OCSPSigning, noCheck), issued at start when missing or near its
    end (that needs the CA passphrase once); the CA key is never used to answer.
    """
    where = ocsp.check_listen(listen)
    minutes = ocsp.check_minutes(next_update)
    ca = open_ca(ctx, profile, home, ca_passphrase_file)
    prof = ca.profile
    pid_file = ocsp.check_pid_file(prof, pid_file)
    ca.ensure_ocsp_responder()  # asks for the CA passphrase only when it signs

    def ready(bound: ocsp.Listen) -> None:
        info = {
            "profile": prof.name,
            "url": bound.url,
            "pid_file": str(pid_file),
            "responder_certificate": str(ocsp.responder_cert(prof)),
        }
        text = (
            f"OCSP responder for profile {prof.name} on {bound.url} "
            f"(pid file {info['pid_file']}); SIGTERM stops it"
        )
        typer.echo(json.dumps(info) if as_json else text)

    from ..ocsp import server

    server.serve(prof, where, pid_file=pid_file, next_update_minutes=minutes, on_ready=ready)
    typer.echo(json.dumps({"stopped": True}) if as_json else "OCSP responder stopped")
