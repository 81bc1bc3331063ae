"""certwiz server: server certificates."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    CAPassOpt,
    GraceOpt,
    HomeOpt,
    JsonOpt,
    KeyTypeOpt,
    LeafDaysOpt,
    NameOpt,
    ProfileOpt,
    ReuseKeyOpt,
    open_ca,
    report_issued,
    reports_errors,
)
from .renewal import renew_and_report

server_app = typer.Typer(help="Server certificates.", no_args_is_help=True)


@server_app.command("issue")
@reports_errors
def server_issue(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    days: LeafDaysOpt = "365",
    san: Annotated[
        list[str] | None,
        typer.Option(
            "--san", help="Extra subjectAltName: DNS name, IP, email:ADDR or uri:URI (repeat)."
        ),
    ] = None,
    key_type: KeyTypeOpt = "ec:P-256",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a server certificate (serverAuth) with the name and every --san as SANs."""
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    report_issued(as_json, lib.issue_server(name, days=days, sans=san or [], key_type=key_type))


@server_app.command("renew")
@reports_errors
def server_renew(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    days: LeafDaysOpt = "365",
    grace: GraceOpt = None,
    reuse_key: ReuseKeyOpt = False,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new certificate for NAME, same kind, SANs, key type and bundle format; the old
    one is revoked (superseded) now, or with --grace when the grace ends.

    Example: certwiz server renew -p my-app -n api.example.com --reuse-key

    Exit codes: 0 done, 1 openssl failed, 2 bad input or nothing to renew, 3 profile busy,
    4 profile inconsistent.
    """
    renew_and_report(
        ctx, as_json, profile, home, name, "server", days, grace, reuse_key, ca_passphrase_file
    )
