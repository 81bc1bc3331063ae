"""Issuing server and client certificates signed by a profile's CA.

Three steps, each usable alone inside a transaction (`transaction.Transaction`):
`key_and_csr` (certwiz makes the key, or reuses one), `sign` (`openssl ca`, under the lock,
notes the serial), `deliver` (moves the files into place; a failure there
revokes what was signed). `issue_in` and `sign_csr_in` chain them for one
name; `issue_server`, `issue_client` and `sign_csr` validate their input, get
the CA passphrase and open a transaction (or join the one given as `tx`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import (
    check,
    crl,
    database,
    der,
    durations,
    intermediate,
    inventory,
    journal,
    leaf_urls,
    names,
    ocsp,
    openssl,
    upkeep,
)
from . import openssl_args as args
from . import p12 as p12_lib
from .errors import CertwizError, InputError, StateError
from .est import invites
from .fsutil import write_atomic
from .openssl import Secret
from .passphrase import Source, bundle_passphrase, signing_passphrase
from .profile import Profile
from .render import render_openssl
from .transaction import Transaction, joined

DEFAULT_LEAF_DAYS = 365
KINDS = ("server", "client")
MAX_CSR_BYTES = 65536  # a CSR is a few KiB; more is a mistake (or /dev/zero)


@dataclass(frozen=True)
class Issued:
    """What an issuance produced, for printing and for --json."""

    name: str
    kind: str
    serial: str
    not_after: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    crl: str | None = None  # the CRL NGINX reads, when this change published a new one


class NotDelivered(CertwizError):
    """Signed, but delivering the files failed, so certwiz revoked the certificate.

    It exits like the failure that caused it (2 for bad input, 4 for a damaged
    profile, else 1), so a caller needs no special case.
    """

    def __init__(self, cause: BaseException, serial: str) -> None:
        super().__init__(
            f"{cause}; certificate {serial} was signed but not delivered, "
            "so certwiz revoked it (cessationOfOperation)"
        )
        self.serial = serial
        self.exit_code = cause.exit_code if isinstance(cause, CertwizError) else 1


@dataclass(frozen=True)
class Csr:
    """A checked certificate request: PEM text, whether its key is RSA, and its CN if any."""

    pem: bytes
    rsa: bool
    common_name: str | None = None


def check_kind(value: str) -> str:
    if value not in KINDS:
        raise InputError("kind", f"{value!r} is not one of {', '.join(KINDS)}")
    return value


def server_sans(name: str, extra: Sequence[str]) -> list[names.San]:
    """The SANs of a server certificate: the name itself, then every --san, once each."""
    entries = [names.server_name(name)]
    for value in extra:
        parsed = names.san(value)
        if parsed not in entries:
            entries.append(parsed)
    return entries


def check_no_valid(
    profile: Profile, name: str, hosts: Sequence[str] = (), *, kind: str = "client"
) -> None:
    """Refuse a second valid certificate for a name (revoke it, or let it expire, first),
    and one for a host (a DNS name or IP of its SAN) another valid certificate serves.

    The name is taken by every valid certificate `inventory.clashes` finds: one of the
    same name, a server (or, for a new server, a client) spelled in another letter
    case, a subordinate CA of that name. `hosts` is empty when the caller allows shared
    hosts (--allow-shared-san). KIND: of the new certificate.
    """
    entries = database.read(profile.index)
    for clash in inventory.clashes(profile, name, fold=kind == "server", entries=entries)[:1]:
        problem = other_kind(profile, name, clash)
        if problem:
            raise StateError(problem)
        entry = clash.entry
        raise StateError(
            f"{name} already has a valid certificate (serial {entry.serial}, expires "
            f"{entry.not_after:%Y-%m-%d %H:%M:%SZ}); "
            f"revoke it first: certwiz revoke -p {profile.name} -n {name}"
        )
    for entry, host in inventory.covering(profile, list(hosts), entries)[:1]:
        other = entry.common_name or entry.subject
        raise StateError(
            f"{host} is already covered by {other} (serial {entry.serial}, "
            f"expires {entry.not_after:%Y-%m-%d %H:%M:%SZ}); revoke it first "
            f"(certwiz revoke -p {profile.name} -n {other}) or give --allow-shared-san"
        )


def other_kind(profile: Profile, name: str, clash: inventory.Clash) -> str | None:
    """Why NAME cannot be a new certificate's when CLASH (inventory.clashes) is not one of
    NAME's own (a subordinate CA of that name, a server or client spelled in another
    letter case), with advice by serial only; None when it is NAME's (revoke -n NAME)."""
    entry, cn = clash.entry, clash.entry.common_name
    when = f"serial {entry.serial}, expires {entry.not_after:%Y-%m-%d %H:%M:%SZ}"
    if clash.ca:
        return (
            f"{name} is the name of the subordinate CA {cn} ({when}) the root signed "
            "(ca sign-intermediate); a certificate named like a CA would be told apart "
            "from it only by serial: choose another name"
        )
    if cn != name:
        return (
            f"{name} differs only in letter case from {cn} ({when}), and DNS names "
            "ignore it: one would be taken for the other; choose another name, or revoke that "
            f"one first: certwiz revoke -p {profile.name} --serial {entry.serial}"
        )
    return None


