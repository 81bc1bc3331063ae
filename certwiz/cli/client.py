"""certwiz client: client certificates and their PKCS#12 bundles."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ..openssl import Secret
from ..passphrase import P12_ENV
from ..profile import open_profile
from .common import (
    CAPassOpt,
    CsrNameOpt,
    CsrOpt,
    GraceOpt,
    HomeOpt,
    JsonOpt,
    KeyTypeOpt,
    LeafDaysOpt,
    NameOpt,
    P12FormatOpt,
    P12PassOpt,
    ProfileOpt,
    ReuseKeyOpt,
    batch_json,
    batch_text,
    bundle_password,
    command_lock_timeout,
    emit,
    files_text,
    open_ca,
    progress_bar,
    report_issued,
    reports_errors,
)
from .helptext import CHANGES, help_page
from .prompts import obtain
from .renewal import renew_and_report

client_app = typer.Typer(
    help="Client certificates and their PKCS#12 bundles.", no_args_is_help=True
)


@client_app.command("issue")
@help_page(
    ("A bot: key and bundle without a password", "certwiz client issue -p my-app -n bot-01 -u"),
    (
        "A person: the bundle password is asked on a terminal; valid 90 days",
        "certwiz client issue -p my-app -n alice -d 90d",
    ),
    (
        "Unattended, the password from a file; a bundle for current clients only",
        "certwiz client issue -p my-app -n alice --p12-passphrase-file alice.pass "
        "--p12-format modern",
    ),
    codes=CHANGES | {2: "bad input, or NAME already has a valid certificate; nothing was changed"},
)
@reports_errors
def client_issue(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    days: LeafDaysOpt = "365",
    unencrypted: Annotated[
        bool,
        typer.Option("--unencrypted", "-u", help="Key and bundle without a password (for bots)."),
    ] = False,
    p12_passphrase_file: P12PassOpt = None,
    p12_format: P12FormatOpt = "compat",
    key_type: KeyTypeOpt = "ec:P-256",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a client certificate (clientAuth only) and its PKCS#12 bundle."""
    lib = open_ca(ctx, profile, home, ca_passphrase_file)

    def new_bundle_password() -> Secret | None:  # asked only without -u, after every check
        prompt = f"Password for {name}.p12: "
        return obtain(p12_passphrase_file, P12_ENV, "p12-passphrase-file", prompt, confirm=True)

    done = lib.issue_client(
        name,
        days=days,
        bundle_passphrase=new_bundle_password,
        unencrypted=unencrypted,
        key_type=key_type,
        p12_format=p12_format,
    )
    report_issued(as_json, done)


