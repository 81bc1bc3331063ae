"""certwiz ca: create a profile and its certificate authority."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import adopt, ca, intermediate, leaf_urls, names, subordinate
from ..api import CA
from ..errors import InputError
from ..passphrase import CA_ENV
from ..profile import open_profile
from .common import (
    CAPassOpt,
    CsrOpt,
    HomeOpt,
    JsonOpt,
    KeyTypeOpt,
    NginxCmdOpt,
    ProfileOpt,
    ReloadOpt,
    RootKeyOpt,
    ca_passphrase_source,
    command_lock_timeout,
    deploy_crl,
    emit,
    files_text,
    notes_text,
    open_ca,
    reports_errors,
    warn,
)
from .helptext import CHANGES, help_page
from .prompts import obtain
from .rootkey import root_key_app

ENCRYPTED_HINT = (
    "\nThe CA key is encrypted: every command that signs (server issue, client issue, "
    "revoke, crl gen) asks for its passphrase on a terminal; unattended (cron, systemd), "
    "give --ca-passphrase-file FILE, a root-only file whose first line is the passphrase "
    f"(or set {CA_ENV})."
)

ca_app = typer.Typer(help="The profile's certificate authority.", no_args_is_help=True)
ca_app.add_typer(root_key_app, name="root-key")
CrlUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--crl-url",
        help="The http:// URL where crl.pem is published, written into every leaf "
        "(CRL distribution point) issued from now on.",
    ),
]
OcspUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--ocsp-url",
        help="The OCSP responder's http:// URL, written into every leaf (AIA) issued from now on.",
    ),
]


@ca_app.command("init")
@help_page(
    (
        "A profile with one CA (a passphrase for its key is asked on a terminal)",
        "certwiz ca init -p my-app",
    ),
    (
        "A root that can go offline and an intermediate that signs",
        "certwiz ca init -p fleet --intermediate --root-days 7300 --days 1825",
    ),
    (
        "Unattended: the key's passphrase from a root-only file",
        "certwiz ca init -p my-app --ca-passphrase-file /root/my-app.pass",
    ),
    codes=CHANGES | {2: "bad input, or the profile already exists; nothing was written"},
)
@reports_errors
def ca_init(
    profile: ProfileOpt,
    cn: Annotated[str | None, typer.Option("--cn", help="CA common name.")] = None,
    key_type: KeyTypeOpt = "ec:P-256",
    days: Annotated[
        str | None,
        typer.Option(
            "--days", "-d", help="Validity in days of the signing CA [3650; intermediate: 1825]."
        ),
    ] = None,
    crl_days: Annotated[str, typer.Option("--crl-days", help="CRL validity in days.")] = "90",
    intermediate_opt: Annotated[
        bool,
        typer.Option(
            "--intermediate",
            help="A root (in root/, its key can go offline) and an intermediate that signs.",
        ),
    ] = False,
    root_days: Annotated[
        str | None,
        typer.Option("--root-days", help="With --intermediate: root validity in days [7300]."),
    ] = None,
    root_crl_days: Annotated[
        str | None,
        typer.Option("--root-crl-days", help="With --intermediate: root CRL validity [365]."),
    ] = None,
    ocsp_url: OcspUrlOpt = None,
    crl_url: CrlUrlOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a profile: its CA key and root certificate, database and first CRL."""
    default_days = (
        intermediate.DEFAULT_INTERMEDIATE_DAYS if intermediate_opt else ca.DEFAULT_CA_DAYS
    )
    options = ca.CAOptions(
        cn,
        key_type,
        names.days(days if days is not None else default_days),
        names.days(crl_days, "crl-days"),
        ocsp_url,
        crl_url,
    )
    if not intermediate_opt and (root_days is not None or root_crl_days is not None):
        raise InputError("root-days", "--root-days and --root-crl-days need --intermediate")
    made = CA.create(
        profile,
        home,
        options,
        passphrase=lambda: obtain(
            ca_passphrase_file,
            CA_ENV,
            "ca-passphrase-file",
            "Passphrase for the new CA key (empty: none): ",
            confirm=True,
        ),
        unencrypted=sys.stdin.isatty(),  # an empty answer at the prompt: none, on purpose
        intermediate=intermediate_opt,
        root_days=names.days(root_days or intermediate.DEFAULT_ROOT_DAYS, "root-days"),
        root_crl_days=names.days(
            root_crl_days or intermediate.DEFAULT_ROOT_CRL_DAYS, "root-crl-days"
        ),
    )
    for text in made.warnings:
        warn(text)
    created, secret = made.ca.profile, made.key_encrypted
    info = {
        "profile": created.name,
        "dir": str(created.dir),
        "ca_cert": str(created.ca_cert),
        "ca_key": str(created.ca_key),
        "crl": str(created.nginx_crl),
        "openssl_cnf": str(created.cnf),
        "key_encrypted": secret,
    }
    lines = [f"  CA certificate: {created.ca_cert}"]
    if created.two_level:
        info.update(
            root_key=str(created.root.ca_key),
            intermediate_cert=str(created.intermediate_cert),
            chain=str(created.chain),
        )
        lines = [
            f"  root (trust):   {created.ca_cert}",
            f"  root key:       {created.root.ca_key}  (move it offline: certwiz ca root-key "
            f"export -p {created.name} --out FILE)",
            f"  intermediate:   {created.intermediate_cert}",
        ]
    emit(
        as_json,
        info,
        f"Created profile {created.name} in {created.dir}\n" + "\n".join(lines) + "\n"
        f"  CA key:         {created.ca_key}"
        f"{' (encrypted)' if secret else ''}\n  CRL:            {created.nginx_crl}\n"
        f"Next: certwiz server issue -p {created.name} -n myserver.local"
        + (ENCRYPTED_HINT if secret else ""),
    )


