"""`certwiz status`: what a monitor must know about a profile, with Nagios exit codes.

Each CA certificate, each CRL (its nextUpdate), every copy behind the files it is
built from (derived: crl-chain.pem without the newest revocation) and every valid
certificate expiring within the warning window becomes an item with a state: ok (0),
warning (1) or critical (2). The worst state is the exit code, so a cron line
or a systemd timer can alert on anything but 0. Read-only: it takes no lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import check, database, der, derived, durations, grace, intermediate, ocsp, upkeep
from .durations import STAMP, stamp
from .errors import CertwizError, ProfileCorrupt
from .inventory import certificates
from .profile import Profile

DEFAULT_WARN = "30d"
STATES = ("ok", "warning", "critical")  # index = Nagios exit code


@dataclass(frozen=True)
class Item:
    profile: str
    # ca, root-ca, intermediate-ca, crl, root-crl, server, client, profile, signed-ca:
    # an intermediate the root signed for another system (ca sign-intermediate), and
    # copy: a file built from others (crl-chain.pem, chain.pem, ...) behind them (derived)
    kind: str
    name: str
    serial: str | None
    not_after: str | None  # a CRL's nextUpdate
    days_left: float | None
    state: str
    message: str

    @property
    def code(self) -> int:
        return STATES.index(self.state)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Authority:
    """One CA level of a profile: its certificate, its CRL, and how to renew that CRL."""

    kind: str
    cert: Path
    crl: Path
    crl_kind: str
    renew_crl: str
    renew_ca: str


def authorities(profile: Profile) -> list[Authority]:
    """The CA levels of a profile, the root first."""
    gen, renew = f"certwiz crl gen -p {profile.name}", f"certwiz ca renew -p {profile.name}"
    if not profile.two_level:
        return [Authority("ca", profile.ca_cert, profile.crl, "crl", gen, renew)]
    offline = "" if profile.root.ca_key.is_file() else " --root-key FILE"
    return [
        Authority(
            "root-ca",
            profile.root.ca_cert,
            profile.root.crl,
            "root-crl",
            gen + offline,
            f"{renew} --root{offline}",
        ),
        Authority(
            "intermediate-ca", profile.intermediate_cert, profile.crl, "crl", gen, renew + offline
        ),
    ]


def _rel(profile: Profile, path: Path) -> str:
    return str(path.relative_to(profile.dir))


def _days(left: timedelta) -> float:
    return round(left.total_seconds() / 86400, 2)


def _ca_item(profile: Profile, level: Authority, warn: timedelta, now: datetime) -> Item:
    try:
        data = der.pem_to_der(level.cert.read_bytes())
        _, not_after = der.cert_validity(data)
        name, serial = der.cert_subject_cn(data) or level.cert.name, der.cert_serial(data)
    except (OSError, ValueError, IndexError) as exc:
        return Item(
            profile.name,
            level.kind,
            level.cert.name,
            None,
            None,
            None,
            "critical",
            f"{level.cert}: unusable ({exc})",
        )
    left = not_after - now
    revoked = _revoked_by_root(profile, level)
    if revoked:
        message = f"revoked by the root ({revoked}): NGINX refuses every client"
        return Item(
            profile.name,
            level.kind,
            name,
            serial,
            stamp(not_after),
            _days(left),
            "critical",
            message,
        )
    if left <= timedelta(0):
        state, message = "critical", f"CA certificate expired {stamp(not_after)}"
    elif left <= warn:
        state, message = "warning", f"CA certificate expires {stamp(not_after)}"
    else:
        state, message = "ok", f"valid until {stamp(not_after)}"
    if state != "ok":
        message += f"; renew it: {level.renew_ca}"
    return Item(
        profile.name, level.kind, name, serial, stamp(not_after), _days(left), state, message
    )


def _revoked_by_root(profile: Profile, level: Authority) -> str | None:
    """The root's revocation of the intermediate ('DATE, REASON'; see
    intermediate.revoked_entry: the one rule issue, sign and ca renew refuse by)."""
    if level.kind != "intermediate-ca":
        return None
    entry = intermediate.revoked_entry(profile)
    if entry is None:
        return None
    return f"{entry.revoked_at:{STAMP}}, {entry.reason or 'unspecified'}"  # an R line has one


def _missing_from_crl(profile: Profile, level: Authority) -> list[str]:
    """Serials the level's index.txt has revoked that its CRL does not list (a revoke
    killed before its CRL, or `openssl ca -revoke` by hand without -gencrl)."""
    index = profile.root.index if level.kind == "root-ca" else profile.index
    try:
        listed = der.crl_serials(check.crl_der(level.crl))
        entries = database.read(index)
    except (OSError, ValueError, ProfileCorrupt, database.DatabaseError):
        return []  # reported by the CRL's own item or by `certwiz check`
    return [e.serial for e in entries if e.flag == "R" and e.serial_int not in listed]


def _crl_item(profile: Profile, level: Authority, warn: timedelta, now: datetime) -> Item:
    try:
        this, following = upkeep.crl_window(level.crl)
    except (OSError, ValueError, IndexError, ProfileCorrupt) as exc:
        return Item(
            profile.name,
            level.crl_kind,
            _rel(profile, level.crl),
            None,
            None,
            None,
            "critical",
            f"unusable, NGINX rejects every client: {exc}; run: {level.renew_crl}",
        )
    if following is None:
        return Item(
            profile.name,
            level.crl_kind,
            _rel(profile, level.crl),
            None,
            None,
            None,
            "ok",
            "no nextUpdate: never lapses",
        )
    missing = _missing_from_crl(profile, level)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return Item(
            profile.name,
            level.crl_kind,
            _rel(profile, level.crl),
            None,
            stamp(following),
            _days(following - now),
            "critical",
            f"revoked serial {missing[0]}{more} is not in it: NGINX still admits it; "
            f"run: {level.renew_crl}",
        )
    left = following - now
    # Warn inside the window, and also once a third of its validity is left (the point
    # where every writing command would have renewed it): so a long-lived root CRL
    # warns months ahead.
    if left <= timedelta(0):
        state = "critical"
        message = f"expired {stamp(following)}: NGINX rejects every client; run: {level.renew_crl}"
    elif left <= max(warn, (following - this) / upkeep.RENEW_FRACTION):
        state, message = "warning", f"next update due {stamp(following)}; run: {level.renew_crl}"
    else:
        state, message = "ok", f"next update {stamp(following)}"
    return Item(
        profile.name,
        level.crl_kind,
        _rel(profile, level.crl),
        None,
        stamp(following),
        _days(left),
        state,
        message,
    )


def _leaf_items(profile: Profile, warn: timedelta, now: datetime) -> list[Item]:
    items = []
    for cert in certificates(profile, now, with_root=True):
        if cert.status != "valid":
            continue  # revoked, expired and superseded certificates are history, not alarms
        not_after = durations.from_stamp(cert.not_after)
        left = not_after - now
        responder = cert.name == ocsp.RESPONDER_NAME
        if left > (min(warn, timedelta(days=ocsp.RENEW_BEFORE_DAYS)) if responder else warn):
            continue  # the responder's short certificate is renewed by its own rule
        renew = f"certwiz {'server' if 'server' in cert.kind else 'client'} renew"
        renew += f" -p {profile.name} -n {cert.name}"
        kind = cert.kind
        if responder:  # a reserved name: no `renew` takes it
            renew = (
                f"restart certwiz ocsp serve -p {profile.name} (it re-issues its certificate "
                f"at start when less than {ocsp.RENEW_BEFORE_DAYS} days are left)"
            )
        if kind == "ca":  # an intermediate the root signed for another system
            kind = "signed-ca"
            renew = f"certwiz ca sign-intermediate -p {profile.name} --csr FILE --out FILE"
        items.append(
            Item(
                profile.name,
                kind,
                cert.name,
                cert.serial,
                cert.not_after,
                _days(left),
                "warning",
                f"expires {cert.not_after}; renew it: {renew}",
            )
        )
    return items


def _overdue_grace(profile: Profile, now: datetime) -> list[Item]:
    """A superseded certificate still valid after its grace: no writing command ran since."""
    return [
        Item(
            profile.name,
            "superseded",
            item.name,
            item.serial,
            stamp(item.until),
            _days(item.until - now),
            "warning",
            f"grace ended {stamp(item.until)} but it is not revoked yet; run: "
            f"certwiz crl gen -p {profile.name}",
        )
        for item in grace.due(profile, now)
    ]


def _copies_behind(profile: Profile) -> list[Item]:
    """A copy a killed run left behind its sources (derived's rule, as `check` reports
    it): critical, as NGINX or new bundles read it until the next change rebuilds it."""
    return [
        Item(
            profile.name,
            "copy",
            _rel(profile, item.path),
            None,
            None,
            None,
            "critical",
            f"{item.problem}; run: {check.crl_gen(profile)}",
        )
        for item in derived.behind(profile)
    ]


def _live_copy(profile: Profile) -> list[Item]:
    """A live copy (check's rule, `check.live_copy`): critical, as check exits 4 and every
    change is refused there (attack round 14: status said ok on a copied home)."""
    copy = check.live_copy(profile)
    if copy is None:
        return []
    message = f"{copy}; see: certwiz check -p {profile.name}"
    return [Item(profile.name, "profile", profile.name, None, None, None, "critical", message)]


def of_profile(profile: Profile, warn: timedelta, now: datetime | None = None) -> list[Item]:
    now = now or datetime.now(UTC)
    items: list[Item] = _live_copy(profile)
    for level in authorities(profile):
        items.append(_ca_item(profile, level, warn, now))
        items.append(_crl_item(profile, level, warn, now))
    try:
        items += _copies_behind(profile)
        items += _leaf_items(profile, warn, now)
        items += _overdue_grace(profile, now)
    except (OSError, database.DatabaseError, CertwizError) as exc:
        items.append(
            Item(
                profile.name,
                "profile",
                profile.name,
                None,
                None,
                None,
                "critical",
                f"unreadable: {exc}; see: certwiz check -p {profile.name}",
            )
        )
    return items


def check_warn(value: str | timedelta) -> timedelta:
    return durations.parse(value, "warn")


def report(
    profiles: list[Profile], warn: str | timedelta = DEFAULT_WARN, now: datetime | None = None
) -> tuple[int, list[Item]]:
    """(exit code, items worst first) over the given profiles."""
    span = check_warn(warn)
    items = [item for profile in profiles for item in of_profile(profile, span, now)]
    items.sort(
        key=lambda item: (
            -item.code,
            item.days_left if item.days_left is not None else float("-inf"),
        )
    )
    return max((item.code for item in items), default=0), items


def table(items: list[Item]) -> str:
    """Human output: the worst first, one line each."""
    rows = [
        f"{'STATE':8} {'PROFILE':16} {'KIND':15} {'NAME':24} {'NOT AFTER':21} {'DAYS':>8}  MESSAGE"
    ]
    for item in items:
        days = "" if item.days_left is None else f"{item.days_left:.1f}"
        rows.append(
            f"{item.state.upper():8} {item.profile:16} {item.kind:15} {item.name:24} "
            f"{item.not_after or '-':21} {days:>8}  {item.message}"
        )
    return "\n".join(rows)
