"""certwiz export: a name's current certificate as PEM, chain, DER or a fresh PKCS#12."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import export as exporting
from .. import names, p12
from ..errors import InputError
from ..openssl import Secret
from ..passphrase import P12_ENV
from .common import (
    HomeOpt,
    JsonOpt,
    NameOpt,
    P12FormatOpt,
    P12PassOpt,
    ProfileOpt,
    emit,
    open_ca,
    reports_errors,
)
from .helptext import CHANGES, help_page
from .prompts import obtain

KEY_ENV = "CERTWIZ_KEY_PASSPHRASE"


@help_page(
    (
        "The certificate and its chain for a load balancer",
        "certwiz export -p my-app -n api.example.com --format chain --out lb-chain.pem",
    ),
    (
        "A fresh bundle for current clients (its password is asked)",
        "certwiz export -p my-app -n bot-01 --format p12 --p12-format modern --out bot.p12",
    ),
    codes=CHANGES | {2: "bad input or no valid certificate or key for NAME; nothing was written"},
)
@reports_errors
def export_cmd(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="pem (the certificate), chain (certificate + CA chain), der, or p12 "
            "(a fresh bundle from the key in the profile).",
        ),
    ] = "pem",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File to write [default: standard output]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    p12_format: P12FormatOpt = "compat",
    unencrypted: Annotated[
        bool,
        typer.Option("--unencrypted", "-u", help="p12 with the empty password (MAC kept)."),
    ] = False,
    p12_passphrase_file: P12PassOpt = None,
    key_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--key-passphrase-file",
            help=f"File whose first line opens NAME's encrypted key (env {KEY_ENV}, or a "
            "prompt); asked only when the key is encrypted.",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write NAME's current certificate in the form a target wants.

    A p12 export needs the key in the profile and gets its own password (never on
    the command line) and format; the profile's own bundle is not touched. --out
    never replaces a file without --force and is written 0600 when it holds a key.
    """
    names.client_name(name)
    exporting.check_format(fmt)
    p12.check_format(p12_format)
    lib = open_ca(ctx, profile, home)
    if out is not None:
        exporting.check_out(out, force=force, home=lib.profile.home)
    elif as_json:
        raise InputError("json", "--json needs --out (without it the export goes to stdout)")
    elif fmt in ("der", "p12") and sys.stdout.isatty():
        raise InputError("out", f"{fmt} is binary: give --out FILE, or redirect the output")

    def new_password() -> Secret | None:  # asked only for a p12 without -u
        return obtain(p12_passphrase_file, P12_ENV, "p12-passphrase-file",
                      f"Password for the exported {name}.p12: ", confirm=True)  # fmt: skip

    def key_password() -> Secret | None:  # asked only when the key is encrypted
        return obtain(key_passphrase_file, KEY_ENV, "key-passphrase-file",
                      f"Password of {name}.key: ", confirm=False, min_length=1)  # fmt: skip

    if out is None:
        data = lib.export_bytes(
            name, fmt, p12_format=p12_format, unencrypted=unencrypted,
            bundle_passphrase=new_password, key_passphrase=key_password,
        )  # fmt: skip
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    done = lib.export(name, fmt, out, force=force, p12_format=p12_format, unencrypted=unencrypted,
                      bundle_passphrase=new_password, key_passphrase=key_password)  # fmt: skip
    emit(as_json, asdict(done), f"Wrote {done.format} of {name} (serial {done.serial}) "
         f"to {done.out} (mode {done.mode})")  # fmt: skip