def check_key_unrevoked(profile: Profile, csr_pem: bytes) -> None:
    """Refuse a request for a key a certificate of PROFILE was revoked for (keyCompromise,
    CACompromise) on either level of a two-level profile: signing it would certify a
    stolen key again under a new name."""
    entry = inventory.compromised(profile, lambda: der.csr_spki(csr_pem))
    if entry is not None:
        raise StateError(
            f"the request's key is the key of {entry.common_name or entry.subject} (serial "
            f"{entry.serial}), revoked for {entry.reason}: a compromised key is never "
            "certified again; make a new key"
        )


def hosts_of(sans: Sequence[names.San], allow_shared_san: bool = False) -> tuple[str, ...]:
    """The hosts (DNS names, IPs) a new certificate would serve, for check_no_valid."""
    return () if allow_shared_san else tuple(s.value for s in sans if s.kind in ("DNS", "IP"))


def ca_end_cap(profile: Profile, validity: timedelta) -> tuple[datetime | None, str | None]:
    """(end, note) when a leaf valid `validity` from now would outlive a CA above it
    (the signing CA or, in a two-level profile, the root); (None, None) otherwise.

    A leaf that outlives a CA fails verification once that CA expires anyway, and
    `list` would have shown it valid until a date it never sees: it is capped there.
    An expired CA, or an intermediate its root revoked, is refused (StateError): every
    leaf signature (issue, sign, renew, batch, EST) passes here, before and under the lock.
    """
    intermediate.require_unrevoked(profile)
    now = datetime.now(UTC)
    try:
        chain = der.pem_certificates(profile.chain.read_bytes())
        ca_end = min(der.cert_validity(cert)[1] for cert in chain)
    except (OSError, ValueError, IndexError):
        return None, None  # check reports a bad ca.crt
    if ca_end <= now:
        raise StateError(
            f"a CA certificate of profile {profile.name} expired {durations.stamp(ca_end)}; "
            "no certificate it signs can be valid"
        )
    if now + validity <= ca_end:
        return None, None
    return ca_end, (
        f"capped the validity at the CA's notAfter {durations.stamp(ca_end)} "
        f"(asked: {durations.text(validity)}); a certificate cannot outlive its CA"
    )


def capped_notes(tx: Transaction) -> list[str]:
    """The notes `sign` leaves: the validity capped at the CA's end, invites cancelled."""
    capped = tx.current.details.get("validity_capped")
    cancelled = tx.current.details.get(invites.CANCELLED)
    names_ = cancelled if isinstance(cancelled, list) else []
    return ([str(capped)] if capped else []) + invites.notes(names_)


