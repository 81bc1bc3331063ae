"""Grow out: the profile's root signs the intermediate CA of a bigger system.

When one machine is no longer enough, the certwiz root stays (offline) the trust
anchor and signs the intermediate of the system that takes over: HashiCorp
Vault's PKI engine, smallstep step-ca or cert-manager's CA issuer. The root is
the CA itself in a one-level profile and `root/` in a two-level one; its key may
be offline (`--root-key FILE`, see `intermediate.root_keyfile`).

From the request certwiz takes the public key and the subject (only CN, O, OU,
C, ST and L, which is what those systems send); every extension comes from
`openssl_templates/intermediate_ext.cnf.j2`: CA:TRUE with the path length
given, keyCertSign and cRLSign, key identifiers, the root's own CRL/OCSP URLs if
set, and DNS name constraints. The certificate is an `openssl ca` entry of the
root's index.txt like any other: `revoke --serial` revokes it, `list` shows it
as kind `ca`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from . import check, crl, der, durations, intermediate, inventory, leaf_urls, names, openssl, upkeep
from . import export as exporting
from . import issue as issuing
from . import openssl_args as args
from .errors import InputError, StateError
from .fsutil import scratch_dir, write_atomic
from .openssl import Secret
from .passphrase import Source, signing_passphrase
from .profile import Profile
from .render import render_openssl
from .transaction import Transaction, transaction

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_DAYS = intermediate.DEFAULT_INTERMEDIATE_DAYS
MAX_PATHLEN = 8  # deeper hierarchies than this are a mistake, not a design
COMMAND = "ca sign-intermediate"
# Subject attributes kept from the request, by the short name openssl's -subj takes.
SUBJECT_ATTRIBUTES = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.8": "ST",
    "2.5.4.7": "L",
}


@dataclass(frozen=True)
class SignedIntermediate:
    """What the root signed, for printing and for --json."""

    profile: str
    serial: str
    subject: str
    issuer: str
    not_after: str
    pathlen: int
    permitted_dns: list[str]
    out: str
    database: str
    notes: list[str] = field(default_factory=list)


def permitted_dns(value: str) -> str:
    """One --permitted-dns value: a DNS name, lower case; a leading dot kept.

    `example.com` permits example.com and every name below it; `.example.com` only
    the names below it (OpenSSL, Go and NSS read a leading dot so). No wildcard,
    no IP address, no trailing dot.
    """
    body = value[1:] if value.startswith(".") else value
    if "*" in body:
        raise InputError(
            "permitted-dns", f"{value!r}: no wildcard; example.com already permits *.example.com"
        )
    lowered = names.dns_name(body, "permitted-dns")
    return ("." if value.startswith(".") else "") + lowered


def permitted_dns_list(values: Sequence[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        domain = permitted_dns(value)
        if domain not in found:
            found.append(domain)
    return found


def check_pathlen(value: int) -> int:
    if not 0 <= value <= MAX_PATHLEN:
        raise InputError("pathlen", f"{value} must be between 0 and {MAX_PATHLEN}")
    return value


def root_of(profile: Profile) -> Profile:
    """The CA that signs intermediates: root/ of a two-level profile, else the CA itself."""
    return profile.root if profile.two_level else profile


def subject_rdns(csr_pem: bytes, common_name: str | None) -> list[tuple[str, str]]:
    """The subject to sign: the request's CN, O, OU, C, ST, L in order, or CN=common_name.

    Anything else (several values in one RDN, other attributes) is refused rather
    than dropped, so the certificate says exactly what the operator saw.
    """
    if common_name is not None:
        return [("CN", names.display_name(common_name, "cn"))]
    from cryptography import x509

    subject = x509.load_pem_x509_csr(csr_pem).subject
    rdns: list[tuple[str, str]] = []
    for rdn in subject.rdns:
        attributes = list(rdn)
        short = SUBJECT_ATTRIBUTES.get(attributes[0].oid.dotted_string)
        if len(attributes) != 1 or short is None:
            raise InputError(
                "csr",
                f"subject part {rdn.rfc4514_string()!r} is not one of "
                f"{', '.join(SUBJECT_ATTRIBUTES.values())}; give --cn NAME to replace the subject",
            )
        value = attributes[0].value
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        try:
            names.display_name(text, "csr")
        except InputError as exc:
            raise InputError("csr", f"subject {short} {exc.rule}") from None
        if short == "C" and not (len(text) == 2 and text.isascii() and text.isalpha()):
            raise InputError("csr", f"subject C {text!r} must be a two-letter country code")
        rdns.append((short, text))
    if not any(kind == "CN" for kind, _ in rdns):
        raise InputError("csr", "the request's subject has no CN; give --cn NAME")
    return rdns


def _cert(path: Path) -> bytes:
    return der.pem_to_der(path.read_bytes())


def _canonical(name: x509.Name) -> list[tuple[str, str]]:
    """A name as OpenSSL compares it (X509_NAME canonical form: case folded, white space
    trimmed and collapsed), so `P  ROOT CA` is the root's `p Root CA` to a verifier too."""
    return [
        (attribute.oid.dotted_string, " ".join(str(attribute.value).split()).casefold())
        for attribute in name
    ]


