"""certwiz server: server certificates."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    CAPassOpt,
    CsrNameOpt,
    CsrOpt,
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
from .helptext import CHANGES, help_page
from .renewal import renew_and_report

server_app = typer.Typer(help="Server certificates.", no_args_is_help=True)


@server_app.command("issue")
@help_page(
    ("A server certificate for one name", "certwiz server issue -p my-app -n api.example.com"),
    (
        "More names and an address, valid 90 days",
        "certwiz server issue -p my-app -n api.example.com --san www.example.com "
        "--san 10.0.0.5 -d 90d",
    ),
)
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
    allow_shared_san: Annotated[
        bool,
        typer.Option(
            "--allow-shared-san",
            help="Allow a host (DNS name, IP) another valid certificate already serves.",
        ),
    ] = False,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a server certificate (serverAuth) with the name and every --san as SANs."""
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    done = lib.issue_server(
        name, days=days, sans=san or [], key_type=key_type, allow_shared_san=allow_shared_san
    )
    report_issued(as_json, done)


@server_app.command("sign")
@help_page(
    (
        "Sign a CSR made on the server; its CN is the name",
        "certwiz server sign -p my-app --csr api.csr --san 10.0.0.5 -d 90d",
    ),
    codes=CHANGES
    | {
        2: "bad input (not a CSR, a weak key, a name that is not the CSR's CN, "
        "a name that already has a valid certificate); nothing was changed"
    },
)
@reports_errors
def server_sign(
    ctx: typer.Context,
    profile: ProfileOpt,
    csr: CsrOpt,
    name: CsrNameOpt = None,
    days: LeafDaysOpt = "365",
    san: Annotated[
        list[str] | None,
        typer.Option(
            "--san", help="Extra subjectAltName: DNS name, IP, email:ADDR or uri:URI (repeat)."
        ),
    ] = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a server CSR made elsewhere: the key never leaves its machine.

    The CSR's own signature is checked; only its public key is used. The subject is
    exactly CN=NAME and the extensions are certwiz's (serverAuth, SANs = NAME and
    every --san): CA flags, key usages or SANs the request asks for are ignored.
    """
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    report_issued(as_json, lib.sign_csr(csr, name, "server", days=days, sans=san or []))


@server_app.command("renew")
@help_page(
    (
        "A new certificate, same key",
        "certwiz server renew -p my-app -n api.example.com --reuse-key",
    ),
    (
        "A new key; the old certificate stays valid 7 more days",
        "certwiz server renew -p my-app -n api.example.com --grace 7d",
    ),
    codes=CHANGES | {2: "bad input or nothing to renew; nothing was changed"},
)
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
    """
    renew_and_report(
        ctx, as_json, profile, home, name, "server", days, grace, reuse_key, ca_passphrase_file
    )
