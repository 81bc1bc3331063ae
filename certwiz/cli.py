"""The certwiz command line: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import audit, ca, check, inventory, issue, names
from . import nginx as nginx_lib
from . import revoke as revoking
from .errors import CertwizError, InputError
from .openssl import Secret
from .passphrase import CA_ENV, P12_ENV, obtain
from .profile import LOCK_TIMEOUT_ENV, Profile, home_dir, list_profiles, lock_timeout, open_profile

app = typer.Typer(
    help="A small private CA for mutual TLS, driving the openssl binary.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ca_app = typer.Typer(help="The profile's certificate authority.", no_args_is_help=True)
server_app = typer.Typer(help="Server certificates.", no_args_is_help=True)
client_app = typer.Typer(
    help="Client certificates and their PKCS#12 bundles.", no_args_is_help=True
)
crl_app = typer.Typer(help="The certificate revocation list.", no_args_is_help=True)
nginx_app = typer.Typer(
    help="NGINX configs that enforce the profile's client certificates.", no_args_is_help=True
)
app.add_typer(ca_app, name="ca")
app.add_typer(server_app, name="server")
app.add_typer(client_app, name="client")
app.add_typer(crl_app, name="crl")
app.add_typer(nginx_app, name="nginx")

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile (CA workspace) name.")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Certificate name (its CN).")]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Directory of the profiles [env: CERTWIZ_HOME; default ./certs]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CAPassOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-passphrase-file",
        help=f"File whose first line is the CA passphrase "
        f"[or env {CA_ENV}, or a prompt on a terminal].",
    ),
]
KeyTypeOpt = Annotated[str, typer.Option("--key-type", help=", ".join(names.KEY_TYPES))]
ReloadOpt = Annotated[
    bool, typer.Option("--reload", help="Then run `nginx -t` and, if it passes, `nginx -s reload`.")
]
NginxCmdOpt = Annotated[
    str | None,
    typer.Option(
        "--nginx-cmd",
        help=f"The nginx command, split like a shell would, e.g. "
        f"'nginx -c /etc/nginx/nginx.conf' (env {nginx_lib.NGINX_CMD_ENV}; default: nginx).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a CertwizError into one line on stderr and its exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CertwizError as exc:
            typer.echo(f"certwiz: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            typer.echo(f"certwiz: error: {exc.strerror}: {exc.filename}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("certwiz: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, data: dict[str, Any] | list[Any], text: str) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else text)


def signing_passphrase(profile: Profile, file: Path | None) -> Secret | None:
    """The CA passphrase, asked for only when the CA key is encrypted."""
    if not profile.ca_key_encrypted():
        return None
    secret = obtain(
        file,
        CA_ENV,
        "ca-passphrase-file",
        f"Passphrase of the {profile.name} CA key: ",
        confirm=False,
    )
    if secret is None:
        raise InputError(
            "ca-passphrase-file",
            f"the CA key of profile {profile.name} is "
            f"encrypted: give --ca-passphrase-file FILE or set {CA_ENV}",
        )
    return secret


def _files_text(files: dict[str, str]) -> str:
    return "\n".join(f"  {kind + ':':13}{path}" for kind, path in files.items())


def report_issued(as_json: bool, done: issue.Issued) -> None:
    emit(
        as_json,
        asdict(done),
        f"Issued {done.kind} certificate {done.name} "
        f"(serial {done.serial}, valid until {done.not_after})\n{_files_text(done.files)}",
    )


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
        f"Next: certwiz server issue -p {created.name} -n myserver.local",
    )


@server_app.command("issue")
@reports_errors
def server_issue(
    profile: ProfileOpt,
    name: NameOpt,
    days: Annotated[str, typer.Option("--days", "-d", help="Validity in days.")] = "365",
    san: Annotated[
        list[str] | None,
        typer.Option(
            "--san", help="Extra subjectAltName: DNS name, IP, email:ADDR or uri:URI (repeat)."
        ),
    ] = None,
    key_type: KeyTypeOpt = "ec:P-256",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a server certificate (serverAuth) with the name and every --san as SANs."""
    names.server_name(name)
    sans = san or []
    for value in sans:
        names.san(value)
    valid_days = names.days(days)
    names.key_type(key_type)
    prof = open_profile(profile, home)
    done = issue.issue_server(
        prof,
        name,
        days=valid_days,
        sans=sans,
        key_type=key_type,
        ca_passphrase=signing_passphrase(prof, ca_passphrase_file),
    )
    report_issued(as_json, done)


