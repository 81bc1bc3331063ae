"""The certwiz command line: parse, call the library, print. No logic lives here.

One module per command group; this one builds the app and registers them.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ..profile import LOCK_TIMEOUT_ENV, lock_timeout
from . import ca, certs, client, crl, doctor, nginx, profile, server, status
from .common import reports_errors

app = typer.Typer(
    help="A small private CA for mutual TLS, driving the openssl binary.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ca.ca_app, name="ca")
app.add_typer(server.server_app, name="server")
app.add_typer(client.client_app, name="client")
app.add_typer(crl.crl_app, name="crl")
app.add_typer(nginx.nginx_app, name="nginx")
app.command("revoke")(certs.revoke_cmd)
app.command("list")(certs.list_cmd)
app.command("show")(certs.show_cmd)
app.command("profiles")(profile.profiles_cmd)
app.command("check")(profile.check_cmd)
app.command("audit")(profile.audit_cmd)
app.command("doctor")(doctor.doctor_cmd)
app.command("status")(status.status_cmd)


@app.callback()
@reports_errors
def global_options(
    lock_timeout_s: Annotated[
        str | None,
        typer.Option(
            "--lock-timeout",
            help=f"Seconds to wait for a busy profile (env {LOCK_TIMEOUT_ENV}, default 60).",
        ),
    ] = None,
) -> None:
    """A small private CA for mutual TLS, driving the openssl binary."""
    if lock_timeout_s is not None:
        os.environ[LOCK_TIMEOUT_ENV] = str(lock_timeout(lock_timeout_s))


def main() -> None:
    app()