def load_csr(source: Path | bytes, field: str = "csr") -> Csr:
    """A PEM or DER CSR whose own signature verifies and whose key certwiz accepts.

    Only the public key is taken from it: subject and extensions come from
    certwiz (see `sign`), never from the request.
    """
    if isinstance(source, Path):
        try:
            with open(source, "rb") as handle:  # bounded: /dev/zero must not fill the memory
                data = handle.read(MAX_CSR_BYTES + 1)
        except OSError as exc:
            raise InputError(field, f"cannot read {source}: {exc.strerror}") from None
    else:
        data = source
    if len(data) > MAX_CSR_BYTES:
        raise InputError(field, f"larger than {MAX_CSR_BYTES} bytes: not a CSR")
    from cryptography import x509  # here: only CSR signing needs it
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            request = x509.load_pem_x509_csr(data)
        else:
            request = x509.load_der_x509_csr(data)
        valid = request.is_signature_valid
        key = request.public_key()
    except (ValueError, TypeError):
        raise InputError(field, "not a PEM or DER certificate signing request") from None
    if not valid:
        raise InputError(field, "the request's signature does not verify (altered?)")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InputError(field, f"an RSA key of {key.key_size} bits is too weak; use 2048+")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise InputError(field, f"curve {key.curve.name} is not supported; use P-256 or P-384")
    else:
        raise InputError(field, "unsupported key type; use EC P-256/P-384 or RSA 2048+")
    pem = request.public_bytes(serialization.Encoding.PEM)
    cns = request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if len(cns) > 1:  # which one names it would be a guess: refuse, like a forged subject
        raise InputError(field, f"the request's subject has {len(cns)} CNs; one is expected")
    cn = cns[0].value if cns else None
    return Csr(pem, isinstance(key, rsa.RSAPublicKey), cn if isinstance(cn, str) else None)


def csr_name(csr: Csr, given: str | None, kind: str) -> str:
    """The certificate's name: -n, else the CSR's CN; when both are given they must agree.

    Only the name is taken from the CN; the subject is still built by certwiz.
    """
    if given is None:
        if csr.common_name is None:
            raise InputError("name", "the CSR has no CN: give the name with -n NAME")
        return csr.common_name
    cn = csr.common_name
    same = cn is None or (cn.lower() == given.lower() if kind == "server" else cn == given)
    if not same:
        raise InputError("name", f"{given!r} is not the CSR's CN {cn!r}: give the CN, or omit -n")
    return given


def key_and_csr(
    profile: Profile,
    work: Path,
    name: str,
    key_type: str,
    key_passphrase: Secret | None,
    existing_key: Path | None = None,
) -> tuple[Path, Path]:
    """WORK/key.pem (fresh, or a copy of EXISTING_KEY) and WORK/req.csr for CN=name."""
    key, csr = work / "key.pem", work / "req.csr"
    if existing_key is None and key_passphrase is None:  # one process instead of two
        openssl.run(args.new_key_request(profile.cnf, key_type, key, name, csr))
        check.require_whole(key, csr)
        return key, csr
    if existing_key is None:
        openssl.run(args.keygen(key_type, key, key_passphrase))
    else:
        write_atomic(key, existing_key.read_bytes(), 0o600)
    openssl.run(args.request(profile.cnf, key, name, csr, key_passphrase))
    check.require_whole(key, csr)  # before signing: a refusal leaves the database alone
    return key, csr


def leaf_extfile(
    profile: Profile,
    work: Path,
    kind: str,
    rsa: bool,
    sans: Sequence[names.San],
    *,
    cnf_ok: bool = False,
) -> Path | None:
    """WORK/ext.cnf: the [leaf_ext] section `openssl ca` signs a KIND certificate with.

    `cnf_ok`: None for a client of a profile without OCSP or CRL URLs, whose extensions
    are exactly openssl.cnf's [client_ext] (rendered from the same macro at `ca init`):
    no template to render, so `client issue` never imports Jinja2. The caller then checks
    the certificate it got (`der.plain_client_problem`).
    """
    ocsp_url = ocsp.configured_url(profile)  # AIA: ca init / ca set --ocsp-url
    crl_url = leaf_urls.configured(profile.dir, "crl")  # CDP: --crl-url
    if cnf_ok and kind == "client" and not ocsp_url and not crl_url:
        return None
    extfile = work / "ext.cnf"
    extfile.write_text(
        render_openssl(
            "leaf_ext.cnf.j2",
            kind=kind,
            rsa=rsa,
            sans=sans,
            ocsp_url=ocsp_url,
            crl_url=crl_url,
        )
    )
    return extfile


