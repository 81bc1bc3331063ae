"""`ca renew`: a new certificate for the signing CA, with the same key and subject.

Same key and subject mean the same subjectKeyIdentifier, so every leaf issued
before (its authorityKeyIdentifier names that key) verifies against the new CA
certificate as it did against the old one: nobody needs a new leaf. The old CA
certificate is kept in `archive/`, and the files that carry it are rewritten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import check, database, der, derived, durations, intermediate, names, openssl, upkeep
from .errors import InputError
from .fsutil import install, not_plain_dir, scratch_dir, write_atomic
from .openssl import Secret
from .passphrase import Source, signing_passphrase
from .profile import Profile
from .transaction import transaction

DEFAULT_SINGLE_DAYS = 3650


@dataclass(frozen=True)
class Renewed:
    profile: str
    level: str  # single (the root itself) or intermediate
    serial: str
    not_after: str
    archived: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    trust: str = ""  # what those who trust the CA must do (from what changed)


def _request_args(cert: Path, key: Path, out: Path, passphrase: Secret | None) -> list[openssl.Arg]:
    """A request with the certificate's own subject, signed by its key (x509 -x509toreq)."""
    args: list[openssl.Arg] = ["x509", "-x509toreq", "-in", cert, "-signkey", key, "-out", out]
    return args + ([] if passphrase is None else ["-passin", passphrase])


def _self_sign_args(
    cnf: Path, csr: Path, key: Path, days: int, out: Path, passphrase: Secret | None
) -> list[openssl.Arg]:
    args: list[openssl.Arg] = [
        "req",
        "-x509",
        "-config",
        cnf,
        "-in",
        csr,
        "-key",
        key,
        "-extensions",
        "v3_ca",
        "-days",
        str(days),
        "-out",
        out,
    ]
    return args + ([] if passphrase is None else ["-passin", passphrase])


def _archive(profile: Profile, cert: Path, label: str) -> Path:
    """Keep the old CA certificate as archive/LABEL-SERIAL.crt (never overwritten)."""
    archive = profile.dir / "archive"
    if not archive.exists():
        archive.mkdir(mode=0o755)
    problem = not_plain_dir(archive)
    if problem:
        raise check.ProfileCorrupt(problem)
    data = cert.read_bytes()
    target = archive / f"{label}-{der.cert_serial(der.pem_to_der(data))}.crt"
    if not target.exists():
        write_atomic(target, data, 0o644)
    return target


def renew_ca(
    profile: Profile,
    *,
    days: int | None = None,
    root: bool = False,
    ca_passphrase: Source = None,
    root_key: Path | None = None,
    timeout: float | None = None,
) -> Renewed:
    """A new certificate for the signing CA (the intermediate in a two-level profile, or
    with `root` the root itself), same key and subject; the old one goes to archive/."""
    if root and not profile.two_level:
        raise InputError("root", f"profile {profile.name} has a single CA: renew it without --root")
    two = profile.two_level and not root
    chosen = None if days is None else days
    days = names.days(days if days is not None else _default_days(profile, two, root))
    if two:
        intermediate.require_unrevoked(profile)  # before the lock: a refusal leaves no trace
        left = der.cert_validity(der.pem_to_der(profile.ca_cert.read_bytes()))[1] - _now()
        intermediate.check_lifetimes(days, max(left.days, 0))  # ca init's rule, on what is left
    check_outlives_leaves(profile.root if root else profile, days)
    keyfile = None
    if profile.two_level:
        what = "renewing the root" if root else "renewing the intermediate"
        keyfile = intermediate.root_keyfile(profile, root_key, what)
    elif root_key is not None:
        intermediate.root_keyfile(profile, root_key, "")  # refuses --root-key here
    secret = signing_passphrase(profile, ca_passphrase)  # a provider: after every check
    trusted_before = profile.ca_cert.read_bytes()
    with (
        transaction(profile, "ca renew", [profile.name], timeout=timeout) as tx,
        scratch_dir(profile.dir) as work,
    ):
        if two:
            intermediate.require_unrevoked(profile)
            old, label = profile.intermediate_cert, "intermediate"
            new = _renew_intermediate(profile, work, days, secret, keyfile)
        elif root:
            old, label = profile.root.ca_cert, "root"
            new = _renew_self_signed(profile.root, work, days, secret, keyfile)
        else:
            old, label = profile.ca_cert, "ca"
            new = _renew_self_signed(profile, work, days, secret, None)
        check.require_whole(new)
        archived = _archive(profile, old, label)
        install(new, old, 0o644)
        # ca.crt (after --root), chain.pem and every fullchain follow the certificate; a
        # kill before they do is caught up by the next change's recovery (derived)
        rebuilt = derived.rebuild(profile)
        files = {"certificate": str(old), "chain": str(profile.chain)}
        refreshed = [str(d.path) for d in rebuilt if d.path.name.endswith(derived.FULLCHAIN)]
        serial = der.cert_serial(der.pem_to_der(old.read_bytes()))
        _, not_after = der.cert_validity(der.pem_to_der(old.read_bytes()))
        tx.note_serial(serial)
        tx.note("archived", str(archived))
        tx.note("fullchains", refreshed)
        notes = upkeep.tidy(profile, tx, secret)
        trust = _trust_note(profile, trusted_before)
    if chosen is None:
        why = "the intermediate's default" if two else "the old certificate's own length"
        notes.append(f"valid for {days} days: {why} (--days chooses another)")
    return Renewed(
        profile.name,
        label,
        serial,
        durations.stamp(not_after),
        str(archived),
        files,
        [f"rewrote {path}" for path in refreshed] + notes,
        trust,
    )


