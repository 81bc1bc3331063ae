"""certwiz probe: check from the outside that a live endpoint refuses what it must."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import nginx as nginx_lib
from .common import (
    CAPassOpt,
    HomeOpt,
    JsonOpt,
    NginxCmdOpt,
    ProfileOpt,
    emit,
    open_ca,
    reports_errors,
)
from .helptext import CHANGES, help_page


@help_page(
    (
        "Probe a live endpoint, reloading nginx so it sees the revoked probe",
        "certwiz probe https://app.example.com/ -p my-app --reload",
    ),
    (
        "An endpoint not in DNS yet",
        "certwiz probe https://app.example.com:8443/ -p my-app "
        "--resolve app.example.com:8443:127.0.0.1",
    ),
    codes=CHANGES
    | {
        0: "every case as expected",
        1: "any FAIL or FAIL-OPEN, or the endpoint unreachable",
    },
)
@reports_errors
def probe_cmd(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The endpoint, e.g. https://app.example.com/.")],
    profile: ProfileOpt,
    resolve: Annotated[
        str | None,
        typer.Option(
            "--resolve",
            metavar="HOST:PORT:ADDRESS",
            help="HOST:PORT:ADDRESS: connect to ADDRESS (like curl's).",
        ),
    ] = None,
    server_ca: Annotated[
        Path | None,
        typer.Option(
            "--server-ca", help="CA file for the server's certificate [default: the profile's CA]."
        ),
    ] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload", help="Reload nginx after revoking the revoked probe (and at the end)."
        ),
    ] = False,
    nginx_cmd: NginxCmdOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Prove from outside that a live endpoint refuses bad client certificates.

    Connects to URL with no client certificate, a valid one, two foreign ones, an
    expired one and a revoked one, and checks the server's trust list.

    Only URL's host (or --resolve's address) is contacted. The probe certificates
    (certwiz-probe-..., an hour at most) are issued by the profile, revoked when
    the probe ends and recorded in the audit log; their keys never leave a private
    temporary directory. A revoked probe accepted is FAIL-OPEN; without --reload the
    server has not read the probe's revocation yet, and the table says so.
    """
    from .. import probe as probing  # ssl, socket and cryptography: only for this command

    where = probing.target(url, resolve)
    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    ca = open_ca(ctx, profile, home, ca_passphrase_file)
    report = probing.run(
        ca.profile,
        where,
        server_ca=server_ca,
        reload=(lambda: nginx_lib.reload(argv)) if argv is not None else None,
        ca_passphrase=ca.ca_secret(),
        lock_timeout=ca.lock_timeout,
    )
    emit(as_json, report.as_dict(), report.table())
    if report.exit_code:
        raise typer.Exit(report.exit_code)
