"""`client renew` / `server renew`: a new certificate for a name, the old one superseded.

The new certificate keeps what the old one had: kind, SANs, key type and (for a
client) the p12 format and whether the bundle has a password. The old one is
revoked with reason `superseded` at once, or, with a grace, when the grace ends
(the first writing command or `crl gen` after it; see `grace` and `upkeep`). So a
name never keeps two valid certificates past its grace: no zombie certificates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from . import database, der, durations, grace, intermediate, inventory, journal, names, upkeep
from . import issue as issuing
from .errors import InputError, StateError
from .openssl import Secret
from .p12 import format_of as p12_format_of
from .passphrase import P12_ENV, Source, resolve, signing_passphrase
from .profile import Profile
from .transaction import Transaction, transaction

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Renewed:
    """What a renewal produced, for printing and --json."""

    name: str
    kind: str
    serial: str
    not_after: str
    superseded: str  # the old serial
    superseded_until: str | None  # end of its grace; None: revoked now
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Current:
    """The certificate being renewed, and what the new one inherits from it."""

    entry: database.Entry
    kind: str
    sans: list[names.San]
    key_type: str
    p12_format: str | None  # compat or modern (clients; None when no bundle is there)
    key_encrypted: bool  # a client's key is encrypted with its bundle password (not -u)


def _sans(cert: x509.Certificate) -> list[names.San]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    kinds: dict[type, str] = {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.RFC822Name: "email",
        x509.UniformResourceIdentifier: "URI",
    }
    return [
        names.San("IP", names.canonical_ip(g.value))  # as a new one would hold it
        if isinstance(g, x509.IPAddress)
        else names.San(kinds[type(g)], str(g.value))
        for g in ext.value
        if type(g) in kinds
    ]


def current(profile: Profile, name: str, kind: str) -> Current:
    """The valid certificate of NAME to renew: the one installed as issued/NAME.crt (a
    killed run may have signed another it never delivered), else the newest not
    already superseded."""
    from cryptography import x509

    pending = grace.read(profile)
    valid = [e for e in inventory.valid_named(profile, name) if e.serial not in pending]
    if not valid:
        raise StateError(
            f"{name} has no valid certificate to renew in profile {profile.name}; "
            f"issue one: certwiz {kind} issue -p {profile.name} -n {name}"
        )
    entry = _installed(profile, name, valid) or valid[-1]
    pem = profile.newcert_path(entry.serial).read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    found = der.kind_of(pem)
    if kind not in found.split("+"):
        raise StateError(
            f"{name} holds a {found} certificate; renew it with: certwiz {found} renew "
            f"-p {profile.name} -n {name}"
        )
    p12 = profile.p12_path(name)
    fmt = p12_format_of(p12) if kind == "client" and p12.is_file() else None
    key = profile.key_path(name)
    encrypted = kind == "client" and key.is_file() and intermediate.key_encrypted(key)
    return Current(
        entry,
        kind,
        _sans(cert) if kind == "server" else [],
        names.key_type_of(cert),
        fmt,
        encrypted,
    )


def _installed(profile: Profile, name: str, valid: list[database.Entry]) -> database.Entry | None:
    """The entry of VALID whose certificate is issued/NAME.crt, if any."""
    try:
        installed = profile.cert_path(name).read_bytes()
    except (OSError, InputError):
        return None
    for entry in valid:
        try:
            if profile.newcert_path(entry.serial).read_bytes() == installed:
                return entry
        except OSError:
            continue
    return None


def renew(
    profile: Profile,
    name: str,
    kind: str,
    *,
    days: int | str | timedelta = issuing.DEFAULT_LEAF_DAYS,
    grace_period: str | timedelta | None = None,
    reuse_key: bool = False,
    passphrase: Source = None,
    ca_passphrase: Source = None,
    timeout: float | None = None,
) -> Renewed:
    """Renew NAME's certificate; the old one is superseded now or when the grace ends.

    `passphrase`: the bundle password of a client whose bundle has one (the key is
    encrypted with it); a provider is called only then, after every check (see
    `bundle_secret`). The CA passphrase likewise, only for an encrypted CA key.
    """
    old = check_renewal(profile, name, kind, days, grace_period, reuse_key)
    passphrase = bundle_secret(old, name, passphrase)
    ca_passphrase = signing_passphrase(profile, ca_passphrase)
    validity = durations.parse(days, "days")
    span = durations.parse(grace_period, "grace") if grace_period is not None else None
    with (
        transaction(profile, f"{kind} renew", [name], timeout=timeout) as tx,
        journal.workspace(profile) as work,
    ):
        old = current(profile, name, kind)
        existing = profile.key_path(name) if reuse_key else None
        seconds = None if span is None else span.total_seconds()
        journal.superseding(work, name, old.entry.serial, seconds)  # see journal
        entry, files = issuing.make_certificate(
            tx,
            work,
            name,
            kind,
            validity=validity,
            key_type=old.key_type,
            sans=old.sans,
            ca_passphrase=ca_passphrase,
            key_passphrase=passphrase,
            p12_format=old.p12_format,
            existing_key=existing,
        )
        until = upkeep.supersede(tx, profile, name, old.entry, entry.serial, span, ca_passphrase)
        changed = subject_changed(old.entry, entry)
        if changed:
            tx.note("subject", {"old": old.entry.subject, "new": entry.subject})
        notes = changed + issuing.capped_notes(tx) + upkeep.tidy(profile, tx, ca_passphrase)
    return Renewed(
        name,
        kind,
        entry.serial,
        durations.stamp(entry.not_after),
        old.entry.serial,
        None if until is None else durations.stamp(until),
        {k: str(v) for k, v in files.items()},
        notes,
    )


def subject_changed(old: database.Entry, new: database.Entry) -> list[str]:
    """The note when a renewal changes the subject: certwiz issues CN=NAME only, so a
    hand-signed or adopted certificate with a fuller subject (/O=Acme/CN=bot-01) is
    renewed as /CN=bot-01, and a backend that reads the subject DN sees another one."""
    if old.subject == new.subject:
        return []
    return [
        f"changed the subject from {old.subject} to {new.subject} (certwiz issues CN=NAME "
        "only): a backend that reads X-Client-Cert-Subject sees the new one"
    ]


def renew_with_csr(
    tx: Transaction,
    old: Current,
    csr: issuing.Csr,
    *,
    validity: timedelta,
    grace_period: timedelta | None,
    ca_passphrase: Secret | None,
) -> Renewed:
    """Renew OLD for the key of CSR (made on the device, EST simplereenroll), inside TX.

    Same kind, SANs and subject; the old certificate is superseded like `renew`'s.
    The profile's key and bundle of the name, if certwiz once made them, belong to
    the superseded certificate: they are removed (the device holds the new key).
    """
    profile = tx.profile
    name = old.entry.common_name or ""
    done = issuing.sign_csr_in(
        tx,
        csr,
        name,
        old.kind,
        validity=validity,
        sans=old.sans,
        ca_passphrase=ca_passphrase,
        superseding=(old.entry, grace_period),
    )
    until = grace.read(profile).get(old.entry.serial)
    return Renewed(
        name,
        old.kind,
        done.serial,
        done.not_after,
        old.entry.serial,
        None if until is None else durations.stamp(until.until),
        done.files,
        done.notes,
    )


def check_renewal(
    profile: Profile,
    name: str,
    kind: str,
    days: int | str | timedelta,
    grace_period: str | timedelta | None,
    reuse_key: bool,
) -> Current:
    """Every refusal before the lock (exit 2, nothing written); the certificate to renew."""
    if kind not in ("server", "client"):
        raise InputError("kind", f"{kind!r} is not server or client")
    if kind == "server":
        names.server_name(name)
    else:
        names.client_name(name)
    durations.parse(days, "days")
    if grace_period is not None:
        durations.parse(grace_period, "grace")
    old = current(profile, name, kind)
    if reuse_key and not profile.key_path(name).is_file():
        raise StateError(f"{profile.key_path(name)} is missing: renew without --reuse-key")
    return old


def bundle_secret(old: Current, name: str, source: Source) -> Secret | None:
    """The password the renewed key and bundle get: the old key's, asked only when it has one.

    None for servers and `-u` clients (a Secret given for them is not used: the new
    certificate keeps what the old one had).
    """
    if not old.key_encrypted:
        return None
    secret = resolve(source)
    if secret is None:
        raise InputError(
            "p12-passphrase-file",
            f"the bundle of {name} has a password: give --p12-passphrase-file FILE "
            f"or set {P12_ENV}, the same password its key is encrypted with",
        )
    return secret
