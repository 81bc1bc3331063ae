"""What `client renew` and `server renew` share: the library call and the report."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from .common import (
    bundle_password,
    emit,
    files_text,
    notes_text,
    open_ca,
)


def renew_and_report(
    ctx: typer.Context,
    as_json: bool,
    profile: str,
    home: Path | None,
    name: str,
    kind: str,
    days: str,
    grace: str | None,
    reuse_key: bool,
    ca_passphrase_file: Path | None,
    p12_passphrase_file: Path | None = None,
) -> None:
    """`client renew` and `server renew`: renew through the library, print."""
    done = open_ca(ctx, profile, home, ca_passphrase_file).renew(
        name,
        kind,
        days=days,
        grace_period=grace,
        reuse_key=reuse_key,
        bundle_passphrase=lambda: bundle_password(p12_passphrase_file, f"{name}.p12"),
    )
    old_fate = (
        "revoked (superseded)"
        if done.superseded_until is None
        else f"valid until {done.superseded_until} (grace), then revoked (superseded)"
    )
    emit(
        as_json,
        asdict(done),
        f"Renewed {kind} certificate {name}: serial {done.serial}, valid until {done.not_after}"
        f"\n  the old one, {done.superseded}: {old_fate}\n{files_text(done.files)}"
        f"{notes_text(done.notes)}",
    )