def _default_days(profile: Profile, two: bool, root: bool) -> int:
    """Without --days: an intermediate gets ca init's default; a self-signed CA (the root,
    or a single CA) keeps the length it has (a 20-year root re-signed for 10 without a
    word was attack round 12's minor note)."""
    if two:
        return intermediate.DEFAULT_INTERMEDIATE_DAYS
    own = (profile.root if root else profile).ca_cert
    try:
        not_before, not_after = der.cert_validity(der.pem_to_der(own.read_bytes()))
    except (OSError, ValueError):
        return DEFAULT_SINGLE_DAYS  # the transaction refuses a damaged CA, naming it
    return max((not_after - not_before).days, 1)


def _trust_note(profile: Profile, before: bytes) -> str:
    """What those who trust the profile's CA must do, from what changed: ca.crt (a single
    CA, or the root) or only the intermediate that chain.pem and the fullchains carry."""
    if profile.ca_cert.read_bytes() != before:
        return (
            f"Clients and servers that trust {profile.ca_cert} need the new one "
            "before the old expires."
        )
    return (
        f"{profile.ca_cert} did not change: what trusts it needs nothing new; servers that "
        f"send {profile.chain} or a fullchain send the new intermediate once reloaded."
    )


def _now() -> datetime:
    return datetime.now(UTC)


def check_outlives_leaves(level: Profile, days: int) -> None:
    """A renewed CA must not end before a valid certificate it signed (leaves, or the
    intermediates a root signed): those would stop verifying on that day while `list`
    shows them valid. Refused (exit 2) naming the longest-lived and the days it needs."""
    try:
        valid = [e for e in database.read(level.index) if e.status() == "valid"]
    except (OSError, database.DatabaseError):
        return  # the transaction refuses a damaged database, naming it
    if not valid:
        return
    latest = max(valid, key=lambda e: e.not_after)
    end = _now() + timedelta(days=days)
    if end >= latest.not_after:
        return
    needed = math.ceil((latest.not_after - _now()) / timedelta(days=1))
    raise InputError(
        "days",
        f"the renewed CA would end {end:%Y-%m-%d}, before {latest.common_name or latest.subject} "
        f"(serial {latest.serial}, valid until {latest.not_after:%Y-%m-%d}) that it signed; "
        f"give --days {needed} or more, or revoke what it must not outlive first",
    )


def _renew_self_signed(
    ca_dir: Profile, work: Path, days: int, passphrase: Secret | None, keyfile: Path | None
) -> Path:
    key = keyfile or ca_dir.ca_key
    csr, new = work / "ca.csr", work / "ca.crt"
    openssl.run(_request_args(ca_dir.ca_cert, key, csr, passphrase))
    openssl.run(_self_sign_args(ca_dir.cnf, csr, key, days, new, passphrase))
    return new


def _renew_intermediate(
    profile: Profile, work: Path, days: int, passphrase: Secret | None, keyfile: Path | None
) -> Path:
    csr, new = work / "intermediate.csr", work / "intermediate.crt"
    openssl.run(_request_args(profile.intermediate_cert, profile.ca_key, csr, passphrase))
    args = intermediate.sign_intermediate_args(
        profile.root.cnf, csr, new, days, passphrase, keyfile
    )
    with check.guarded(profile.root):
        openssl.run(args)
    return new