def check_subject(profile: Profile, rdns: list[tuple[str, str]]) -> None:
    """Refuse the subject of the root or of the profile's own intermediate: two CAs
    with one name make chains ambiguous (and a root-named one looks self-issued)."""
    from cryptography import x509

    wanted = x509.Name(
        [
            x509.NameAttribute(x509.ObjectIdentifier(oid), value)
            for kind, value in rdns
            for oid, short in SUBJECT_ATTRIBUTES.items()
            if short == kind
        ]
    )
    taken = [profile.ca_cert] + ([profile.intermediate_cert] if profile.two_level else [])
    for path in taken:
        cert = der.certificate(_cert(path))
        if _canonical(cert.subject) == _canonical(wanted):
            raise InputError(
                "csr",
                f"the subject {wanted.rfc4514_string()!r} is the name of {path.name}; "
                "give the new intermediate its own name (--cn NAME)",
            )


def check_leaf_names(profile: Profile, cn: str) -> None:
    """Refuse a CN that names a valid leaf of the profile (a client `carol`, a server
    `web.test` in any letter case): `revoke -n carol` offboarding the client must never
    be read as the subordinate CA, nor the CA's name as the client's (inventory.clashes)."""
    for clash in inventory.clashes(profile, cn, fold=True):
        if not clash.ca:
            entry = clash.entry
            raise InputError(
                "csr",
                f"the CN {cn!r} is the name of the valid certificate {entry.common_name} "
                f"(serial {entry.serial}); give the new intermediate its own name (--cn NAME)",
            )


def root_limits(profile: Profile, pathlen: int, validity: timedelta) -> datetime | None:
    """The end to cap the validity at (the root's notAfter), if it must be capped.

    Refuses a root that expired and a path length the root does not allow.
    """
    cert = der.certificate(_cert(profile.ca_cert))
    from cryptography import x509

    end = cert.not_valid_after_utc
    now = datetime.now(UTC)
    if end <= now:
        raise StateError(
            f"the root of profile {profile.name} expired {durations.stamp(end)}; "
            "renew it first (certwiz ca renew)"
        )
    try:
        limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        limit = None
    if limit is not None and pathlen >= limit:
        raise InputError(
            "pathlen",
            f"{pathlen} is too long: the root's own pathlen is {limit}, so an intermediate "
            f"below it may have pathlen {limit - 1} at most",
        )
    return end if now + validity > end else None


def check_key(profile: Profile, csr_pem: bytes) -> None:
    """Refuse a request for a key either level revoked for a key compromise, or for the
    profile's own intermediate key (certified only by `ca renew`, under its own name):
    either would give a second, unrevoked CA certificate to a key the root governs."""
    issuing.check_key_unrevoked(profile, csr_pem)  # both levels (inventory.key_levels)
    if profile.two_level:
        try:
            own = der.spki(der.pem_to_der(profile.intermediate_cert.read_bytes()))
        except (OSError, ValueError):
            return  # the transaction refuses a damaged profile, naming the file
        if der.csr_spki(csr_pem) == own:
            raise StateError(
                f"the request's key is the key of profile {profile.name}'s own intermediate; "
                f"it is renewed with: certwiz ca renew -p {profile.name}"
            )


