"""certwiz agent: runs on a device; renews its certificate over EST, or enrolls it."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CertwizError, InputError, RefusedByServer
from ..fsutil import read_small_text, require_safe_source
from ..openssl import Secret
from ..passphrase import P12_ENV
from .common import JsonOpt, P12FormatOpt, P12PassOpt, bundle_password, emit, reports_errors
from .helptext import INTERRUPTED, help_page
from .prompts import obtain

TOKEN_ENV = "CERTWIZ_EST_TOKEN"

agent_app = typer.Typer(
    help="On the device: renew its certificate over EST before it expires, or enroll it "
    "with a one-time token. Needs only openssl and the CA file, no profile.",
    no_args_is_help=True,
)

UrlOpt = Annotated[
    str,
    typer.Option("--url", help="The mTLS server, https://HOST[:PORT] (NGINX in front of certwiz "
                 "serve; the EST paths /.well-known/est/ are fixed).", show_default=False),
]  # fmt: skip
CaOpt = Annotated[
    Path,
    typer.Option("--ca", help="The profile's CA file: ca.crt (single-level); chain.pem or "
                 "intermediate.crt for a two-level profile (enroll needs one of those; renew "
                 "also takes the root ca.crt). The server's certificate and the answer must be "
                 "issued by the profile's own signing CA, not by another CA under the root.",
                 show_default=False),
]  # fmt: skip
ServerCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--server-ca",
        help="CA file for the server's own certificate, when NGINX shows one of another CA "
        "(e.g. a public one): the explicit override, the server is then checked against it "
        "alone; the answer still must come from the profile's CA [default: --ca].",
    ),
]
NoPasswordOpt = Annotated[
    bool, typer.Option("--unencrypted", "-u", help="The bundle has the empty password (bots).")
]


# For timers: 1 is worth retrying, 5 is not (someone must re-enroll the device).
RENEW_CODES = {
    0: "renewed, or not due yet (the output says when it will be)",
    CertwizError.exit_code: "failed, try again later (server unreachable, 5xx, a server "
    "certificate or an answer not issued by the profile's own CA); the bundle is unchanged "
    "and keeps working until it expires",
    InputError.exit_code: "bad input (URL, --before, a file that is not what it should be, "
    "a wrong password; or a usage error); nothing was changed",
    RefusedByServer.exit_code: "refused by the server (4xx: the certificate is revoked, "
    "expired, already renewed or unknown); retrying will not help: enroll again",
    INTERRUPTED: "interrupted (Ctrl-C); the bundle is the old one or the new one, never half; "
    "a renewal begun is finished by the next run with the same key",
}
ENROLL_CODES = RENEW_CODES | {
    0: "enrolled: the bundle is written",
    CertwizError.exit_code: "failed, try again (server unreachable, 5xx, a server "
    "certificate or an answer not issued directly by a certificate in --ca: nothing, not "
    "the token, was sent to such a server); nothing was written",
    InputError.exit_code: "bad input (URL, no token, --out exists, a file that is not what it "
    "should be; or a usage error); nothing was written",
    RefusedByServer.exit_code: "refused by the server (4xx: the token is wrong, spent or "
    "expired, or NAME already has a certificate); ask for a new invite",
    INTERRUPTED: "interrupted (Ctrl-C); nothing was written",
}


@agent_app.command("renew")
@help_page(
    (
        "From a timer: renew a bot's bundle when a third of its lifetime is left",
        "certwiz agent renew --url https://api.example.com --p12 /etc/bot/bot.p12 "
        "--ca /etc/bot/ca.crt -u",
    ),
    (
        "Renew at half the lifetime, the bundle password from a file",
        "certwiz agent renew --url https://api.example.com:8443 --p12 bot.p12 --ca ca.crt "
        "--p12-passphrase-file pw --before 0.5 --json",
    ),
    codes=RENEW_CODES,
)
@reports_errors
def agent_renew(
    url: UrlOpt,
    p12: Annotated[
        Path,
        typer.Option("--p12", help="The device's bundle; replaced atomically.", show_default=False),
    ],
    ca: CaOpt,
    before: Annotated[
        str,
        typer.Option(
            "--before",
            metavar="FRACTION",
            help="Renew when less than this fraction of the lifetime is left: 0.25, 1/3, 25%.",
        ),
    ] = "1/3",
    force: Annotated[bool, typer.Option("--force", help="Renew now, due or not.")] = False,
    server_ca: ServerCaOpt = None,
    unencrypted: NoPasswordOpt = False,
    p12_passphrase_file: P12PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Renew the bundle's certificate over EST (simplereenroll) when it is due.

    When less than --before of its lifetime is left: a new key and a CSR with the same
    subject, sent over mutual TLS with the current certificate, once the server's
    certificate proved issued by the current certificate's CA (or a certificate in --ca);
    the answer is verified (chains to --ca for client authentication, issued by the same
    CA as the current certificate, same subject, the new key, valid now)
    and the bundle is replaced atomically, same password, same format (compat or
    modern). Otherwise nothing is done and the output says when it will be. Run it
    often (a timer every hour): a down CA only delays renewal; the certificate keeps
    working until it expires. Agents sharing a directory take turns; one that waited
    for another which renewed the same bundle does nothing. A renewal cut short (killed,
    power lost, the answer lost after the server signed) is finished by the next run, due
    or not: it sends the same key again (kept encrypted in .NAME.p12.pending beside the
    bundle) and gets the certificate already signed.

    The bundle password: -u (empty), --p12-passphrase-file FILE, env CERTWIZ_P12_PASSPHRASE.
    """
    from ..est import agent

    def password() -> Secret | None:  # asked only after the other input was checked
        return None if unencrypted else bundle_password(p12_passphrase_file, str(p12))

    done = agent.renew(url, p12, ca, password=password, before=before, force=force,
                       server_ca=server_ca)  # fmt: skip
    if done.renewed:
        text = (f"Renewed {done.file}: serial {done.serial} (was {done.previous_serial}), "
                f"valid until {done.not_after}; next renewal after {done.renew_at}")  # fmt: skip
    elif done.previous_serial is not None:
        text = (f"{done.file} was renewed by another run meanwhile (serial {done.serial}); "
                f"next renewal after {done.renew_at}")  # fmt: skip
    else:
        text = (f"Not due: {done.file} (serial {done.serial}) is valid until {done.not_after}; "
                f"renews after {done.renew_at}")  # fmt: skip
    emit(as_json, asdict(done), text)


