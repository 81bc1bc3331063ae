"""certwiz ca root-key: move a two-level profile's root key offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import HomeOpt, JsonOpt, ProfileOpt, emit, open_ca, reports_errors
from .helptext import help_page

root_key_app = typer.Typer(
    help="The root key of a two-level profile (ca init --intermediate).", no_args_is_help=True
)


@root_key_app.command("export")
@help_page(
    (
        "Move the root key to a USB key",
        "certwiz ca root-key export -p fleet --out /media/usb/fleet-root.key",
    ),
)
@reports_errors
def root_key_export(
    ctx: typer.Context,
    profile: ProfileOpt,
    out: Annotated[
        Path, typer.Option("--out", help="A new file outside the profile (written 0600).")
    ],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the root key to --out, verify it, then remove it from the profile.

    Leaves are still issued, renewed and revoked (the intermediate signs them) and
    `crl gen` keeps working; re-signing the root CRL, revoking or renewing the
    intermediate then take --root-key FILE. Keep FILE offline (a USB key, a safe).
    """
    ca = open_ca(ctx, profile, home)
    prof = ca.profile
    written = ca.export_root_key(out)
    emit(
        as_json,
        {"profile": prof.name, "root_key": str(written), "removed": str(prof.root.ca_key)},
        f"Exported the root key of {prof.name} to {written} (0600) and removed "
        f"{prof.root.ca_key}\nKeep it offline; what needs the root takes --root-key {written}",
    )