@client_app.command("issue")
@reports_errors
def client_issue(
    profile: ProfileOpt,
    name: NameOpt,
    days: Annotated[str, typer.Option("--days", "-d", help="Validity in days.")] = "365",
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
    valid_days = names.days(days)
    names.key_type(key_type)
    issue.check_p12_format(p12_format)
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


@app.command("revoke")
@reports_errors
def revoke_cmd(
    profile: ProfileOpt,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Revoke every valid certificate of this name."),
    ] = None,
    serial: Annotated[str | None, typer.Option("--serial", help="Revoke one serial (hex).")] = None,
    reason: Annotated[str, typer.Option("--reason", help=", ".join(names.REASONS))] = "unspecified",
    purge: Annotated[
        bool,
        typer.Option(
            "--purge", help="Also delete the revoked name's private key and PKCS#12 bundle."
        ),
    ] = False,
    reload: ReloadOpt = False,
    nginx_cmd: NginxCmdOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a certificate and regenerate the CRL (nginx enforces it after a reload)."""
    names.reason(reason)
    if serial is not None:
        names.serial(serial)
    if name is not None:
        names.client_name(name)
    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    prof = open_profile(profile, home)
    done = revoking.revoke(
        prof,
        name=name,
        serial=serial,
        reason=reason,
        purge=purge,
        ca_passphrase=signing_passphrase(prof, ca_passphrase_file),
    )
    purged = "".join(f"\nDeleted {path}" for path in done.purged)
    _deploy_crl(
        as_json,
        asdict(done),
        f"Revoked {', '.join(done.serials)} ({done.reason}); new CRL: {done.crl}{purged}",
        words,
        argv,
    )


def _deploy_crl(
    as_json: bool, data: dict[str, Any], text: str, words: list[str], argv: list[str] | None
) -> None:
    """Print what changed; with --reload make nginx read the new CRL, else say how."""
    hint = nginx_lib.reload_hint(words)
    if argv is None:
        emit(
            as_json,
            {**data, "reloaded": False, "reload_command": hint},
            f"{text}\nnginx enforces it only after a reload; run: {hint}",
        )
        return
    try:
        nginx_lib.reload(argv)
    except nginx_lib.NginxError:
        emit(
            as_json,
            {**data, "reloaded": False, "reload_command": hint},
            f"{text}\nnginx was NOT reloaded; fix the error below, then run: {hint}",
        )
        raise
    emit(
        as_json,
        {**data, "reloaded": True, "reload_command": hint},
        f"{text}\nnginx: config test passed, reloaded: {shlex.join(argv)} -s reload",
    )


@crl_app.command("gen")
@reports_errors
def crl_gen(
    profile: ProfileOpt,
    days: Annotated[
        str | None,
        typer.Option("--days", "-d", help="CRL validity in days [default: the profile's, 90]."),
    ] = None,
    reload: ReloadOpt = False,
    nginx_cmd: NginxCmdOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Regenerate the profile's CRL (run it from a timer so it never lapses)."""
    crl_days = names.days(days) if days is not None else None
    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    prof = open_profile(profile, home)
    path = revoking.generate_crl(
        prof, days=crl_days, ca_passphrase=signing_passphrase(prof, ca_passphrase_file)
    )
    _deploy_crl(as_json, {"profile": prof.name, "crl": path}, f"New CRL: {path}", words, argv)


@nginx_app.command("render")
@reports_errors
def nginx_render(
    profile: ProfileOpt,
    server: Annotated[
        str,
        typer.Option(
            "--server", help="Server name: needs a valid server certificate in the profile."
        ),
    ],
    upstream: Annotated[
        str,
        typer.Option(
            "--upstream", help="Where to proxy: an http(s) URL, e.g. http://127.0.0.1:8080."
        ),
    ],
    listen: Annotated[str, typer.Option("--listen", help="PORT or ADDRESS:PORT.")] = "443",
    tls: Annotated[
        str, typer.Option("--tls", help="intermediate (TLS 1.2 + 1.3) or modern (TLS 1.3 only).")
    ] = "intermediate",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default: PROFILE_DIR/nginx).")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write ssl.conf, proxy.conf and mtls_proxy.conf for NGINX (absolute paths)."""
    prof = open_profile(profile, home)
    done = nginx_lib.render(prof, server, upstream, listen=listen, out=out, tls=tls)
    emit(
        as_json,
        asdict(done),
        f"Wrote NGINX configs for {done.server} "
        f"(TLS {done.tls}, listen {done.listen}, upstream {done.upstream})\n"
        f"{_files_text(done.files)}\nInclude {done.files['site']} inside http {{ }} "
        f"of nginx.conf, then run: nginx -t && nginx -s reload",
    )


@app.command("list")
@reports_errors
def list_cmd(profile: ProfileOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Every certificate of the profile, with kind, status and expiry."""
    certs = inventory.certificates(open_profile(profile, home))
    rows = [f"{'NAME':24} {'KIND':7} {'STATUS':8} {'NOT AFTER':21} SERIAL"]
    for c in certs:
        extra = f"  revoked {c.revoked_at} ({c.reason})" if c.revoked_at else ""
        rows.append(f"{c.name:24} {c.kind:7} {c.status:8} {c.not_after:21} {c.serial}{extra}")
    emit(as_json, [c.as_dict() for c in certs], "\n".join(rows))


@app.command("show")
@reports_errors
def show_cmd(
    profile: ProfileOpt, name: NameOpt, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """One certificate: status, serial, fingerprint and files."""
    names.client_name(name)  # it names files: no path may leave the profile
    info = inventory.show(open_profile(profile, home), name)
    text = "\n".join(f"{k}: {v}" for k, v in info.items() if k not in ("files", "history"))
    files: dict[str, str] = info["files"]  # type: ignore[assignment]
    emit(as_json, info, f"{text}\nfiles:\n{_files_text(files)}")


@app.command("profiles")
@reports_errors
def profiles_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The profiles under the home directory."""
    found = list_profiles(home)
    emit(
        as_json,
        [{"profile": p.name, "dir": str(p.dir)} for p in found],
        "\n".join(p.name for p in found) or f"no profiles in {home_dir(home)}",
    )


@app.command("check")
@reports_errors
def check_cmd(profile: ProfileOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Verify the profile's database, serial and CRL agree (exit 4 if not)."""
    prof = open_profile(profile, home)
    with prof.lock():
        report = check.verify_profile(prof)
    problems = report.messages(prof)
    emit(
        as_json,
        {"profile": prof.name, "ok": report.ok, "problems": problems},
        "\n".join(problems) or f"profile {prof.name} is consistent",
    )
    if not report.ok:
        raise typer.Exit(check.ProfileCorrupt.exit_code)


@app.command("audit")
@reports_errors
def audit_cmd(profile: ProfileOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The profile's audit log: every change, who made it, and how it ended."""
    records = audit.read(open_profile(profile, home))
    emit(as_json, records, "\n".join(map(audit.one_line, records)) or "no audit records")


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