def sign(
    tx: Transaction,
    work: Path,
    csr: Path,
    name: str,
    kind: str,
    validity: timedelta,
    sans: list[names.San],
    *,
    rsa: bool,
    ca_passphrase: Secret | None,
    replace_subject: bool = False,
    not_before: datetime | None = None,
    redeeming: bool = False,
) -> tuple[str, Path]:
    """`openssl ca` signs CSR with certwiz's extensions; returns (serial, cert path).

    `replace_subject` (a CSR made elsewhere) makes the subject exactly CN=name;
    certwiz's own CSRs already are. A revocation a killed run left out of the
    CRL is published first. A client's unused invites are cancelled (the audit
    record says so) unless this is the enrollment `redeeming` one: NAME now has its
    certificate, and an invite must not buy it another (attack round 12, F6).
    """
    profile = tx.profile
    if tx.crl_missing:
        crl.regenerate_crl(profile, ca_passphrase, None)
        tx.crl_missing.clear()
    extfile = leaf_extfile(profile, work, kind, rsa, sans, cnf_ok=True)
    cert = work / "cert.pem"
    end, capped = ca_end_cap(profile, validity)
    if capped:
        tx.note("validity_capped", capped)
    check_key_unrevoked(profile, csr.read_bytes())  # reuse-key renewals and EST too
    serial_hex = profile.serial.read_text().strip()  # the serial openssl ca assigns next
    journal.signing(work, serial_hex)  # a kill from here on is finished or undone (journal)
    with check.guarded(profile):
        subject = name if replace_subject else None
        openssl.run(
            args.ca_sign(
                profile.cnf,
                csr,
                cert,
                validity,
                extfile,
                ca_passphrase,
                subject,
                not_before,
                end,
                section="leaf_ext" if extfile else "client_ext",
            )
        )
    tx.note_serial(serial_hex)
    if kind == "client" and not redeeming:
        invites.cancel(tx, [name])
    problem = None if extfile else der.plain_client_problem(cert.read_bytes())
    if problem is not None:  # openssl.cnf's [client_ext] was edited: never deliver that
        withdrawn = _withdraw(profile, serial_hex, ca_passphrase)
        raise check.ProfileCorrupt(
            f"{profile.cnf}: its [client_ext] section gave certificate {serial_hex} {problem}"
            f"{'; certwiz revoked it' if withdrawn else ''}; restore the section as "
            "`ca init` wrote it"
        )
    return serial_hex, cert


def entry_of(profile: Profile, serial_hex: str) -> database.Entry:
    """The index.txt entry of a serial certwiz just signed."""
    wanted = int(serial_hex, 16)
    for entry in database.read(profile.index):
        if entry.serial_int == wanted:
            return entry
    raise check.ProfileCorrupt(f"{profile.index}: serial {serial_hex} was signed but is missing")