@client_app.command("issue-batch")
@help_page(
    ("A fleet of bots, no passwords, the result as JSON",
     "certwiz client issue-batch -p my-app --from fleet.csv -u --json"),
    ("One password for every bundle that has one, from a file",
     "certwiz client issue-batch -p my-app --from fleet.csv --p12-passphrase-file fleet.pass"),
    codes=CHANGES | {2: "a bad row (file:line: column), or a name with a valid certificate "
                        "whose key certwiz did not deliver; nothing was changed"},
)  # fmt: skip
@reports_errors
def client_issue_batch(
    ctx: typer.Context,
    profile: ProfileOpt,
    from_file: Annotated[
        Path,
        typer.Option(
            "--from",
            metavar="FILE.csv",
            help="CSV with a header: name, and optionally days, unencrypted, p12_format.",
        ),
    ],
    days: LeafDaysOpt = "365",
    unencrypted: Annotated[
        bool,
        typer.Option("--unencrypted", "-u", help="Every key and bundle without a password."),
    ] = False,
    p12_passphrase_file: P12PassOpt = None,
    p12_format: P12FormatOpt = "compat",
    key_type: KeyTypeOpt = "ec:P-256",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a fleet of client certificates and bundles from a CSV file, in one run.

    Every row is checked first (name, duplicates, a name that already has a valid
    certificate, days, unencrypted, p12_format): one bad row stops the run with its
    line number and nothing is written. Keys, requests and bundles are made on every
    core; one `openssl ca` run signs each validity period; one audit record lists
    every serial. -d, -u and --p12-format are the defaults of empty cells. One
    password (--p12-passphrase-file) serves every row that is not unencrypted: a
    password column is refused. Run it again after an interruption: names already
    issued with their files are skipped (and said so), the rest is issued.
    """
    from .. import batch

    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    rows = batch.read_rows(from_file, days=days, unencrypted=unencrypted, p12_format=p12_format)

    def batch_password() -> Secret | None:  # asked only after every row was checked
        prompt = "Password for the batch's bundles: "
        return obtain(p12_passphrase_file, P12_ENV, "p12-passphrase-file", prompt, confirm=True)

    with progress_bar(not as_json and sys.stdout.isatty()) as progress:
        done = lib.issue_batch(
            rows,
            bundle_passphrase=batch_password,
            key_type=key_type,
            progress=progress,
        )
    emit(as_json, batch_json(done, lib.name), batch_text(done))


@client_app.command("sign")
@help_page(
    (
        "Sign a CSR made on the device; its CN is the name",
        "certwiz client sign -p my-app --csr bot-07.csr -d 30d",
    ),
    codes=CHANGES
    | {
        2: "bad input (not a CSR, a weak key, a name that is not the CSR's CN, "
        "a name that already has a valid certificate); nothing was changed"
    },
)
@reports_errors
def client_sign(
    ctx: typer.Context,
    profile: ProfileOpt,
    csr: CsrOpt,
    name: CsrNameOpt = None,
    days: LeafDaysOpt = "365",
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a client CSR made on the device: its key never leaves it (no bundle is made).

    The CSR's own signature is checked; only its public key is used. The subject is
    exactly CN=NAME and the extensions are certwiz's (clientAuth only).
    """
    lib = open_ca(ctx, profile, home, ca_passphrase_file)
    report_issued(as_json, lib.sign_csr(csr, name, "client", days=days))


@client_app.command("invite")
@help_page(
    (
        "A token for a device that enrolls within 2 hours, for a 30-day certificate",
        "certwiz client invite -p my-app -n sensor-7 --ttl 2h -d 30d --json",
    ),
    codes=CHANGES | {2: "bad input, or NAME already has a valid certificate; nothing was changed"},
)
@reports_errors
def client_invite(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    ttl: Annotated[
        str,
        typer.Option("--ttl", help="How long the token may be used: 1h, 30m, 2d (at most 30d)."),
    ] = "1h",
    days: LeafDaysOpt = "365",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A one-time token with which device NAME enrolls over EST (simpleenroll).

    The device makes its own key and CSR and sends it with the token as the HTTP
    Basic password (user NAME); the key never leaves it. The token is printed once
    (JSON key `token`); the profile keeps only its hash. It works once, until --ttl
    has passed; a new invite for NAME replaces an unused one, and issuing NAME
    otherwise (client issue, sign, issue-batch) or revoking it cancels it. A NAME with
    a valid certificate is refused: it renews with that certificate (simplereenroll);
    a NAME with ':' too (HTTP Basic cannot carry it).
    """
    from ..est import tokens

    done = tokens.invite(
        open_profile(profile, home), name, ttl=ttl, days=days, timeout=command_lock_timeout(ctx)
    )
    replaced = f" (replaces {done.replaced} unused invite)" if done.replaced else ""
    emit(
        as_json,
        asdict(done),
        f"One-time enrollment token for {done.name} (certificate valid {done.days}), "
        f"usable once until {done.expires}{replaced}:\n{done.token}",
    )


@client_app.command("rebundle")
@help_page(
    (
        "Re-make a bundle every client takes",
        "certwiz client rebundle -p my-app -n bot-01 --p12-format compat",
    ),
    codes=CHANGES | {2: "bad input or no valid certificate or key for NAME; nothing was changed"},
)
@reports_errors
def client_rebundle(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    p12_format: P12FormatOpt = "compat",
    p12_passphrase_file: P12PassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-make NAME's PKCS#12 bundle from the key and certificate in the profile.

    The bundle keeps the key's password (asked for when the key is encrypted); a
    name issued with -u gets the empty password, which every client accepts.
    Run it for bundles that `certwiz p12 inspect` finds problems in.
    """
    done = open_ca(ctx, profile, home).rebundle(
        name,
        p12_format=p12_format,
        key_passphrase=lambda: bundle_password(p12_passphrase_file, f"{name}.key"),
    )
    emit(
        as_json,
        asdict(done),
        f"Re-made the {done.p12_format} bundle of {done.name} (serial {done.serial}, "
        f"{done.password} password): {done.p12}",
    )


@client_app.command("bundle")
@help_page(
    ("What to hand alice", "certwiz client bundle -p my-app -n alice --out ./alice-bundle"),
    codes=CHANGES
    | {
        2: "bad input (a non-empty --out, a wrong password, a bundle that needs "
        "`client rebundle`); nothing was written"
    },
)
@reports_errors
def client_bundle(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", help="New (or empty) directory to write the bundle into."
        ),
    ],
    p12_passphrase_file: P12PassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write what to hand a person or a bot: NAME.p12, ca.crt and a README for NAME.

    The README has the exact steps for curl, Python, Java, Postman, Chrome/Chromium,
    Firefox, macOS Keychain and Windows. The password is checked, never written.
    """
    done = open_ca(ctx, profile, home).onboarding_bundle(
        name, out, bundle_passphrase=lambda: bundle_password(p12_passphrase_file, f"{name}.p12")
    )
    emit(
        as_json,
        asdict(done),
        f"Wrote the onboarding bundle of {done.name} ({done.p12_format}, "
        f"{done.password} password) to {done.out_dir}\n{files_text(done.files)}",
    )


@client_app.command("renew")
@help_page(
    (
        "A new certificate and bundle; the old one stays valid 7 more days",
        "certwiz client renew -p my-app -n bot-01 --grace 7d",
    ),
    codes=CHANGES | {2: "bad input or nothing to renew; nothing was changed"},
)
@reports_errors
def client_renew(
    ctx: typer.Context,
    profile: ProfileOpt,
    name: NameOpt,
    days: LeafDaysOpt = "365",
    grace: GraceOpt = None,
    reuse_key: ReuseKeyOpt = False,
    p12_passphrase_file: P12PassOpt = None,
    ca_passphrase_file: CAPassOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new certificate for NAME, same kind, SANs, key type and bundle format; the old
    one is revoked (superseded) now, or with --grace when the grace ends.
    """
    renew_and_report(
        ctx,
        as_json,
        profile,
        home,
        name,
        "client",
        days,
        grace,
        reuse_key,
        ca_passphrase_file,
        p12_passphrase_file,
    )
