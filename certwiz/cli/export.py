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
from ..passphrase import P12_ENV, bundle_passphrase, obtain
from ..profile import open_profile
from .common import (
    HomeOpt,
    JsonOpt,
    NameOpt,
    P12FormatOpt,
    P12PassOpt,
    ProfileOpt,
    command_lock_timeout,
    emit,
    reports_errors,
)
from .helptext import CHANGES, help_page

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
    prof = open_profile(profile, home)
    if out is not None:
        exporting.check_out(out, force=force, home=prof.home)
    elif as_json:
        raise InputError("json", "--json needs --out (without it the export goes to stdout)")
    elif fmt in ("der", "p12") and sys.stdout.isatty():
        raise InputError("out", f"{fmt} is binary: give --out FILE, or redirect the output")
    password = key_password = None
    if fmt == "p12":
        if exporting.needs_key_password(prof, name):
            prompt = f"Password of {name}.key: "
            key_password = obtain(key_passphrase_file, KEY_ENV, "key-passphrase-file", prompt,
                                  confirm=False, min_length=1)  # fmt: skip
        password = bundle_passphrase(  # the one rule: required unless -u
            lambda: obtain(p12_passphrase_file, P12_ENV, "p12-passphrase-file",
                           f"Password for the exported {name}.p12: ", confirm=True),
            unencrypted=unencrypted,
        )  # fmt: skip
    timeout = command_lock_timeout(ctx)
    if out is None:
        data, _ = exporting.render(prof, name, fmt, p12_format=p12_format, password=password,
                                   key_passphrase=key_password, timeout=timeout)  # fmt: skip
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    done = exporting.export(prof, name, fmt, out, force=force, p12_format=p12_format,
                            password=password, key_passphrase=key_password,
                            timeout=timeout)  # fmt: skip
    emit(as_json, asdict(done), f"Wrote {done.format} of {name} (serial {done.serial}) "
         f"to {done.out} (mode {done.mode})")  # fmt: skip
