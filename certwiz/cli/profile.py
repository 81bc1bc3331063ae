"""certwiz profiles, check, audit: the profiles and their health and history."""

from __future__ import annotations

import typer

from .. import audit, check
from ..api import CA
from ..errors import LockTimeout
from ..profile import list_profiles, resolve_home
from .common import HomeOpt, JsonOpt, ProfileOpt, emit, open_ca, reports_errors
from .helptext import CHANGES, PROFILE_CORRUPT, READS, help_page


@help_page(
    ("The profiles in the home", "certwiz profiles"),
    ("Those of another home, as JSON", "certwiz profiles --home /etc/certwiz --json"),
    codes=READS,
)
@reports_errors
def profiles_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The profiles under the home directory."""
    found = list_profiles(home)
    emit(
        as_json,
        [{"profile": p.name, "dir": str(p.dir)} for p in found],
        "\n".join(p.name for p in found) or f"no profiles in {resolve_home(home).describe()}",
    )


@help_page(
    ("Check a profile", "certwiz check -p my-app"),
    ("For a monitor", "certwiz check -p my-app --json"),
    codes=READS
    | {
        0: "the profile is consistent",
        LockTimeout.exit_code: CHANGES[LockTimeout.exit_code],
        PROFILE_CORRUPT: "the profile is inconsistent: every problem is printed",
    },
)
@reports_errors
def check_cmd(
    ctx: typer.Context, profile: ProfileOpt, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Verify the profile's database, serial and CRL agree (exit 4 if not)."""
    lib = open_ca(ctx, profile, home)
    report = lib.check()
    prof = lib.profile
    problems = report.messages(prof)
    emit(
        as_json,
        {"profile": prof.name, "ok": report.ok, "problems": problems},
        "\n".join(problems) or f"profile {prof.name} is consistent",
    )
    if not report.ok:
        raise typer.Exit(check.ProfileCorrupt.exit_code)


@help_page(
    ("Every change to a profile", "certwiz audit -p my-app"),
    ("As JSON", "certwiz audit -p my-app --json"),
    codes=READS,
)
@reports_errors
def audit_cmd(profile: ProfileOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The profile's audit log: every change, who made it, and how it ended."""
    records = CA.open(profile, home).audit()
    emit(as_json, records, "\n".join(map(audit.one_line, records)) or "no audit records")
