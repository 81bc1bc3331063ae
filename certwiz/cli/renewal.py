"""What `client renew` and `server renew` share: checks, secrets, the call, the report."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from .. import renew
from ..errors import InputError
from ..openssl import Secret
from ..passphrase import P12_ENV
from ..profile import open_profile
from .common import (
    bundle_password,
    command_lock_timeout,
    emit,
    files_text,
    notes_text,
    signing_passphrase,
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
    """`client renew` and `server renew`: check everything, get the secrets, renew, print."""
    prof = open_profile(profile, home)
    old = renew.check_renewal(prof, name, kind, days, grace, reuse_key, Secret("-"))
    bundle_secret = None
    if old.key_encrypted:  # the key (and the bundle) have a password: the same again
        bundle_secret = bundle_password(p12_passphrase_file, f"{name}.p12")
        if bundle_secret is None:
            raise InputError(
                "p12-passphrase-file",
                f"the bundle of {name} has a password: give --p12-passphrase-file FILE "
                f"or set {P12_ENV}",
            )
    done = renew.renew(
        prof,
        name,
        kind,
        days=days,
        grace_period=grace,
        reuse_key=reuse_key,
        passphrase=bundle_secret,
        ca_passphrase=signing_passphrase(prof, ca_passphrase_file),
        timeout=command_lock_timeout(ctx),
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