@ca_app.command("revoke-intermediate")
@help_page(
    (
        "The root (exported to a USB key) revokes the intermediate",
        "certwiz ca revoke-intermediate -p fleet --root-key /media/usb/root.key",
    ),
    (
        "The intermediate's key leaked: revoke it and make nginx enforce it now",
        "certwiz ca revoke-intermediate -p fleet --reason keyCompromise --reload",
    ),
    codes=CHANGES
    | {
        1: "openssl failed, or nginx -t or the reload failed, or a server of this CA "
        "would check another CRL (the revocation stands; its error is printed)"
    },
)
@reports_errors
def ca_revoke_intermediate(
    ctx: typer.Context,
    profile: ProfileOpt,
    reason: Annotated[str, typer.Option("--reason", help=", ".join(names.REASONS))] = "unspecified",
    reload: ReloadOpt = False,
    nginx_cmd: NginxCmdOpt = None,
    root_key: RootKeyOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The root revokes the intermediate: from the next nginx reload every client is refused.

    Run again after it was interrupted, it finishes the job (publishes the root's CRL,
    reloads with --reload).
    """
    from .. import nginx as nginx_lib

    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    done = lib.revoke_intermediate(reason=reason, root_key=root_key)
    if done.serials:
        text = f"Revoked the intermediate {done.serials[0]} ({done.reason})" + (
            f" and the {len(done.serials) - 1} earlier certificate(s) of its key"
            if len(done.serials) > 1
            else ""
        )
    else:
        text = f"The intermediate {', '.join(done.already_revoked + done.finished)} was revoked"
    if done.finished:
        text += f"; finished the interrupted revocation of {', '.join(done.finished)}"
    if done.already_revoked:
        text += f" already; the CRLs are current ({done.crl} lists it)"
    else:
        text += f"; new CRLs: {done.crl}"
    text += "\nEvery certificate it signed is refused once nginx has the new CRL."
    deploy_crl(as_json, asdict(done), text, words, argv, lib.profile)


@ca_app.command("sign-intermediate")
@help_page(
    (
        "Vault's request (pki_int/intermediate/generate/internal); --with-root for set-signed",
        "certwiz ca sign-intermediate -p corp --csr vault.csr --out vault.crt --with-root",
    ),
    (
        "cert-manager's CA, allowed to issue only for example.com and the names below it",
        "certwiz ca sign-intermediate -p corp --csr k8s.csr --out k8s.crt "
        "--permitted-dns example.com",
    ),
    (
        "step-ca's intermediate, signed by a two-level profile's exported root key",
        "certwiz ca sign-intermediate -p fleet --csr step.csr --out step.crt "
        "--root-key /media/usb/root.key --days 1825",
    ),
    codes=CHANGES
    | {
        2: "bad input (not a CSR, a weak key, a bad --permitted-dns, --pathlen, --days or "
        "--out), or the root key is offline and no --root-key was given; nothing was changed"
    },
)
@reports_errors
def ca_sign_intermediate(
    ctx: typer.Context,
    profile: ProfileOpt,
    csr: CsrOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Where to write the signed certificate (PEM; never inside the home)."
        ),
    ],
    pathlen: Annotated[
        int,
        typer.Option(
            "--pathlen", help="CAs allowed below it (0: it signs leaves only).", show_default=True
        ),
    ] = 0,
    days: Annotated[
        str,
        typer.Option("--days", "-d", help="Validity in days; capped at the root's notAfter."),
    ] = str(subordinate.DEFAULT_DAYS),
    permitted_dns: Annotated[
        list[str] | None,
        typer.Option(
            "--permitted-dns",
            help="Name constraint, repeatable: example.com permits it and every name below "
            "it; .example.com only the names below it.",
        ),
    ] = None,
    cn: Annotated[
        str | None,
        typer.Option(
            "--cn", help="Subject exactly CN=NAME (default: the CSR's CN, O, OU, C, ST, L)."
        ),
    ] = None,
    with_root: Annotated[
        bool,
        typer.Option("--with-root", help="Append the root certificate to --out (a chain)."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    root_key: RootKeyOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The root signs the intermediate CA of a bigger system (Vault, step-ca, ...).

    The root is the profile's CA (one level) or root/ (ca init --intermediate),
    with --root-key FILE once its key was exported. Only the request's key and
    subject are used; CA:TRUE with --pathlen, keyCertSign and cRLSign and the
    --permitted-dns name constraints come from certwiz. Recorded in the root's
    index.txt and the audit log; see it with `certwiz list --kind ca`; revoke
    it with `certwiz revoke -p P --serial S`.

    The README shows the commands on the Vault, step-ca and cert-manager side.
    """
    prof = open_profile(profile, home)
    done = subordinate.sign_intermediate(
        prof,
        csr,
        out,
        pathlen=pathlen,
        days=days,
        permitted=permitted_dns or [],
        common_name=cn,
        root_key=root_key,
        with_root=with_root,
        force=force,
        ca_passphrase=ca_passphrase_source(prof.name, ca_passphrase_file),
        timeout=command_lock_timeout(ctx),
    )
    limits = f"pathlen {done.pathlen}" + (
        f", permitted DNS {', '.join(done.permitted_dns)}" if done.permitted_dns else ""
    )
    emit(
        as_json,
        asdict(done),
        f"Signed intermediate CA {done.subject} (serial {done.serial}, {limits}, "
        f"valid until {done.not_after})\n  issuer:   {done.issuer}\n  written:  {done.out}\n"
        f"  recorded: {done.database}{notes_text(done.notes)}\n"
        f"Revoke it with: certwiz revoke -p {done.profile} --serial {done.serial}",
    )


@ca_app.command("adopt")
@help_page(
    ("Adopt an easy-rsa 3 PKI", "certwiz ca adopt -p legacy --from /etc/easy-rsa/pki"),
    ("Adopt a hand-run openssl ca directory", "certwiz ca adopt -p old-ca --from /root/ca --json"),
    codes=CHANGES
    | {
        2: "bad input, a source certwiz cannot read as a CA, or the profile "
        "already exists; nothing was written"
    },
)
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


@ca_app.command("renew")
@help_page(
    ("Renew the signing CA", "certwiz ca renew -p my-app"),
    (
        "Renew the intermediate of a two-level profile, the root key exported",
        "certwiz ca renew -p fleet --root-key /media/usb/root.key",
    ),
    ("Renew the root itself", "certwiz ca renew -p fleet --root --root-key /media/usb/root.key"),
)
@reports_errors
def ca_renew(
    ctx: typer.Context,
    profile: ProfileOpt,
    days: Annotated[
        str | None,
        typer.Option(
            "--days",
            "-d",
            help="Validity in days [a self-signed CA: its own length; an intermediate: 1825].",
        ),
    ] = None,
    root: Annotated[
        bool,
        typer.Option("--root", help="Two-level profile: renew the root, not the intermediate."),
    ] = False,
    root_key: RootKeyOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new certificate for the signing CA with the same key and subject.

    Every leaf issued before keeps verifying (same key, same key identifier); the
    old CA certificate is kept in archive/, chain files are rewritten.
    """
    valid_days = names.days(days) if days is not None else None  # text to a number
    done = open_ca(ctx, profile, home, ca_passphrase_file).renew_ca(
        days=valid_days, root=root, root_key=root_key
    )
    emit(
        as_json,
        asdict(done),
        f"Renewed the {done.level} CA certificate of {done.profile} (serial {done.serial}, "
        f"valid until {done.not_after}); the old one is in {done.archived}\n"
        f"{files_text(done.files)}{notes_text(done.notes)}\n{done.trust}",
    )


@ca_app.command("set")
@help_page(
    (
        "Name an OCSP responder in every leaf issued from now on",
        "certwiz ca set -p my-app --ocsp-url http://127.0.0.1:8888/",
    ),
    (
        "Name where the CRL is published",
        "certwiz ca set -p my-app --crl-url http://pki.example.com/my-app.crl",
    ),
    ("Stop naming an OCSP responder", "certwiz ca set -p my-app --no-ocsp-url"),
)
@reports_errors
def ca_set(
    ctx: typer.Context,
    profile: ProfileOpt,
    ocsp_url: OcspUrlOpt = None,
    no_ocsp_url: Annotated[
        bool, typer.Option("--no-ocsp-url", help="Issue leaves without an OCSP URL from now on.")
    ] = False,
    crl_url: CrlUrlOpt = None,
    no_crl_url: Annotated[
        bool,
        typer.Option("--no-crl-url", help="Issue leaves without a CRL distribution point."),
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a setting of the profile's CA (audited). Leaves already issued keep theirs."""
    changes: dict[str, str | None] = {}
    for kind, url, none in (("ocsp", ocsp_url, no_ocsp_url), ("crl", crl_url, no_crl_url)):
        if url is not None and none:
            raise InputError(f"{kind}-url", f"give --{kind}-url URL or --no-{kind}-url, not both")
        if url is not None or none:
            changes[kind] = leaf_urls.check_url(url, f"{kind}-url") if url is not None else None
    if not changes:
        raise InputError("ocsp-url", "nothing to set: give --ocsp-url, --crl-url or --no-...")
    authority = open_ca(ctx, profile, home)
    prof = authority.profile
    leaf_urls.set_urls(prof, changes, authority.lock_timeout)
    said = {"ocsp": "OCSP responder", "crl": "CRL distribution point"}
    emit(
        as_json,
        {"profile": prof.name, **{f"{k}_url": v for k, v in changes.items()}},
        "\n".join(
            f"Profile {prof.name}: leaves issued from now on name "
            + (f"the {said[k]} {v}" if v else f"no {said[k]}")
            for k, v in changes.items()
        ),
    )