def token_of(token: str | None, token_file: Path | None) -> str:
    """The enrollment token: --token-file, else --token, else env CERTWIZ_EST_TOKEN."""
    if token_file is not None:
        require_safe_source("token-file", token_file, secret=True)  # another could spend it
        lines = read_small_text(token_file, "token-file", 4096).splitlines()
        if not lines:
            raise InputError("token-file", f"{token_file} is empty: the token is its first line")
        return lines[0]
    if token is not None:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    raise InputError("token", f"give --token-file FILE, set {TOKEN_ENV}, or --token TOKEN")


@agent_app.command("enroll")
@help_page(
    (
        "The operator invites the device; the JSON holds the token",
        "certwiz client invite -p my-app -n bot-07 --json",
    ),
    (
        "The device enrolls with the token from the environment",
        "CERTWIZ_EST_TOKEN=... certwiz agent enroll --url https://api.example.com "
        "-n bot-07 --ca ca.crt --out /etc/bot/bot.p12 -u",
    ),
    (
        "The same with the token in a file, checking the name, as JSON",
        "certwiz agent enroll --url https://api.example.com:8443 --token-file token "
        "--ca ca.crt --out bot.p12 -n bot-07 --p12-passphrase-file pw --json",
    ),
    codes=ENROLL_CODES,
)
@reports_errors
def agent_enroll(
    url: UrlOpt,
    ca: CaOpt,
    out: Annotated[
        Path,
        typer.Option("--out", help="Where to write the new bundle (0600).", show_default=False),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            "-n",
            help="The name invited (client invite -n NAME): the CN.",
            show_default=False,
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The one-time token (client invite). On the command "
            "line it is visible to ps: prefer --token-file or env CERTWIZ_EST_TOKEN.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File whose first line is the token.")
    ] = None,
    unencrypted: NoPasswordOpt = False,
    p12_passphrase_file: P12PassOpt = None,
    p12_format: P12FormatOpt = "compat",
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    server_ca: ServerCaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enroll this device with a one-time token (EST simpleenroll): its key is born here.

    The operator runs `certwiz client invite -p PROFILE -n NAME --json` and hands over
    `token`; the device makes a key and a CSR, sends them with the token (HTTP Basic,
    over TLS verified with --ca, no client certificate) and writes a PKCS#12 bundle
    (0600; an existing file is kept unless --force). A token works once.

    The server's certificate and the answer must be issued directly by a certificate in
    --ca, checked before the token goes out: a two-level profile's device gets its
    chain.pem (or intermediate.crt), not the root alone, which also signs other CAs.

    The token never goes into a child's command line or the output. Given with --token
    it is in this process's argv, which `ps` shows to every user: prefer --token-file
    or env CERTWIZ_EST_TOKEN.

    The bundle password: -u (empty), --p12-passphrase-file FILE, env
    CERTWIZ_P12_PASSPHRASE, or a prompt.
    """
    from ..est import agent

    given = token_of(token, token_file)

    def new_password() -> Secret | None:
        prompt = f"Password for {out.name}: "
        return obtain(p12_passphrase_file, P12_ENV, "p12-passphrase-file", prompt, confirm=True)

    done = agent.enroll(url, given, ca, out, password=new_password, unencrypted=unencrypted,
                        name=name,
                        p12_format=p12_format, force=force, server_ca=server_ca)  # fmt: skip
    emit(as_json, asdict(done),
         f"Enrolled {done.name}: {done.file} (serial {done.serial}, valid until "
         f"{done.not_after})")  # fmt: skip
