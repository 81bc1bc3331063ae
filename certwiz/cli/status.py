"""certwiz status: CA certificates, CRLs and expiring certificates, for monitors."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import status as status_lib
from ..profile import list_profiles, open_profile
from .common import HomeOpt, JsonOpt, emit, reports_errors
from .helptext import CHANGES, INTERRUPTED, help_page


@help_page(
    ("Every profile in the home", "certwiz status"),
    (
        "One profile, warn two weeks ahead, for a monitor",
        "certwiz status -p my-app --warn 14d --json",
    ),
    codes={
        0: "fine",
        1: "at least one warning",
        2: "at least one critical finding (or bad input)",
        INTERRUPTED: CHANGES[INTERRUPTED],
    },
)
@reports_errors
def status_cmd(
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="One profile [default: every profile in the home]."),
    ] = None,
    warn: Annotated[
        str,
        typer.Option("--warn", help="Warn about what expires within this (30d, 12h, 2w, ...)."),
    ] = status_lib.DEFAULT_WARN,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a monitor must know, worst first; exit 0 fine, 1 warning, 2 critical (Nagios).

    Critical: an expired CA certificate, a CRL past its nextUpdate or unreadable
    (NGINX then rejects every client), a live copy of another profile (check exits 4),
    a copy behind its sources (a killed run left crl-chain.pem, chain.pem or a
    fullchain behind; crl gen rebuilds it). Warning: a
    CA certificate, CRL or valid certificate expiring within --warn, a CRL past its
    one-third mark.
    """
    status_lib.check_warn(warn)
    profiles = [open_profile(profile, home)] if profile is not None else list_profiles(home)
    code, items = status_lib.report(profiles, warn)
    emit(
        as_json,
        {
            "exit_code": code,
            "state": status_lib.STATES[code],
            "items": [i.as_dict() for i in items],
        },
        status_lib.table(items),
    )
    raise typer.Exit(code)
