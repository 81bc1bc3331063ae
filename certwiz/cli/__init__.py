"""The certwiz command line: parse, call the library, print. No logic lives here.

One module per command group; this one builds the app and registers them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..profile import LOCK_TIMEOUT_ENV, lock_timeout
from .common import reports_errors
from .helptext import help_page
from .lazy import lazy_group

# Every command: NAME -> "module:attribute" in this package, a Typer group or a command
# function. A module is imported only when its command runs (help and completion import
# all). A new group or command is one line here.
COMMANDS = {
    "ca": "ca:ca_app",
    "server": "server:server_app",
    "client": "client:client_app",
    "crl": "crl:crl_app",
    "nginx": "nginx:nginx_app",
    "p12": "p12:p12_app",
    "revoke": "certs:revoke_cmd",
    "list": "certs:list_cmd",
    "show": "certs:show_cmd",
    "profiles": "profile:profiles_cmd",
    "check": "profile:check_cmd",
    "audit": "profile:audit_cmd",
    "doctor": "doctor:doctor_cmd",
    "status": "status:status_cmd",
    "probe": "probe:probe_cmd",
    "ocsp": "ocsp:ocsp_app",
    "export": "export:export_cmd",
    "agent": "agent:agent_app",
    "serve": "serve:serve_cmd",
}

app = typer.Typer(
    cls=lazy_group(__name__, COMMANDS),
    help="A small private CA for mutual TLS, driving the openssl binary.",
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    rich_markup_mode=None,  # plain help and errors: brackets in help text are text (helptext.py)
    context_settings={"max_content_width": 120},  # wide terminals: up to 120 columns, not 80
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from ..about import version_lines

        typer.echo("\n".join(version_lines()))
        raise typer.Exit(0)


@app.callback()
@help_page(
    ("Create a profile and its CA", "certwiz ca init -p my-app"),
    ("Issue a server certificate", "certwiz server issue -p my-app -n api.example.com"),
    (
        "Issue a bot's certificate and a bundle without a password",
        "certwiz client issue -p my-app -n bot-01 -u",
    ),
    (
        "Render the NGINX config that enforces them",
        "certwiz nginx render -p my-app --server api.example.com --upstream http://127.0.0.1:8080",
    ),
    ("Every option of one command, with its examples", "certwiz client issue --help"),
    environment={  # every variable certwiz reads (tests/test_help.py checks the list)
        "CERTWIZ_HOME": "the directory of the profiles (as --home)",
        "CERTWIZ_CONFIG": "the config file whose 'home = DIR' line names it "
        "[default: /etc/certwiz.conf]",
        LOCK_TIMEOUT_ENV: "seconds to wait for a busy profile, as --lock-timeout [default: 60]",
        "CERTWIZ_CA_PASSPHRASE": "the CA key's passphrase (prefer --ca-passphrase-file)",
        "CERTWIZ_P12_PASSPHRASE": "a bundle's password (prefer --p12-passphrase-file)",
        "CERTWIZ_KEY_PASSPHRASE": "export: the passphrase of NAME's key",
        "CERTWIZ_EST_TOKEN": "agent enroll: the one-time token (prefer --token-file)",
        "CERTWIZ_NGINX_CMD": "the nginx command, as --nginx-cmd [default: nginx]",
        "CERTWIZ_RELOAD_TIMEOUT": "seconds --reload waits for nginx's new workers [default: 30]",
        "CERTWIZ_OPENSSL": "the openssl binary [default: openssl on PATH]",
    },
)
@reports_errors
def global_options(
    ctx: typer.Context,
    lock_timeout_s: Annotated[
        str | None,
        typer.Option(
            "--lock-timeout",
            help=f"Seconds to wait for a busy profile (env {LOCK_TIMEOUT_ENV}, default 60).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the certwiz, OpenSSL and Python versions and exit.",
        ),
    ] = False,
) -> None:
    """A small private CA for mutual TLS, driving the openssl binary."""
    # Kept in the root context for common.command_lock_timeout; never in os.environ.
    ctx.obj = lock_timeout(lock_timeout_s) if lock_timeout_s is not None else None


def main() -> None:
    # One program name however it was started (certwiz or python -m certwiz): usage
    # lines, and the _CERTWIZ_COMPLETE variable the completion scripts set.
    app(prog_name="certwiz")
