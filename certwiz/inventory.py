"""What a profile holds: every certificate in index.txt, with kind and status.

Also the one definition of "the certificates of NAME" that list, show, issue, revoke
and nginx render share, and of the hosts a certificate serves.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat

from . import database, der, durations, grace, names
from .errors import InputError, StateError
from .fsutil import read_file
from .profile import Profile

STATUSES = ("valid", "revoked", "expired", "superseded-pending")
KINDS = ("server", "client", "ca")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else durations.stamp(when)


@dataclass(frozen=True, slots=True)
class Certificate:
    name: str
    kind: str
    serial: str
    status: str
    not_after: str
    revoked_at: str | None
    reason: str | None
    subject: str
    superseded_until: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # flat: no deep copy


def _kind(profile: Profile, serial: str, newcerts: str | None = None) -> str:
    """The kind of newcerts/SERIAL.pem; `newcerts`, its directory as text, saves building a
    Path per certificate when thousands are listed."""
    try:
        return der.kind_of(read_file(f"{newcerts or profile.newcerts}/{serial}.pem"))
    except OSError:
        return "unknown"


def serves_tls(profile: Profile, entry: database.Entry) -> bool:
    """Can this certificate serve TLS (a server's, or one without extendedKeyUsage)?"""
    try:
        return der.serves_tls(profile.newcert_path(entry.serial).read_bytes())
    except OSError:
        return False


def is_ca(profile: Profile, entry: database.Entry) -> bool:
    """Is this a CA certificate (one `ca sign-intermediate` signed: kind ca)?"""
    return _kind(profile, entry.serial) == "ca"


def same_name(a: str, b: str, fold: bool) -> bool:
    """Are A and B one name? Exactly equal; or, with FOLD (a DNS name or a CA's name is
    on one side), equal but for the letter case of ASCII text (RFC 4343)."""
    return a == b or (fold and a.isascii() and b.isascii() and a.lower() == b.lower())


def is_named(profile: Profile, entry: database.Entry, name: str) -> bool:
    """Is `entry` a certificate of NAME? THE definition, for every command.

    Its name is the CN of its subject (the last one, whatever other RDNs the subject
    holds, whatever string type: UTF8String, PrintableString, BMPString...). A
    certificate that can serve TLS is named by a DNS name, so there letter case does
    not count (RFC 4343); client names are free text and compared exactly, so a client
    NAME never names a server spelled in another case (issue refuses such pairs:
    `clashes`). A CA certificate (a subordinate CA the root signed) is nobody's NAME:
    it is revoked by serial, never by `revoke -n` offboarding a client of its CN.
    """
    cn = entry.common_name
    if cn is None:
        return False
    if cn == name:
        return not is_ca(profile, entry)
    return same_name(cn, name, True) and serves_tls(profile, entry)


def named(
    profile: Profile, name: str, entries: list[database.Entry] | None = None
) -> list[database.Entry]:
    """Every certificate of NAME (see is_named), in index.txt order."""
    if entries is None:
        entries = database.read(profile.index)
    folded = name.lower()  # is_named only for a CN equal to NAME but for letter case
    return [
        e
        for e in entries
        if e.common_name is not None
        and (
            e.common_name == name
            or (len(e.common_name) == len(folded) and e.common_name.lower() == folded)
        )
        and is_named(profile, e, name)
    ]


def valid_named(
    profile: Profile, name: str, entries: list[database.Entry] | None = None
) -> list[database.Entry]:
    """The still valid certificates of NAME (not revoked, not expired)."""
    return [e for e in named(profile, name, entries) if e.status() == "valid"]


@dataclass(frozen=True, slots=True)
class Clash:
    """A valid certificate whose name a new one would share (see clashes)."""

    level: Profile  # the profile, or root/ of a two-level profile
    entry: database.Entry
    ca: bool  # a CA certificate (a subordinate CA the root signed)


def clashes(
    profile: Profile, name: str, *, fold: bool, entries: list[database.Entry] | None = None
) -> list[Clash]:
    """The valid certificates a new certificate named NAME would share its name with: the
    profile's leaves, and the CAs its root signed (`ca sign-intermediate`; in index.txt of
    a one-level profile, root/index.txt of a two-level one), same-named leaves first.

    FOLD: the new one is a server (a DNS name) or a CA, so letter case does not count; it
    does not either against an existing server or CA. So the rule is symmetric: client
    `Web.Test` and server `web.test` refuse each other in either order, and a client
    and a subordinate CA never share a name, whichever came first. Two clients `Bob`
    and `bob` stay two names.
    """
    return clashes_of(profile, [name], fold=fold, entries=entries).get(name, [])


def clashes_of(
    profile: Profile,
    wanted: Iterable[str],
    *,
    fold: bool,
    entries: list[database.Entry] | None = None,
) -> dict[str, list[Clash]]:
    """`clashes` of each name of WANTED (a batch's rows), in one pass over each database;
    only a certificate whose CN is a wanted name but for letter case has its file read."""
    wanted = set(wanted)
    lower: dict[str, list[str]] = {}
    for name in wanted:
        lower.setdefault(name.lower(), []).append(name)
    if entries is None:
        entries = database.read(profile.index)
    levels = [(profile, entries)]
    if profile.two_level:
        levels.append((profile.root, database.read(profile.root.index)))
    found: dict[str, list[Clash]] = {}
    for level, listed in levels:
        for entry in listed:
            cn = entry.common_name
            if cn is None or (cn not in wanted and cn.lower() not in lower):
                continue
            if entry.status() != "valid":
                continue
            if level != profile and entry not in root_signed(profile):
                continue  # the profile's own intermediate: not a name a leaf could take
            ca = is_ca(level, entry)
            for name in {cn} & wanted | set(lower.get(cn.lower(), [])):
                if cn == name or (
                    same_name(cn, name, True) and (fold or ca or serves_tls(level, entry))
                ):
                    found.setdefault(name, []).append(Clash(level, entry, ca))
    for name, clashing in found.items():
        clashing.sort(key=lambda c: (c.ca, c.entry.common_name != name))
    return found


# Revocation reasons that condemn the key itself, not only one certificate of it.
KEY_REASONS = ("keyCompromise", "CACompromise")


def key_levels(profile: Profile) -> list[Profile]:
    """The databases a key compromise concerns: the profile's, and root/'s of a two-level
    profile, since one key may be certified on both (a leaf by the intermediate, a
    subordinate CA by the root)."""
    return [profile, profile.root] if profile.two_level else [profile]


def compromised(profile: Profile, request_spki: Callable[[], bytes]) -> database.Entry | None:
    """A certificate of the request's key (REQUEST_SPKI gives its DER SubjectPublicKeyInfo)
    revoked for a key compromise (KEY_REASONS) on any level of PROFILE (key_levels): that
    key must never be certified again, whatever name or level a request asks for.

    REQUEST_SPKI is called only when a certificate was revoked so: most profiles have
    none, and the request's key is then not even parsed."""
    revoked = [
        (level, entry)
        for level in key_levels(profile)
        for entry in database.read(level.index)
        if entry.flag == "R" and entry.reason in KEY_REASONS
    ]
    if not revoked:
        return None
    spki = request_spki()
    return next((entry for level, entry in revoked if _spki(level, entry) == spki), None)


def _spki(profile: Profile, entry: database.Entry) -> bytes | None:
    try:  # newcerts as text: thousands of keys compared, no Path built for each
        return der.key_of(der.pem_to_der(read_file(f"{profile.newcerts}/{entry.serial}.pem")))
    except (OSError, ValueError):
        return None


def same_key(
    profile: Profile, level: Profile, targets: list[database.Entry]
) -> list[tuple[Profile, database.Entry]]:
    """The other valid certificates, on every level of PROFILE (key_levels), that carry
    the key of one of TARGETS (entries of LEVEL): one key certified under several names,
    or by both levels; a key compromise concerns them all."""
    keys = {_spki(level, e) for e in targets} - {None}
    if not keys:
        return []
    serials = {e.serial_int for e in targets}
    return [
        (other, e)
        for other in key_levels(profile)
        for e in database.read(other.index)
        if not (other.dir == level.dir and e.serial_int in serials)
        and e.status() == "valid"
        and _spki(other, e) in keys
    ]


def hosts(profile: Profile, entry: database.Entry) -> set[str]:
    """The hosts a certificate serves: its DNS (lower case) and IP subjectAltNames.

    Without any, a TLS client falls back to the CN, so then the CN if it is a host
    name. A certificate that cannot serve TLS (client only) serves no host.
    """
    try:
        pem = profile.newcert_path(entry.serial).read_bytes()
        if not der.serves_tls(pem):
            return set()
        found = der.san_hosts(der.pem_to_der(pem))
    except (OSError, ValueError):
        return set()
    if not found and entry.common_name:
        with contextlib.suppress(InputError):
            found.add(names.server_name(entry.common_name).value)
    return found


def covering(
    profile: Profile, wanted: list[str], entries: list[database.Entry] | None = None
) -> list[tuple[database.Entry, str]]:
    """The valid certificates serving a host of `wanted`, each with the host it shares."""
    if not wanted:  # a client certificate serves no host: nothing can be shared
        return []
    if entries is None:
        entries = database.read(profile.index)
    found = []
    for entry in entries:
        if entry.status() != "valid":
            continue
        served = sorted(hosts(profile, entry))
        shared = [h for h in served for w in wanted if names.hosts_overlap(h, w)]
        if shared:
            found.append((entry, shared[0]))
    return found


@dataclass(frozen=True)
class Filter:
    """What `list` keeps; every part is optional and they combine (AND)."""

    status: str | None = None
    expiring: timedelta | None = None
    kind: str | None = None
    name: str | None = None  # a shell-style glob (fnmatch), case-sensitive


def make_filter(
    status: str | None = None,
    expiring: str | timedelta | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> Filter:
    """Validate the `list` options (exit 2 naming the field) before reading anything."""
    if status is not None and status not in STATUSES:
        raise InputError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise InputError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    if name is not None and (
        not name or len(name) > 256 or any(not ch.isprintable() for ch in name)
    ):
        raise InputError("name", f"{name!r} must be a glob of 1-256 printable characters")
    span = durations.parse(expiring, "expiring") if expiring is not None else None
    return Filter(status, span, kind, name)


def _status(entry: database.Entry, pending: dict[str, grace.Pending], now: datetime) -> str:
    status = entry.status(now)
    return "superseded-pending" if status == "valid" and entry.serial in pending else status


def root_signed(profile: Profile) -> list[database.Entry]:
    """What the root of a two-level profile signed besides the profile's own intermediate
    (every certificate with its subject, renewals included): the intermediates of other
    systems (`ca sign-intermediate`)."""
    if not profile.two_level:
        return []
    entries = database.read(profile.root.index)
    try:
        own = der.certificate(der.pem_to_der(profile.intermediate_cert.read_bytes()))
    except (OSError, ValueError):
        return []  # check reports a bad intermediate.crt
    subjects = {e.subject for e in entries if e.serial_int == own.serial_number}
    return [e for e in entries if e.subject not in subjects]


def certificates(
    profile: Profile,
    now: datetime | None = None,
    where: Filter | None = None,
    *,
    with_root: bool = False,
) -> list[Certificate]:
    """The profile's certificates (index.txt order) that pass `where`.

    `with_root`: then the intermediates the root of a two-level profile signed for
    other systems (kind ca; see `root_signed`). One read of index.txt and of each
    kept certificate's file (for its kind): never a process per certificate.
    """
    now = now or datetime.now(UTC)
    where = where or Filter()
    pending = grace.read(profile)
    horizon = now + where.expiring if where.expiring is not None else None
    found = []
    entries = database.read(profile.index)
    newcerts = str(profile.newcerts)
    root = root_signed(profile) if with_root else []
    # --expiring keeps valid certificates only: V and not_after in (now, horizon], compared
    # as text first (most of 100,000 entries fail here), then as status says.
    if horizon is not None:
        since, by = database.sortable(now), database.sortable(horizon)
        entries = [e for e in entries if e.flag == "V" and since < e.until <= by]
        root = [e for e in root if e.flag == "V" and since < e.until <= by]
    levels: Iterable[tuple[Profile, database.Entry]] = zip(repeat(profile), entries)
    if root:  # no (level, entry) pair built ahead for 100,000 entries
        levels = chain(levels, zip(repeat(profile.root), root))
    for level, entry in levels:
        status = _status(entry, pending, now)
        if where.status is not None and status != where.status:
            continue
        if horizon is not None and not (status == "valid" and entry.expires_by(horizon)):
            continue
        name = entry.common_name or entry.subject
        if where.name is not None and not fnmatch.fnmatchcase(name, where.name):
            continue
        kind = _kind(level, entry.serial, newcerts if level is profile else None)
        if where.kind is not None and where.kind not in kind.split("+"):
            continue
        until = pending.get(entry.serial)
        found.append(
            Certificate(
                name=name,
                kind=kind,
                serial=entry.serial,
                status=status,
                not_after=str(_iso(entry.not_after)),
                revoked_at=_iso(entry.revoked_at),
                reason=entry.reason,
                subject=entry.subject,
                superseded_until=_iso(until.until) if until and status != "revoked" else None,
            )
        )
    return found


def show(profile: Profile, name: str) -> dict[str, object]:
    """The newest certificate of NAME (a valid one first), with its files and fingerprint."""
    names.client_name(name, internal_ok=True)  # it names files: no path may leave the profile
    found = named(profile, name)
    if len({e.common_name for e in found}) > 1 and not all(serves_tls(profile, e) for e in found):
        found = [e for e in found if e.common_name == name]  # a client never shows a server
    serials = {e.serial for e in found}
    mine = [c for c in certificates(profile) if c.serial in serials]
    if not mine:
        raise StateError(
            f"{name} has no certificate in profile {profile.name}; "
            f"see: certwiz list -p {profile.name}"
        )
    mine.sort(key=lambda c: (c.status == "valid", c.not_after))
    current = mine[-1]
    info: dict[str, object] = current.as_dict()
    pem = profile.newcert_path(current.serial)
    if pem.is_file():
        import hashlib  # here: list, the frequent command, needs no digest

        digest = hashlib.sha256(der.pem_to_der(pem.read_bytes())).hexdigest().upper()
        info["sha256_fingerprint"] = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    files = current.name if names.names_files(current.name) else name
    candidates = {
        "certificate": profile.cert_path(files),
        "fullchain": profile.fullchain_path(files),
        "key": profile.key_path(files),
        "p12": profile.p12_path(files),
        "csr": profile.csr_path(files),
    }
    info["files"] = {k: str(p) for k, p in candidates.items() if p.is_file()}
    info["history"] = [c.as_dict() for c in mine[:-1]]
    return info
