"""certwiz ca: create a profile and its certificate authority."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import adopt, ca, names
from ..passphrase import CA_ENV, obtain
from ..profile import Profile, home_dir
from .common import CAPassOpt, HomeOpt, JsonOpt, KeyTypeOpt, ProfileOpt, emit, reports_errors

ENCRYPTED_HINT = (
    "\nThe CA key is encrypted: every command that signs (server issue, client issue, "
    "revoke, crl gen) asks for its passphrase on a terminal; unattended (cron, systemd), "
    "give --ca-passphrase-file FILE, a root-only file whose first line is the passphrase "
    f"(or set {CA_ENV})."
)

ca_app = typer.Typer(help="The profile's certificate authority.", no_args_is_help=True)


@ca_app.command("init")
@reports_errors
def ca_init(
    profile: ProfileOpt,
    cn: Annotated[str | None, typer.Option("--cn", help="CA common name.")] = None,
    key_type: KeyTypeOpt = "ec:P-256",
    days: Annotated[str, typer.Option("--days", "-d", help="CA validity in days.")] = "3650",
    crl_days: Annotated[str, typer.Option("--crl-days", help="CRL validity in days.")] = "90",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a profile: its CA key and root certificate, database and first CRL."""
    options = ca.CAOptions(
        cn, names.key_type(key_type), names.days(days), names.days(crl_days, "crl-days")
    )
    ca.check_home(Profile(names.profile_name(profile), home_dir(home)))
    ca.ensure_absent(Profile(names.profile_name(profile), home_dir(home)))
    secret = obtain(
        ca_passphrase_file,
        CA_ENV,
        "ca-passphrase-file",
        "Passphrase for the new CA key (empty: none): ",
        confirm=True,
    )
    if secret is None and not sys.stdin.isatty():
        ca.warn_unencrypted()
    created = ca.init(profile, home, options, secret)
    info = {
        "profile": created.name,
        "dir": str(created.dir),
        "ca_cert": str(created.ca_cert),
        "ca_key": str(created.ca_key),
        "crl": str(created.crl),
        "openssl_cnf": str(created.cnf),
        "key_encrypted": secret is not None,
    }
    emit(
        as_json,
        info,
        f"Created profile {created.name} in {created.dir}\n"
        f"  CA certificate: {created.ca_cert}\n  CA key:         {created.ca_key}"
        f"{' (encrypted)' if secret else ''}\n  CRL:            {created.crl}\n"
        f"Next: certwiz server issue -p {created.name} -n myserver.local"
        + (ENCRYPTED_HINT if secret else ""),
    )


@ca_app.command("adopt")
@reports_errors
def ca_adopt(
    profile: ProfileOpt,
    source: Annotated[
        Path,
        typer.Option(
            "--from",
            help="An openssl ca directory (index.txt, serial, ca.crt or cacert.pem, private/) "
            "or an easy-rsa 3 PKI (the pki/ folder or its parent). Only read, never changed.",
        ),
    ],
    crl_days: Annotated[str, typer.Option("--crl-days", help="CRL validity in days.")] = "90",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a profile from a CA you already run: same key, certificates and database.

    Every entry keeps its serial, status, dates and revocation reason; new
    serials continue above the old ones and the new CRL's number is above any
    earlier CRL's.
    """
    valid_crl_days = names.days(crl_days, "crl-days")
    found = adopt.find(source)
    secret = None
    if found.key_encrypted():
        secret = obtain(
            ca_passphrase_file,
            CA_ENV,
            "ca-passphrase-file",
            f"Passphrase of the CA key {found.ca_key}: ",
            confirm=False,
        )
    done = adopt.adopt(profile, found.dir, home, passphrase=secret, crl_days=valid_crl_days)
    emit(
        as_json,
        asdict(done),
        f"Adopted the {done.layout} CA in {done.source} as profile {done.profile} ({done.dir})\n"
        f"  entries: {done.entries} ({done.valid} valid, {done.revoked} revoked, "
        f"{done.expired} expired); names: {', '.join(done.names) or '-'}\n"
        f"  next serial {done.next_serial}, CRL number {done.crl_number}\n"
        f"Next: certwiz list -p {done.profile}",
    )