def deliver(
    profile: Profile,
    name: str,
    kind: str,
    work: Path,
    cert: Path,
    csr: Path,
    key: Path | None = None,
    key_passphrase: Secret | None = None,
    p12_format: str = p12_lib.DEFAULT_FORMAT,
    remove: Sequence[Path] = (),
) -> dict[str, Path]:
    """Bundle and move the signed certificate (and its key, if certwiz made it) into place;
    REMOVE: files of the certificate it replaces that must not stay beside it.

    A client with a key gets a PKCS#12 bundle; a server gets NAME.fullchain.pem.
    Every file is staged whole in WORK first, then the journal commits the delivery,
    then the renames: a run killed among them is rolled forward by the next change
    (see journal), so a new fullchain or bundle never stays beside an old key.
    """
    check.require_whole(cert)
    files = {"certificate": profile.cert_path(name)}
    if key is not None:
        files["key"] = profile.key_path(name)
    files["csr"] = profile.csr_path(name)
    staged: list[tuple[Path, Path, int]] = []
    if key is not None:
        staged.append((key, profile.key_path(name), 0o600))
    staged.append((csr, profile.csr_path(name), 0o644))
    if kind == "client" and key is not None:
        p12 = work / "bundle.p12"
        p12_lib.export(
            key=key,
            cert=cert,
            chain=profile.chain,  # two-level: intermediate + root
            name=name,
            out=p12,
            p12_format=p12_format,
            password=key_passphrase,  # the key file is encrypted with the bundle password
            key_passphrase=key_passphrase,
        )
        check.require_whole(p12)
        staged.append((p12, profile.p12_path(name), 0o600))
        files["p12"] = profile.p12_path(name)
    elif kind == "server":
        chain = work / "fullchain.pem"
        chain.write_bytes(cert.read_bytes() + profile.chain.read_bytes())
        staged.append((chain, profile.fullchain_path(name), 0o644))
        files["fullchain"] = profile.fullchain_path(name)
    staged.append((cert, profile.cert_path(name), 0o644))
    journal.deliver(profile, work, staged, remove)
    return files


def _withdraw(profile: Profile, serial_hex: str, ca_passphrase: Secret | None) -> bool:
    """Revoke a certificate that was signed but never delivered, so the name is free again.

    Its key only ever lived in the scratch directory; revoking (rather than editing
    index.txt) keeps the database exactly what `openssl ca` would write.
    """
    try:
        entry = entry_of(profile, serial_hex)
        crl.revoke_entry(profile, entry, "cessationOfOperation", ca_passphrase)
        crl.regenerate_crl(profile, ca_passphrase, None)
    except (CertwizError, OSError):
        return False
    return True


@contextlib.contextmanager
def _withdrawn_on_failure(
    tx: Transaction, work: Path, serial_hex: str, ca_passphrase: Secret | None
) -> Iterator[None]:
    """Delivery: on failure revoke the signed certificate and say so in the error; once
    the delivery committed, some of its files may be in place: the journal in WORK
    stays for the next change to finish (journal.workspace), nothing is revoked."""
    try:
        yield
    except BaseException as exc:
        if journal.committed(work):
            tx.note("delivery_unfinished", str(work))
            raise
        withdrawn = _withdraw(tx.profile, serial_hex, ca_passphrase)
        tx.note("withdrawn", withdrawn)
        if withdrawn and isinstance(exc, CertwizError | OSError):
            raise NotDelivered(exc, serial_hex) from exc
        raise


def _issued(
    tx: Transaction,
    name: str,
    kind: str,
    serial_hex: str,
    files: dict[str, Path],
    ca_passphrase: Secret | None,
    crl_before: tuple[int, int] | None,
) -> Issued:
    """What was issued, after the upkeep every change does (grace ends, CRL renewal).

    `crl_before` (crl.crl_version at the start): whether a new CRL was published,
    which NGINX enforces only after a reload, so the caller must say so.
    """
    entry = entry_of(tx.profile, serial_hex)
    notes = capped_notes(tx) + upkeep.tidy(tx.profile, tx, ca_passphrase)
    published = crl.crl_version(tx.profile) != crl_before
    return Issued(
        name,
        kind,
        entry.serial,
        durations.stamp(entry.not_after),
        {k: str(v) for k, v in files.items()},
        notes,
        str(tx.profile.nginx_crl) if published else None,
    )


def make_certificate(
    tx: Transaction,
    work: Path,
    name: str,
    kind: str,
    *,
    validity: timedelta,
    key_type: str,
    sans: list[names.San],
    ca_passphrase: Secret | None,
    key_passphrase: Secret | None = None,
    p12_format: str | None = None,
    existing_key: Path | None = None,
) -> tuple[database.Entry, dict[str, Path]]:
    """Key (new or EXISTING_KEY), request, signature, files: one certificate for NAME.

    The caller holds the transaction and decides what the name may have.
    """
    profile = tx.profile
    key, csr = key_and_csr(profile, work, name, key_type, key_passphrase, existing_key)
    rsa = key_type.startswith("rsa")
    serial_hex, cert = sign(
        tx, work, csr, name, kind, validity, sans, rsa=rsa, ca_passphrase=ca_passphrase
    )
    fmt = p12_format or p12_lib.DEFAULT_FORMAT
    with _withdrawn_on_failure(tx, work, serial_hex, ca_passphrase):
        files = deliver(profile, name, kind, work, cert, csr, key, key_passphrase, fmt)
    return entry_of(profile, serial_hex), files


