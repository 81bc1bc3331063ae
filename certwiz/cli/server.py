"""certwiz server: server certificates."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import durations, issue, names
from ..profile import open_profile
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
    report_issued,
    reports_errors,
    signing_passphrase,
)
from .renewal import renew_and_report

server_app = typer.Typer(help="Server certificates.", no_args_is_help=True)


@server_app.command("issue")
@reports_errors
def server_issue(
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
    names.server_name(name)
    sans = san or []
    for value in sans:
        names.san(value)
    valid_days = durations.parse(days, "days")
    names.key_type(key_type)
    prof = open_profile(profile, home)
    done = issue.issue_server(
        prof,
        name,
        days=valid_days,
        sans=sans,
        key_type=key_type,
        ca_passphrase=signing_passphrase(prof, ca_passphrase_file),
    )
    report_issued(as_json, done)


@server_app.command("renew")
@reports_errors
def server_renew(
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
        as_json, profile, home, name, "server", days, grace, reuse_key, ca_passphrase_file
    )
