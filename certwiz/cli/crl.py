"""certwiz crl: the certificate revocation list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from .. import intermediate, names
from .. import nginx as nginx_lib
from .common import (
    CAPassOpt,
    HomeOpt,
    JsonOpt,
    NginxCmdOpt,
    ProfileOpt,
    ReloadOpt,
    RootKeyOpt,
    deploy_crl,
    notes_text,
    open_ca,
    reports_errors,
)
from .helptext import CHANGES, help_page

crl_app = typer.Typer(help="The certificate revocation list.", no_args_is_help=True)


@crl_app.command("gen")
@help_page(
    ("Regenerate the CRL", "certwiz crl gen -p my-app"),
    (
        "From a timer: regenerate it and make nginx load it",
        "certwiz crl gen -p my-app --reload --nginx-cmd 'nginx -c /etc/nginx/nginx.conf'",
    ),
    codes=CHANGES
    | {
        1: "openssl failed, or nginx -t or the reload failed, or a server of this CA "
        "would check another CRL (the CRL was made; its error is printed)"
    },
)
@reports_errors
def crl_gen(
    ctx: typer.Context,
    profile: ProfileOpt,
    days: Annotated[
        str | None,
        typer.Option("--days", "-d", help="CRL validity in days [default: the profile's, 90]."),
    ] = None,
    reload: ReloadOpt = False,
    nginx_cmd: NginxCmdOpt = None,
    root_key: RootKeyOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Regenerate the profile's CRL (run it from a timer so it never lapses).

    In a two-level profile the root's CRL is re-signed too when the root key is at
    hand (in the profile, or --root-key FILE once exported).
    """
    crl_days = names.days(days) if days is not None else None
    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    if root_key is not None:
        intermediate.check_root_key_file(root_key)
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    done = lib.generate_crl(days=crl_days, root_key=root_key)
    text = f"New CRL: {done.crl}{notes_text(done.notes)}"
    deploy_crl(as_json, asdict(done), text, words, argv, lib.profile)
