"""certwiz doctor: what in the profile or its NGINX config lets a bad client in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..profile import open_profile
from .common import HomeOpt, JsonOpt, ProfileOpt, emit, reports_errors
from .helptext import CHANGES, INTERRUPTED, help_page


@help_page(
    ("The config certwiz rendered", "certwiz doctor -p my-app"),
    ("The config nginx runs", "certwiz doctor -p my-app --nginx-conf /etc/nginx/nginx.conf --json"),
    codes={
        0: "clean",
        1: "warnings only",
        2: "at least one error (or bad input)",
        INTERRUPTED: CHANGES[INTERRUPTED],
    },
)
@reports_errors
def doctor_cmd(
    profile: ProfileOpt,
    nginx_conf: Annotated[
        Path | None,
        typer.Option(
            "--nginx-conf",
            help="The NGINX config to read (its includes are followed) "
            "[default: PROFILE/nginx/mtls_proxy.conf, as rendered].",
        ),
    ] = None,
    nginx_prefix: Annotated[
        Path | None,
        typer.Option(
            "--nginx-prefix",
            help="nginx's configuration prefix, where it resolves relative include and "
            "certificate paths: the directory of the main nginx.conf (not nginx's -p) "
            "[default: the directory of --nginx-conf].",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find what lets a revoked, foreign or missing client certificate through.

    Reads the profile and an NGINX config (read-only; it connects nowhere) and
    prints each finding with its id, severity, FILE:LINE, why it matters and the fix.
    """
    from ..doctor import diagnose

    prof = open_profile(profile, home)
    result = diagnose(prof, nginx_conf, nginx_prefix)
    errors = sum(f.severity == "error" for f in result.findings)
    summary = (
        f"{errors} error(s), {len(result.findings) - errors} warning(s) in profile "
        f"{prof.name} and {result.nginx_conf} ({len(result.files)} file(s) read)"
        if result.findings
        else f"no findings: profile {prof.name} and {result.nginx_conf} "
        f"({len(result.files)} file(s) read)"
    )
    text = "\n".join([*(f.text() for f in result.findings), summary])
    emit(as_json, result.as_dict(), text)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
