"""certwiz revoke, list, show: the certificates of a profile."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from .. import inventory, names
from ..profile import open_profile
from .common import (
    CAPassOpt,
    HomeOpt,
    JsonOpt,
    NameOpt,
    NginxCmdOpt,
    ProfileOpt,
    ReloadOpt,
    RootKeyOpt,
    deploy_crl,
    emit,
    emit_json_list,
    files_text,
    notes_text,
    open_ca,
    reports_errors,
)
from .helptext import CHANGES, READS, help_page


@help_page(
    ("Revoke every valid certificate of a name", "certwiz revoke -p my-app -n bot-01"),
    (
        "A stolen device: revoke, delete its key and bundle, make nginx enforce it now",
        "certwiz revoke -p my-app -n bot-01 --reason keyCompromise --purge --reload",
    ),
    ("One certificate by serial", "certwiz revoke -p my-app --serial 1A2B3C"),
    (
        "An intermediate the exported root signed (ca sign-intermediate)",
        "certwiz revoke -p fleet --serial 4F1A09 --root-key /media/usb/root.key",
    ),
    codes=CHANGES
    | {
        1: "openssl failed, or nginx -t or the reload failed, or a server of this CA "
        "would check another CRL (the revocation stands; its error is printed)"
    },
)
@reports_errors
def revoke_cmd(
    ctx: typer.Context,
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
    root_key: RootKeyOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a certificate and regenerate the CRL (nginx enforces it after a reload).

    A --serial the root of a two-level profile signed (ca sign-intermediate) is revoked
    by the root (--root-key FILE once its key was exported); the root's CRL and
    crl-chain.pem are published.
    """
    from .. import nginx as nginx_lib  # here: list and show need it not

    words = nginx_lib.command_words(nginx_cmd)
    argv = nginx_lib.resolve(words) if reload else None
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    done = lib.revoke(name=name, serial=serial, reason=reason, purge=purge, root_key=root_key)
    purged = "".join(f"\nDeleted {path}" for path in done.purged) + "".join(
        f"\nKept {path}: a server's key, which an NGINX config may still name; "
        "delete it once no NGINX serves this server"
        for path in done.kept
    )
    what = [f"Revoked {', '.join(done.serials)} ({done.reason})"] if done.serials else []
    if done.finished:
        what.append(
            f"Finished the interrupted revocation of {', '.join(done.finished)} "
            "(index.txt had it, the CRL did not)"
        )
    crl = f"new CRL: {done.crl}"
    if done.already_revoked:  # a rerun of a revoke killed before nginx reloaded
        what.append(f"{name or serial} was already revoked ({', '.join(done.already_revoked)})")
        crl = f"the CRL is current ({done.crl} lists it); nothing to revoke or publish"
    deploy_crl(
        as_json,
        asdict(done),
        f"{'; '.join(what)}; {crl}{purged}{notes_text(done.notes)}",
        words,
        argv,
        lib.profile,
    )


@help_page(
    ("What expires within 30 days", "certwiz list -p my-app --expiring 30d"),
    (
        "Revoked bots, as JSON",
        "certwiz list -p my-app --status revoked --kind client --name 'bot-*' --json",
    ),
    codes=READS,
)
@reports_errors
def list_cmd(
    profile: ProfileOpt,
    status: Annotated[
        str | None, typer.Option("--status", help=", ".join(inventory.STATUSES))
    ] = None,
    expiring: Annotated[
        str | None,
        typer.Option("--expiring", help="Valid certificates expiring within, e.g. 30d, 12h, 2w."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="server, client or ca (intermediates the root signed)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Names matching a glob, e.g. 'bot-*'.")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every certificate of the profile, with kind, status and expiry; filters combine."""
    where = inventory.make_filter(status, expiring, kind, name)
    certs = inventory.certificates(open_profile(profile, home), where=where, with_root=True)
    if as_json:
        emit_json_list(c.as_dict() for c in certs)
        return
    rows = [f"{'NAME':24} {'KIND':7} {'STATUS':8} {'NOT AFTER':21} SERIAL"]
    for c in certs:
        extra = f"  revoked {c.revoked_at} ({c.reason})" if c.revoked_at else ""
        if c.superseded_until:
            extra = f"  grace ends {c.superseded_until}"
        rows.append(f"{c.name:24} {c.kind:7} {c.status:8} {c.not_after:21} {c.serial}{extra}")
    typer.echo("\n".join(rows))


@help_page(
    ("One certificate", "certwiz show -p my-app -n bot-01"),
    ("As JSON", "certwiz show -p my-app -n api.example.com --json"),
    codes=READS,
)
@reports_errors
def show_cmd(
    profile: ProfileOpt, name: NameOpt, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """One certificate: status, serial, fingerprint and files."""
    info = inventory.show(open_profile(profile, home), name)  # it validates the name
    text = "\n".join(f"{k}: {v}" for k, v in info.items() if k not in ("files", "history"))
    files: dict[str, str] = info["files"]  # type: ignore[assignment]
    emit(as_json, info, f"{text}\nfiles:\n{files_text(files)}")