def issue_in(
    tx: Transaction,
    name: str,
    kind: str,
    *,
    validity: timedelta,
    key_type: str,
    sans: list[names.San],
    ca_passphrase: Secret | None,
    key_passphrase: Secret | None = None,
    p12_format: str = p12_lib.DEFAULT_FORMAT,
    hosts: Sequence[str] = (),
) -> Issued:
    """Key, CSR, signature and files for NAME, inside TX; input already validated.

    `hosts`: refuse them if another valid certificate serves one (see check_no_valid).
    """
    profile = tx.profile
    check_no_valid(profile, name, hosts, kind=kind)
    crl_before = crl.crl_version(profile)
    with journal.workspace(profile) as work:
        entry, files = make_certificate(
            tx,
            work,
            name,
            kind,
            validity=validity,
            key_type=key_type,
            sans=sans,
            ca_passphrase=ca_passphrase,
            key_passphrase=key_passphrase,
            p12_format=p12_format,
        )
    return _issued(tx, name, kind, entry.serial, files, ca_passphrase, crl_before)


def sign_csr_in(
    tx: Transaction,
    csr: Csr,
    name: str,
    kind: str,
    *,
    validity: timedelta,
    sans: list[names.San],
    ca_passphrase: Secret | None,
    hosts: Sequence[str] = (),
    superseding: tuple[database.Entry, timedelta | None] | None = None,
    redeeming: bool = False,
) -> Issued:
    """Sign a checked CSR as CN=name inside TX; the key never passes through certwiz.

    `superseding` (OLD, GRACE): NAME's valid certificate OLD is being renewed (EST
    simplereenroll), so it is not refused for having one; it is superseded (now, or
    after GRACE) once the new one is delivered, and the profile's key and bundle of
    NAME, which belong to OLD (the device holds the new key), are removed. All of it in
    the journal, so a kill anywhere after signing is finished or undone (see journal).
    """
    profile = tx.profile
    if superseding is None:
        check_no_valid(profile, name, hosts, kind=kind)
    crl_before = crl.crl_version(profile)
    remove = [] if superseding is None else [profile.key_path(name), profile.p12_path(name)]
    with journal.workspace(profile) as work:
        if superseding is not None:
            old, span = superseding
            seconds = None if span is None else span.total_seconds()
            journal.superseding(work, name, old.serial, seconds)
        request = work / "req.csr"
        request.write_bytes(csr.pem)
        serial_hex, cert = sign(
            tx,
            work,
            request,
            name,
            kind,
            validity,
            sans,
            rsa=csr.rsa,
            ca_passphrase=ca_passphrase,
            replace_subject=True,
            redeeming=redeeming,
        )
        gone = [str(path) for path in remove if path.is_file() and not path.is_symlink()]
        with _withdrawn_on_failure(tx, work, serial_hex, ca_passphrase):
            files = deliver(profile, name, kind, work, cert, request, remove=remove)
        if gone:
            tx.note("removed", gone)
        if superseding is not None:
            old, span = superseding
            upkeep.supersede(tx, profile, name, old, serial_hex, span, ca_passphrase)
    return _issued(tx, name, kind, serial_hex, files, ca_passphrase, crl_before)


@contextlib.contextmanager
def _joined(
    profile: Profile,
    tx: Transaction | None,
    command: str,
    name: str,
    timeout: float | None,
    validity: timedelta,
    hosts: Sequence[str] = (),
) -> Iterator[Transaction]:
    """A new transaction for one operation (COMMAND: "KIND verb"), or an operation inside
    the given one."""
    ca_end_cap(profile, validity)  # an expired CA is refused before the lock
    if tx is None:
        kind = command.split()[0]
        with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
            check_no_valid(profile, name, hosts, kind=kind)  # before the lock: leaves no trace
    with joined(profile, tx, command, [name], timeout=timeout) as inside:
        yield inside