def sign_intermediate(
    profile: Profile,
    csr: Path | bytes,
    out: Path,
    *,
    pathlen: int = 0,
    days: int | str = DEFAULT_DAYS,
    permitted: Sequence[str] = (),
    common_name: str | None = None,
    root_key: Path | None = None,
    with_root: bool = False,
    force: bool = False,
    ca_passphrase: Source = None,
    timeout: float | None = None,
) -> SignedIntermediate:
    """The root signs CSR as an intermediate CA; the certificate goes to OUT (0644).

    `with_root`: OUT also holds the root certificate after it (what Vault's
    set-signed and a cert-manager Secret take). Every input is checked before the
    lock; a refusal changes nothing.
    """
    check_pathlen(pathlen)
    validity = timedelta(days=names.days(days))
    domains = permitted_dns_list(permitted)
    target = exporting.check_out(out, force=force, home=profile.home)
    request = issuing.load_csr(csr)
    rdns = subject_rdns(request.pem, common_name)
    check_subject(profile, rdns)
    cn = next(value for kind, value in rdns if kind == "CN")
    check_leaf_names(profile, cn)
    check_key(profile, request.pem)  # before the lock: a refusal leaves no trace
    end = root_limits(profile, pathlen, validity)
    keyfile = intermediate.root_keyfile(profile, root_key, "signing an intermediate")
    secret = signing_passphrase(profile, ca_passphrase)
    root = root_of(profile)
    with transaction(profile, COMMAND, [cn], timeout=timeout) as tx, scratch_dir(root.dir) as work:
        if tx.crl_missing and not profile.two_level:  # a revoke killed before its CRL
            crl.regenerate_crl(profile, secret, None)
            tx.crl_missing.clear()
        check_leaf_names(profile, cn)
        check_key(profile, request.pem)
        serial = _sign(
            tx, root, work, request.pem, rdns, (validity, end), pathlen, domains, keyfile, secret
        )
        entry = issuing.entry_of(root, serial)
        data = root.newcert_path(entry.serial).read_bytes()
        try:
            write_atomic(target, data + (profile.ca_cert.read_bytes() if with_root else b""))
        except OSError as exc:  # signed but not delivered: withdraw it, like a leaf
            crl.revoke_entry(root, entry, "cessationOfOperation", secret, keyfile)
            crl.regenerate_crl(root, secret, None, keyfile)
            raise StateError(
                f"cannot write {target}: {exc.strerror}; certificate {entry.serial} was "
                "revoked (cessationOfOperation)"
            ) from None
        notes = [] if end is None else [f"capped the validity at the root's notAfter {end:%FT%TZ}"]
        notes += upkeep.tidy(profile, tx, secret)
    cert = der.certificate(der.pem_to_der(data))
    return SignedIntermediate(
        profile.name,
        entry.serial,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        durations.stamp(entry.not_after),
        pathlen,
        domains,
        str(target),
        str(root.index),
        notes,
    )


def _sign(
    tx: Transaction,
    root: Profile,
    work: Path,
    csr_pem: bytes,
    rdns: list[tuple[str, str]],
    period: tuple[timedelta, datetime | None],
    pathlen: int,
    domains: list[str],
    keyfile: Path | None,
    secret: Secret | None,
) -> str:
    """`openssl ca` of the root with [intermediate_ext]; returns the serial."""
    request, cert, extfile = work / "req.csr", work / "cert.pem", work / "ext.cnf"
    request.write_bytes(csr_pem)
    extfile.write_text(
        render_openssl(
            "intermediate_ext.cnf.j2",
            pathlen=pathlen,
            permitted_dns=domains,
            ocsp_url=leaf_urls.configured(root.dir, "ocsp"),
            crl_url=leaf_urls.configured(root.dir, "crl"),
        )
    )
    serial = root.serial.read_text().strip()  # the serial openssl ca assigns next
    with check.guarded(root):
        openssl.run(
            args.ca_sign(
                root.cnf,
                request,
                cert,
                period[0],
                extfile,
                secret,
                end=period[1],
                rdns=rdns,
                section="intermediate_ext",
                keyfile=keyfile,
            )
        )
    check.require_whole(cert)
    tx.note_serial(serial)
    tx.note("level", root.level)
    tx.note("pathlen", pathlen)
    if domains:
        tx.note("permitted_dns", domains)
    return serial
