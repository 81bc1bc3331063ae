"""certwiz client: client certificates and their PKCS#12 bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import durations, issue, names, p12
from ..errors import InputError
from ..passphrase import P12_ENV, obtain
from ..profile import open_profile
from .common import (
    CAPassOpt,
    HomeOpt,
    JsonOpt,
    KeyTypeOpt,
    LeafDaysOpt,
    NameOpt,
    ProfileOpt,
    report_issued,
    reports_errors,
    signing_passphrase,
)

client_app = typer.Typer(
    help="Client certificates and their PKCS#12 bundles.", no_args_is_help=True
)


@client_app.command("issue")
@reports_errors
def client_issue(
    profile: ProfileOpt,
    name: NameOpt,
    days: LeafDaysOpt = "365",
    unencrypted: Annotated[
        bool,
        typer.Option("--unencrypted", "-u", help="Key and bundle without a password (for bots)."),
    ] = False,
    p12_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--p12-passphrase-file",
            help=f"File whose first line is the bundle password [or env {P12_ENV}, or a prompt].",
        ),
    ] = None,
    p12_format: Annotated[
        str,
        typer.Option(
            "--p12-format",
            help="compat (3DES/SHA-1 MAC: macOS, Windows, Java, Android) or "
            "modern (AES-256/SHA-256).",
        ),
    ] = "compat",
    key_type: KeyTypeOpt = "ec:P-256",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a client certificate (clientAuth only) and its PKCS#12 bundle."""
    names.client_name(name)
    valid_days = durations.parse(days, "days")
    names.key_type(key_type)
    p12.check_format(p12_format)
    prof = open_profile(profile, home)
    ca_secret = signing_passphrase(prof, ca_passphrase_file)
    bundle_secret = None
    if not unencrypted:
        bundle_secret = obtain(
            p12_passphrase_file,
            P12_ENV,
            "p12-passphrase-file",
            f"Password for {name}.p12: ",
            confirm=True,
        )
        if bundle_secret is None:
            raise InputError(
                "p12-passphrase-file",
                "no bundle password: give "
                f"--p12-passphrase-file FILE, set {P12_ENV}, or use -u for a "
                "bundle without a password",
            )
    done = issue.issue_client(
        prof,
        name,
        days=valid_days,
        passphrase=bundle_secret,
        key_type=key_type,
        p12_format=p12_format,
        ca_passphrase=ca_secret,
    )
    report_issued(as_json, done)