def issue_server(
    profile: Profile,
    name: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    sans: Sequence[str] = (),
    key_type: str = "ec:P-256",
    ca_passphrase: Source = None,
    timeout: float | None = None,
    tx: Transaction | None = None,
    allow_shared_san: bool = False,
) -> Issued:
    """A TLS server certificate: serverAuth only; SAN = the name plus every --san.

    The name is stored as validated (a DNS name in lower case, an IP in canonical
    form). A host another valid certificate serves is refused unless `allow_shared_san`.
    """
    entries = server_sans(name, sans)
    name = entries[0].value
    hosts = hosts_of(entries, allow_shared_san)
    validity = durations.parse(days, "days")
    names.key_type(key_type)
    secret = signing_passphrase(profile, ca_passphrase)
    with _joined(profile, tx, "server issue", name, timeout, validity, hosts) as inside:
        return issue_in(
            inside,
            name,
            "server",
            validity=validity,
            key_type=key_type,
            sans=entries,
            ca_passphrase=secret,
            hosts=hosts,
        )


def issue_client(
    profile: Profile,
    name: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    passphrase: Source = None,
    unencrypted: bool | None = None,
    key_type: str = "ec:P-256",
    p12_format: str = "compat",
    ca_passphrase: Source = None,
    timeout: float | None = None,
    tx: Transaction | None = None,
) -> Issued:
    """A client certificate (clientAuth only) and its PKCS#12 bundle.

    `unencrypted=True` (-u, for bots): key and bundle carry no password.
    `unencrypted=False`: `passphrase` must give one (`passphrase.bundle_passphrase`).
    Left None, the library default: no password exactly when `passphrase` is None.
    """
    names.client_name(name)
    validity = durations.parse(days, "days")
    names.key_type(key_type)
    p12_lib.check_format(p12_format)
    secret = signing_passphrase(profile, ca_passphrase)
    if unencrypted is None:
        unencrypted = passphrase is None
    bundle_secret = bundle_passphrase(passphrase, unencrypted=unencrypted)
    with _joined(profile, tx, "client issue", name, timeout, validity) as inside:
        return issue_in(
            inside,
            name,
            "client",
            validity=validity,
            key_type=key_type,
            sans=[],
            ca_passphrase=secret,
            key_passphrase=bundle_secret,
            p12_format=p12_format,
        )


def sign_csr(
    profile: Profile,
    csr: Path | bytes,
    name: str | None,
    kind: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    sans: Sequence[str] = (),
    ca_passphrase: Source = None,
    timeout: float | None = None,
    tx: Transaction | None = None,
    allow_shared_san: bool = False,
) -> Issued:
    """Sign a CSR made elsewhere (PEM or DER, a path or its bytes) as a KIND certificate.

    NAME None takes the CSR's CN. The certificate's subject is exactly CN=name
    and its extensions are certwiz's (server: the name plus `sans`; client:
    none): nothing the request asks for is copied. Files: issued/NAME.crt
    (+ fullchain for a server) and reqs/NAME.csr; no key, no bundle.
    """
    check_kind(kind)
    request = load_csr(csr)
    name = csr_name(request, name, kind)
    if kind == "server":
        entries = server_sans(name, sans)
        name = entries[0].value  # as stored: lower case, canonical IP
    else:
        names.client_name(name)
        if sans:
            raise InputError("san", "a client certificate carries no subjectAltName")
        entries = []
    validity = durations.parse(days, "days")
    with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
        check_key_unrevoked(profile, request.pem)  # before the lock: a refusal leaves no trace
    secret = signing_passphrase(profile, ca_passphrase)
    hosts = hosts_of(entries, allow_shared_san)
    with _joined(profile, tx, f"{kind} sign", name, timeout, validity, hosts) as inside:
        return sign_csr_in(
            inside,
            request,
            name,
            kind,
            validity=validity,
            sans=entries,
            ca_passphrase=secret,
            hosts=hosts,
        )
